package core

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astranet-go/astranet/core/wire"
	"github.com/hashicorp/go-hclog"
)

// Options configure a Node beyond its Config.
type Options struct {
	Config Config
	// ID is the node's id; 0 picks a random one.
	ID NodeID
	// Transports maps network names ("tcp4", "pipe", ...) to the transport
	// that serves them in ListenAndServe and Join.
	Transports map[string]Transport
	// Routing and Discovery, when set, run in the node; without them it reaches
	// only its direct neighbours and finds services by asking them. The node
	// owns them: it closes them when it closes, or when New fails.
	Routing   Routing
	Discovery Discovery
	// LoopBack lets the node dial its own listeners.
	LoopBack bool
}

var _ Mesh = (*Node)(nil)

// Node is one astranet instance: its links, listeners and streams.
type Node struct {
	id         NodeID
	cfg        Config
	log        hclog.Logger
	transports map[string]Transport
	routing    Routing
	discovery  Discovery

	routes   atomic.Pointer[map[NodeID]Route]
	services atomic.Pointer[map[string][]Service]
	changed  atomic.Pointer[chan struct{}] // closed and replaced on every change

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	shakes chan struct{} // bounds concurrent inbound handshakes

	nextLink atomic.Uint64
	srcPort  atomic.Uint32

	bindMu sync.Mutex // orders Bind and unbind with their discovery calls

	mu        sync.Mutex
	closed    bool
	draining  bool // Shutdown: no new links, listeners or transit streams
	links     map[uint64]*link
	peers     map[NodeID][]*link
	ports     map[uint32]*Listener
	names     map[string]*Listener
	nextPort  uint32
	listeners []net.Listener
	loop      *link // the dialling end of the self-link, if LoopBack
}

// ephemeralPorts start here; ports below are for applications to choose.
const ephemeralPorts = 1 << 24

// New starts a node. If it fails, it closes opts.Routing and opts.Discovery,
// so that no plugin process outlives the attempt.
func New(opts Options) (n *Node, err error) {
	defer func() {
		if err == nil {
			return
		}
		if opts.Routing != nil {
			opts.Routing.Close()
		}
		if opts.Discovery != nil {
			opts.Discovery.Close()
		}
	}()
	cfg := opts.Config
	if err := cfg.Verify(); err != nil {
		return nil, err
	}
	id := opts.ID
	for id == 0 {
		var b [8]byte
		crand.Read(b[:])
		id = NodeID(binary.BigEndian.Uint64(b[:]))
	}
	n = &Node{
		id:         id,
		cfg:        cfg,
		log:        cfg.Logger.Named("astranet").With("node", id.String()),
		transports: opts.Transports,
		routing:    opts.Routing,
		discovery:  opts.Discovery,
		shakes:     make(chan struct{}, 256),
		links:      make(map[uint64]*link),
		peers:      make(map[NodeID][]*link),
		ports:      make(map[uint32]*Listener),
		names:      make(map[string]*Listener),
		nextPort:   ephemeralPorts,
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	ch := make(chan struct{})
	n.changed.Store(&ch)
	if n.routing != nil {
		if err := n.routing.Start(n, n.publishRoutes); err != nil {
			return nil, fmt.Errorf("astranet: starting routing: %w", err)
		}
	}
	if n.discovery != nil {
		if err := n.discovery.Start(n, n.publishServices); err != nil {
			return nil, fmt.Errorf("astranet: starting discovery: %w", err)
		}
	}
	if opts.LoopBack {
		if err := n.startLoopBack(); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// ID returns the node's id.
func (n *Node) ID() NodeID { return n.id }

// Caps returns the capability bits the node announces.
func (n *Node) Caps() uint32 { return n.cfg.Caps }

// Config returns the node's configuration.
func (n *Node) Config() Config { return n.cfg }

// Logger returns the node's logger.
func (n *Node) Logger() hclog.Logger { return n.log }

func (n *Node) publishRoutes(rs []Route) {
	m := make(map[NodeID]Route, len(rs))
	for _, r := range rs {
		m[r.Dst] = r
	}
	n.routes.Store(&m)
	n.notify()
}

func (n *Node) publishServices(ss []Service) {
	m := make(map[string][]Service)
	for _, s := range ss {
		m[s.Name] = append(m[s.Name], s)
	}
	n.services.Store(&m)
	n.notify()
}

// Done is closed when the node closes.
func (n *Node) Done() <-chan struct{} { return n.ctx.Done() }

// Changes returns a channel that is closed at the next change to the node's
// routes, services, links or listeners. Call it again for the change after.
func (n *Node) Changes() <-chan struct{} { return *n.changed.Load() }

func (n *Node) notify() {
	ch := make(chan struct{})
	close(*n.changed.Swap(&ch))
}

// Routes returns the routes the node's routing last published.
func (n *Node) Routes() []Route {
	p := n.routes.Load()
	if p == nil {
		return nil
	}
	rs := make([]Route, 0, len(*p))
	for _, r := range *p {
		rs = append(rs, r)
	}
	return rs
}

// Services returns the services the node's discovery last published.
func (n *Node) Services() []Service {
	p := n.services.Load()
	if p == nil {
		return nil
	}
	var ss []Service
	for _, v := range *p {
		ss = append(ss, v...)
	}
	return ss
}

// Links lists the node's live links to other nodes.
func (n *Node) Links() []LinkInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]LinkInfo, 0, len(n.links))
	for id, l := range n.links {
		out = append(out, l.info(id))
	}
	return out
}

func (l *link) info(id uint64) LinkInfo {
	l.mu.Lock()
	streams := len(l.streams)
	l.mu.Unlock()
	return LinkInfo{ID: id, Peer: l.peerID, Network: l.network, Caps: l.peer.Caps, RTT: l.rtt(),
		Streams: streams, Buffered: l.buffered.Load()}
}

// Send sends a control message to the neighbour on link id.
func (n *Node) Send(id uint64, kind wire.Kind, body []byte) error {
	n.mu.Lock()
	l := n.links[id]
	n.mu.Unlock()
	if l == nil {
		return fmt.Errorf("astranet: link %d: %w", id, ErrLinkLost)
	}
	if 1+len(body) > int(l.peer.MaxFrame) {
		return fmt.Errorf("astranet: control message of %d bytes exceeds the peer's %d-byte frames", len(body), l.peer.MaxFrame)
	}
	l.control(wire.TypeControl, 0, wire.AppendControl(nil, kind, body))
	return nil
}

func (n *Node) handleControl(l *link, kind wire.Kind, body []byte) {
	info := l.info(l.id)
	switch {
	case kind == wire.KindRouting && n.routing != nil:
		n.routing.HandleControl(info, body)
	case kind == wire.KindDiscovery && n.discovery != nil:
		n.discovery.HandleControl(info, body)
	default:
		n.log.Trace("control message with no handler", "kind", kind, "peer", l.peerID)
	}
}

// Attach runs a link over rw and blocks until it ends. rw should be an
// io.Closer (and ideally a net.Conn, for deadlines): otherwise a link whose
// peer goes silent can be declared dead but Attach returns only when rw's Read
// does.
func (n *Node) Attach(rw io.ReadWriter) error {
	if n.ctx.Err() != nil {
		if c, ok := rw.(io.Closer); ok {
			c.Close() // as a failed handshake does
		}
		return ErrClosed // greet nobody: the link would be closed at once
	}
	l, err := n.handshake(rw, "attach", false)
	if err != nil {
		return err
	}
	return n.serve(l)
}

// handshake exchanges greetings on conn, within the handshake timeout, and
// registers the new link.
func (n *Node) handshake(conn io.ReadWriter, network string, loopInitiator bool) (*link, error) {
	cfg := &n.cfg
	mine := wire.AppendGreeting(nil, wire.Greeting{Node: uint64(n.id), Caps: cfg.Caps, MaxFrame: cfg.MaxFrame,
		LinkWindow: cfg.LinkWindow, StreamWindow: cfg.StreamWindow})
	// Write and read at once: on an unbuffered pipe neither side's write
	// finishes before the other reads.
	wrote := make(chan error, 1)
	go func() {
		_, err := conn.Write(mine)
		wrote <- err
	}()
	deadline, hasDeadline := conn.(interface{ SetDeadline(time.Time) error })
	closer, _ := conn.(io.Closer)
	var timer *time.Timer
	if hasDeadline {
		deadline.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	} else if closer != nil {
		timer = time.AfterFunc(cfg.HandshakeTimeout, func() { closer.Close() })
	}
	if closer != nil {
		// Close does not wait out a peer that is slow to greet.
		stop := context.AfterFunc(n.ctx, func() { closer.Close() })
		defer stop()
	}
	fail := func(err error) (*link, error) {
		var perr *wire.ProtocolError
		if errors.As(err, &perr) && hasDeadline && <-wrote == nil {
			// Tell a confused peer what was wrong before hanging up.
			deadline.SetDeadline(time.Now().Add(drainTimeout))
			g := wire.AppendGoAway(nil, wire.GoAway{Code: wire.CodeProtocol, Reason: err.Error()})
			conn.Write(append(wire.AppendHeader(nil, wire.Header{Length: uint32(len(g)), Type: wire.TypeGoAway}), g...))
		}
		if closer != nil {
			closer.Close()
		}
		return nil, fmt.Errorf("%w with %s peer: %w", ErrHandshake, network, err)
	}
	peer, err := wire.ReadGreeting(conn)
	if err == nil {
		err = <-wrote
		wrote <- err // fail may wait on it again
	}
	if timer != nil && !timer.Stop() {
		err = errors.Join(err, errors.New("handshake timed out"))
	}
	if err != nil {
		return fail(err)
	}
	if hasDeadline {
		deadline.SetDeadline(time.Time{})
	}
	loop := network == "loop"
	switch {
	case NodeID(peer.Node) == n.id && !loop:
		return fail(&wire.ProtocolError{What: fmt.Sprintf("greeting: peer claims this node's id %v (an id collision, or a link to itself)", n.id)})
	case NodeID(peer.Node) != n.id && loop:
		return fail(errors.New("loopback peer is another node"))
	}
	odd := n.id < NodeID(peer.Node) || (loop && loopInitiator)
	l := newLink(n, conn, peer, odd, network)
	n.mu.Lock()
	if n.closed || (n.draining && !loop) {
		// A draining node takes no new link, however it came: an inbound
		// handshake that began before Shutdown, Attach, or a re-dial.
		n.mu.Unlock()
		return fail(ErrClosed)
	}
	if !loop && len(n.links) >= cfg.MaxLinks {
		n.mu.Unlock()
		return fail(fmt.Errorf("%w: the node has its %d links", errTooManyLinks, cfg.MaxLinks))
	}
	l.id = n.nextLink.Add(1)
	if loop {
		if loopInitiator {
			n.loop = l
		}
	} else {
		n.links[l.id] = l
		n.peers[l.peerID] = append(n.peers[l.peerID], l)
	}
	n.mu.Unlock()
	n.log.Debug("link up", "peer", l.peerID, "network", network)
	n.notify()
	if !loop {
		info := l.info(l.id)
		if n.routing != nil {
			n.routing.LinkUp(info)
		}
		if n.discovery != nil {
			n.discovery.LinkUp(info)
		}
	}
	return l, nil
}

// serve runs l to its end and logs why it ended.
func (n *Node) serve(l *link) error {
	err := l.run()
	if n.ctx.Err() == nil {
		n.log.Info("link down", "peer", l.peerID, "network", l.network, "error", err)
	}
	return err
}

func (n *Node) linkDown(l *link, err error) {
	n.mu.Lock()
	if n.links[l.id] != l {
		n.mu.Unlock()
		return
	}
	delete(n.links, l.id)
	ls := n.peers[l.peerID]
	for i, x := range ls {
		if x == l {
			ls = append(ls[:i], ls[i+1:]...)
			break
		}
	}
	if len(ls) == 0 {
		delete(n.peers, l.peerID)
	} else {
		n.peers[l.peerID] = ls
	}
	n.mu.Unlock()
	n.notify()
	info := l.info(l.id)
	if n.routing != nil {
		n.routing.LinkDown(info)
	}
	if n.discovery != nil {
		n.discovery.LinkDown(info)
	}
}

func (n *Node) transport(network string) (Transport, error) {
	t := n.transports[network]
	if t == nil {
		return nil, fmt.Errorf("astranet: no transport for network %q", network)
	}
	return t, nil
}

// ListenAndServe accepts links on addr and serves them in the background. It
// returns once it listens, with the address it listens on.
func (n *Node) ListenAndServe(network, addr string) (net.Addr, error) {
	t, err := n.transport(network)
	if err != nil {
		return nil, err
	}
	ln, err := t.Listen(n.ctx, network, addr)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	if n.closed || n.draining {
		n.mu.Unlock()
		ln.Close()
		return nil, ErrClosed
	}
	n.listeners = append(n.listeners, ln)
	n.wg.Add(1)
	n.mu.Unlock()
	go n.acceptLinks(ln, network)
	return ln.Addr(), nil
}

func (n *Node) acceptLinks(ln net.Listener, network string) {
	defer n.wg.Done()
	pause := 5 * time.Millisecond
	for {
		conn, err := ln.Accept()
		if err != nil {
			if n.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			n.log.Warn("accepting links", "network", network, "error", err)
			select { // a full file table clears up; do not spin on it
			case <-time.After(pause):
				pause = min(2*pause, time.Second)
			case <-n.ctx.Done():
				return
			}
			continue
		}
		pause = 5 * time.Millisecond
		n.mu.Lock()
		full := len(n.links) >= n.cfg.MaxLinks
		n.mu.Unlock()
		if full {
			n.log.Warn("link limit reached; closing an inbound link", "remote", conn.RemoteAddr(), "max", n.cfg.MaxLinks)
			conn.Close()
			continue
		}
		select {
		case n.shakes <- struct{}{}:
		default:
			n.log.Warn("too many links in handshake; dropping one", "remote", conn.RemoteAddr())
			conn.Close()
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			l, err := n.handshake(conn, network, false)
			<-n.shakes
			if err != nil {
				n.log.Info("inbound link refused", "remote", conn.RemoteAddr(), "error", err)
				return
			}
			n.serve(l)
		}()
	}
}

// Join dials addr, completes the link's handshake, and returns; from then on
// it keeps a link to addr up, re-dialling with jittered backoff whenever it
// drops, until Close.
func (n *Node) Join(ctx context.Context, network, addr string) error {
	l, t, err := n.dialToServe(ctx, network, addr)
	if err != nil {
		return err
	}
	go n.keepJoined(l, t, network, addr)
	return nil
}

// Connect dials addr, completes the link's handshake and serves the link in
// the background until it ends; unlike Join it never re-dials.
func (n *Node) Connect(ctx context.Context, network, addr string) error {
	l, _, err := n.dialToServe(ctx, network, addr)
	if err != nil {
		return err
	}
	go func() {
		defer n.wg.Done()
		n.serve(l)
	}()
	return nil
}

// dialToServe dials addr and returns the handshaken link, with n.wg counting
// the goroutine the caller starts to serve it.
func (n *Node) dialToServe(ctx context.Context, network, addr string) (*link, Transport, error) {
	t, err := n.transport(network)
	if err != nil {
		return nil, nil, err
	}
	n.mu.Lock()
	closed := n.closed || n.draining
	n.mu.Unlock()
	if closed {
		return nil, nil, ErrClosed // dial nothing: the link would be closed at once
	}
	l, err := n.dialLink(ctx, t, network, addr)
	if err != nil {
		if n.ctx.Err() != nil {
			return nil, nil, ErrClosed // Close ended the dial
		}
		return nil, nil, err
	}
	n.mu.Lock()
	if n.closed || n.draining {
		n.mu.Unlock()
		l.terminate(ErrClosed, true) // not under n.mu: it calls linkDown
		return nil, nil, ErrClosed
	}
	n.wg.Add(1)
	n.mu.Unlock()
	return l, t, nil
}

func (n *Node) dialLink(ctx context.Context, t Transport, network, addr string) (*link, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(n.ctx, cancel) // Close ends the dial
	defer stop()
	conn, err := t.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return n.handshake(conn, network, false)
}

func (n *Node) keepJoined(l *link, t Transport, network, addr string) {
	defer n.wg.Done()
	failures := 0
	for {
		if l != nil {
			began := time.Now()
			n.serve(l)
			if time.Since(began) > 10*time.Second {
				failures = 0
			}
		}
		if n.ctx.Err() != nil || n.isDraining() {
			return // closed, or shutting down: a new link would carry nothing
		}
		// 100 ms, growing 1.6x to 30 s, each wait drawn from [0.5, 1.5) of that.
		wait := min(100*time.Millisecond*time.Duration(1<<min(failures, 9))*16/10, 30*time.Second)
		wait = wait/2 + rand.N(wait)
		select {
		case <-time.After(wait):
		case <-n.ctx.Done():
			return
		}
		if n.isDraining() {
			return // Shutdown began during the wait
		}
		var err error
		l, err = n.dialLink(n.ctx, t, network, addr)
		if err != nil {
			failures++
			n.log.Debug("re-join failed", "network", network, "addr", addr, "error", err)
			l = nil
			continue
		}
		failures = 0
		n.log.Info("re-joined", "network", network, "addr", addr, "peer", l.peerID)
	}
}

func (n *Node) startLoopBack() error {
	a, b := net.Pipe()
	type res struct {
		l   *link
		err error
	}
	rc := make(chan res, 1)
	go func() {
		l, err := n.handshake(b, "loop", false)
		rc <- res{l, err}
	}()
	la, err := n.handshake(a, "loop", true)
	r := <-rc
	if err = errors.Join(err, r.err); err != nil {
		return err
	}
	for _, l := range []*link{la, r.l} {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			l.run()
		}()
	}
	return nil
}

// Shutdown closes the node gracefully. It stops taking new work at once:
// listeners (the transport's and the node's own) close, so new links and new
// streams to this node are refused (streams queued in a listener's backlog,
// not yet accepted, are refused as Listener.Close does), Bind,
// ListenAndServe, Join, Connect and Attach fail with ErrClosed, a link that
// drops is not dialled again (nor is one whose re-dial was waiting), and
// streams that would pass through this node as a router are refused with the
// shutdown code; a Routing that implements Withdrawer (the embedded one does)
// retracts the routes through this node, so that neighbours route around it
// rather than be refused. Then it waits until every stream on every link has finished
// (closed by the application, with what was written handed to the network,
// or failed), or until ctx is done, and closes the node as Close does. Dial
// still works meanwhile, for work that needs it to finish.
//
// Shutdown returns ctx's error if ctx ended the wait (the streams still open
// then fail with ErrLinkLost), or what Close returns. Like
// http.Server.Shutdown, it does not close streams the application holds:
// the application should close them once their work is done, or bound the
// wait with ctx. Once Close has run, Shutdown returns nil at once.
func (n *Node) Shutdown(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.draining = true
	closeListeners := n.takeListeners()
	n.mu.Unlock()
	closeListeners()
	if w, ok := n.routing.(Withdrawer); ok {
		w.Withdraw() // neighbours route around this node from now on
	}
	err := n.drain(ctx)
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	return err
}

// drain waits, polling with a growing interval as http.Server.Shutdown does,
// until no link carries a stream, ctx is done or the node closes.
func (n *Node) drain(ctx context.Context) error {
	const maxPoll = 50 * time.Millisecond
	poll := time.Millisecond
	t := time.NewTimer(poll)
	defer t.Stop()
	for n.activeStreams() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.ctx.Done():
			return nil
		case <-t.C:
		}
		poll = min(2*poll, maxPoll)
		t.Reset(poll)
	}
	return nil
}

// activeStreams counts the streams, forwarded circuits' halves included, on
// the node's links, and the writes in progress of streams' FINs: a stream
// may leave link.streams once the writer has taken its FIN, before that is
// written, and a closing link gives the write only drainTimeout.
func (n *Node) activeStreams() int {
	n.mu.Lock()
	links := n.allLinks()
	n.mu.Unlock()
	count := 0
	for _, l := range links {
		l.mu.Lock()
		count += len(l.streams)
		if l.writing && l.lastWords {
			count++
		}
		l.mu.Unlock()
	}
	return count
}

// allLinks lists the node's links, the self-link's dialling end included.
// Caller holds n.mu.
func (n *Node) allLinks() []*link {
	links := make([]*link, 0, len(n.links)+1)
	for _, l := range n.links {
		links = append(links, l)
	}
	if n.loop != nil {
		links = append(links, n.loop)
	}
	return links
}

func (n *Node) isDraining() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.draining
}

// takeListeners takes the transport listeners (which the node then forgets)
// and the node's own listeners (which unbind themselves as they close), and
// returns what closes them all, to be called without n.mu. Caller holds n.mu.
func (n *Node) takeListeners() (closeAll func()) {
	lns := n.listeners
	n.listeners = nil
	bound := make([]*Listener, 0, len(n.ports))
	for _, ln := range n.ports {
		bound = append(bound, ln)
	}
	return func() {
		for _, ln := range lns {
			ln.Close()
		}
		for _, ln := range bound {
			ln.Close()
		}
	}
}

// Close stops the node: its listeners, links and every goroutine it started.
// Streams fail with ErrLinkLost.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	closeListeners := n.takeListeners()
	links := n.allLinks()
	n.mu.Unlock()
	n.cancel()
	closeListeners()
	for _, l := range links {
		l.terminate(fmt.Errorf("%w: node closing", ErrClosed), true)
	}
	var err error
	if n.discovery != nil {
		err = n.discovery.Close()
	}
	if n.routing != nil {
		err = errors.Join(err, n.routing.Close())
	}
	n.wg.Wait()
	return err
}

// Bind listens on port and, if name is not empty, under that service name.
// Port 0 picks a free ephemeral port.
func (n *Node) Bind(port uint32, name string) (*Listener, error) {
	return n.BindService(port, name, nil)
}

// BindService is Bind with metadata that discovery announces with the service.
func (n *Node) BindService(port uint32, name string, metadata map[string]string) (*Listener, error) {
	if err := checkServiceName(name); err != nil {
		return nil, fmt.Errorf("astranet: bind: %w", err)
	}
	n.bindMu.Lock()
	defer n.bindMu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.draining {
		return nil, ErrClosed
	}
	if port == 0 {
		for n.ports[n.nextPort] != nil || n.nextPort == 0 {
			n.nextPort++
		}
		port = n.nextPort
		n.nextPort++
	} else if n.ports[port] != nil {
		return nil, fmt.Errorf("astranet: bind: port %d is already bound", port)
	}
	if name != "" && n.names[name] != nil {
		return nil, fmt.Errorf("astranet: bind: service %q is already bound on this node", name)
	}
	ln := &Listener{node: n, addr: Addr{Node: n.id, Port: port, Service: name},
		backlog: make(chan *Stream, n.cfg.Backlog), done: make(chan struct{})}
	defer n.notify()
	n.ports[port] = ln
	if name != "" {
		n.names[name] = ln
	}
	if n.discovery != nil {
		if err := n.discovery.Register(Service{Name: name, Node: n.id, Port: port, Metadata: metadata}); err != nil {
			delete(n.ports, port)
			delete(n.names, name)
			return nil, fmt.Errorf("astranet: bind: registering %q: %w", name, err)
		}
	}
	return ln, nil
}

// checkServiceName reports why name cannot be bound or dialled; the caller
// says which.
func checkServiceName(name string) error {
	if name == "" {
		return nil
	}
	if err := wire.CheckName(name); err != nil {
		return err
	}
	if _, err := ParseNodeID(name); err == nil || name == zeroNodeID {
		return fmt.Errorf("service name %q would read as a node id", name)
	}
	return nil
}

// zeroNodeID is how node id 0, which names no node, would be written: not a
// node id (ParseNodeID refuses it), and not a service name either, since an
// address "0000000000000000:7" must not read as one.
const zeroNodeID = "0000000000000000"

func (n *Node) unbind(ln *Listener) {
	// Held across Deregister, so that a Bind of the same name cannot slip in
	// between and have its registration withdrawn by this stale Deregister.
	n.bindMu.Lock()
	defer n.bindMu.Unlock()
	n.mu.Lock()
	if n.ports[ln.addr.Port] == ln {
		delete(n.ports, ln.addr.Port)
	}
	if ln.addr.Service != "" && n.names[ln.addr.Service] == ln {
		delete(n.names, ln.addr.Service)
	}
	n.mu.Unlock()
	n.notify()
	if n.discovery != nil {
		n.discovery.Deregister(Service{Name: ln.addr.Service, Node: n.id, Port: ln.addr.Port})
	}
}

// Target names what a dial reaches: a port on a node, a service, or a
// service's instance on a given port.
type Target struct {
	Node    NodeID // 0: any node serving Service
	Port    uint32
	Service string
	// Pick chooses among the instances discovery knows; nil picks at random.
	Pick func([]Service) Service
}

// String returns "node:port" for a target with a node, else "service:port",
// or "service" without a port.
func (t Target) String() string {
	switch {
	case t.Node != 0:
		return Addr{Node: t.Node, Port: t.Port}.String()
	case t.Port != 0:
		return fmt.Sprintf("%s:%d", t.Service, t.Port)
	}
	return t.Service
}

type targetAddr struct{ Target }

func (targetAddr) Network() string { return "astranet" }

// Dial opens a stream to t. It returns once the far node has queued the
// stream for its listener, or with an error wrapped in *net.OpError:
// ErrRefused, ErrNoService, ErrNoRoute, ErrClosed once the node closes, or
// ctx's error.
func (n *Node) Dial(ctx context.Context, t Target) (*Stream, error) {
	s, err := n.dial(ctx, t)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "astranet", Addr: targetAddr{t}, Err: err}
	}
	return s, nil
}

func (n *Node) dial(ctx context.Context, t Target) (*Stream, error) {
	if t.Node == 0 && t.Service == "" {
		return nil, errors.New("no node and no service named")
	}
	if t.Node != 0 && t.Port == 0 && t.Service == "" {
		return nil, errors.New("port 0")
	}
	if err := checkServiceName(t.Service); err != nil {
		return nil, err
	}
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if t.Node == 0 && n.discovery != nil {
		// Discovery knows the mesh: wait for the name to appear on a node
		// this node can reach. Discovery and routing learn of a node apart,
		// and discovery keeps the instances of a node that became unreachable
		// until they expire: an instance without a route is not there yet, or
		// not any more.
		for {
			changed := n.Changes()
			inst, ok, unreachable, onlySelf := n.lookup(t)
			if ok {
				t.Node, t.Port = inst.Node, inst.Port
				break
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return nil, &nameWaitError{t.Service, ctx.Err(), unreachable, onlySelf}
			case <-n.ctx.Done():
				return nil, ErrClosed
			}
		}
	}
	if t.Node != 0 {
		l, err := n.route(t.Node)
		if err != nil {
			return nil, err
		}
		return n.open(ctx, l, t)
	}
	return n.askNeighbours(ctx, t)
}

// lookup picks an instance of t's service from discovery's snapshot, among
// those on nodes this node has a route to. unreachable reports that there
// are instances, but only on other nodes without one; onlySelf, that there
// is one on this node, which it cannot dial without loopback.
func (n *Node) lookup(t Target) (_ Service, ok, unreachable, onlySelf bool) {
	p := n.services.Load()
	if p == nil {
		return Service{}, false, false, false
	}
	var cands []Service
	n.mu.Lock()
	self := n.loop != nil // without loopback this node cannot dial its own instances
	for _, s := range (*p)[t.Service] {
		switch {
		case t.Port != 0 && s.Port != t.Port:
		case !self && s.Node == n.id:
			onlySelf = true
		case s.Node != n.id && !n.reachable(s.Node):
			unreachable = true
		default:
			cands = append(cands, s)
		}
	}
	n.mu.Unlock()
	if len(cands) == 0 {
		return Service{}, false, unreachable, onlySelf && !unreachable
	}
	if t.Pick != nil {
		return t.Pick(cands), true, false, false
	}
	return cands[rand.N(len(cands))], true, false, false
}

// reachable reports whether a direct link or a published route leads to the
// other node dst. Caller holds n.mu.
func (n *Node) reachable(dst NodeID) bool {
	if len(n.peers[dst]) > 0 {
		return true
	}
	if p := n.routes.Load(); p != nil {
		if r, ok := (*p)[dst]; ok {
			return n.links[r.Link] != nil
		}
	}
	return false
}

// route finds the link that leads to dst: the self-link, a direct link, or the
// next hop routing published.
func (n *Node) route(dst NodeID) (*link, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if dst == n.id {
		if n.loop == nil {
			return nil, fmt.Errorf("%w: dialling this node itself needs loopback", ErrNoRoute)
		}
		return n.loop, nil
	}
	if ls := n.peers[dst]; len(ls) > 0 {
		return leastLoaded(ls), nil
	}
	if p := n.routes.Load(); p != nil {
		if r, ok := (*p)[dst]; ok {
			if l := n.links[r.Link]; l != nil {
				return l, nil
			}
		}
	}
	return nil, ErrNoRoute
}

// askNeighbours dials a service no snapshot names by asking the node itself
// (with loopback) and then each neighbour in turn whether it serves it.
func (n *Node) askNeighbours(ctx context.Context, t Target) (*Stream, error) {
	n.mu.Lock()
	var cands []*link
	if n.loop != nil && n.names[t.Service] != nil {
		cands = append(cands, n.loop)
	}
	for _, ls := range n.peers {
		cands = append(cands, leastLoaded(ls))
	}
	n.mu.Unlock()
	for _, l := range cands {
		s, err := n.open(ctx, l, t)
		if err == nil || ctx.Err() != nil || !errors.Is(err, ErrNoService) {
			return s, err
		}
	}
	return nil, ErrNoService
}

// nameWaitError is ErrNoService for a name that did not appear before the
// dial's context ended, or ErrNoRoute if it did but only on nodes without a
// route. As a dial that waits for ACCEPT, it is a timeout (net.Error) when
// the context's deadline passed.
type nameWaitError struct {
	name        string
	err         error // the context's
	unreachable bool
	onlySelf    bool // the name is bound on this node only, which has no loopback
}

func (e *nameWaitError) Error() string {
	switch {
	case e.unreachable:
		return fmt.Sprintf("%v: %q is only on nodes without a route (%v)", ErrNoRoute, e.name, e.err)
	case e.onlySelf:
		return fmt.Sprintf("%v: %q is bound only on this node, and dialling this node itself needs loopback (%v)", ErrNoService, e.name, e.err)
	}
	return fmt.Sprintf("%v: %q did not appear (%v)", ErrNoService, e.name, e.err)
}

func (e *nameWaitError) Unwrap() []error {
	if e.unreachable {
		return []error{ErrNoRoute, e.err}
	}
	return []error{ErrNoService, e.err}
}

func (e *nameWaitError) Timeout() bool { return errors.Is(e.err, context.DeadlineExceeded) }

// open sends OPEN for t on l and waits for ACCEPT or RESET.
func (n *Node) open(ctx context.Context, l *link, t Target) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		// As net.Dialer: a dial already given up on reaches no listener.
		return nil, err
	}
	cfg := &n.cfg
	s := &Stream{
		link:       l,
		dialed:     true,
		localPort:  n.ephemeral(),
		peer:       t.Node,
		peerPort:   t.Port,
		service:    t.Service,
		opened:     make(chan struct{}),
		recvWindow: cfg.StreamWindow,
		recvAvail:  int64(cfg.StreamWindow),
		recvEpoch:  l.now(),
	}
	o := wire.Open{SrcNode: uint64(n.id), SrcPort: s.localPort, DstNode: uint64(t.Node), DstPort: t.Port,
		Window: cfg.StreamWindow, Hops: cfg.HopLimit, Service: t.Service}
	payload, err := wire.AppendOpen(nil, &o)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	if err := l.register(s); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	l.ctl = l.appendFrame(l.ctl, wire.TypeOpen, s.id, payload)
	l.mu.Unlock()
	l.signal()
	select {
	case <-s.opened:
	case <-ctx.Done():
	}
	s.mu.Lock()
	if s.state&stAccepted != 0 {
		// Accepted wins, even if a reset came right after: what the far end
		// wrote before it is buffered and readable.
		s.opened = nil
		s.mu.Unlock()
		return s, nil
	}
	err = s.err
	s.mu.Unlock()
	if err == nil {
		err = ctx.Err()
		s.abort(err)
	}
	return nil, err
}

func (n *Node) ephemeral() uint32 { return ephemeralPorts + n.srcPort.Add(1)%(1<<31) }

// handleOpen answers an OPEN from l: delivers it to a local listener, forwards
// it toward its destination, or refuses it.
func (n *Node) handleOpen(l *link, circuit uint32, o *wire.Open) error {
	if (circuit&1 == 1) == l.oddIDs {
		return &wire.ProtocolError{What: fmt.Sprintf("OPEN on circuit %d, which has this side's parity", circuit)}
	}
	if l.lookup(circuit) != nil {
		return &wire.ProtocolError{What: fmt.Sprintf("OPEN on circuit %d, which is in use", circuit)}
	}
	if o.DstNode != 0 && NodeID(o.DstNode) != n.id {
		n.forward(l, circuit, o)
		return nil
	}
	n.mu.Lock()
	var ln *Listener
	code := wire.CodeRefused
	if o.Service != "" {
		code = wire.CodeNoService
		if x := n.names[o.Service]; x != nil && (o.DstPort == 0 || x.addr.Port == o.DstPort) {
			ln = x
		}
	} else {
		ln = n.ports[o.DstPort]
	}
	n.mu.Unlock()
	if ln == nil {
		l.reset(circuit, code)
		return nil
	}
	cfg := &n.cfg
	s := &Stream{
		link:       l,
		id:         circuit,
		localPort:  ln.addr.Port,
		service:    ln.addr.Service,
		peer:       NodeID(o.SrcNode),
		peerPort:   o.SrcPort,
		state:      stAccepted,
		sendCredit: int64(o.Window),
		recvWindow: cfg.StreamWindow,
		recvAvail:  int64(cfg.StreamWindow),
		recvEpoch:  l.now(),
	}
	if err := ln.offer(l, s); err != nil {
		l.reset(circuit, errCode(err))
	}
	return nil
}

// adopt registers an accepted stream under the peer's circuit id and queues
// its ACCEPT.
func (l *link) adopt(s *Stream) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrLinkLost
	}
	if len(l.streams) >= l.node.cfg.MaxStreams {
		return ErrTooManyStreams
	}
	l.streams[s.id] = s
	a := wire.Accept{Node: uint64(l.node.id), Port: s.localPort, Window: s.recvWindow}
	l.ctl = l.appendFrame(l.ctl, wire.TypeAccept, s.id, wire.AppendAccept(nil, a))
	l.signal()
	return nil
}

// abort breaks s with err and tells the peer.
func (s *Stream) abort(err error) { s.abortCode(err, errCode(err)) }

// abortCode is abort with the RESET code to send: a router passes on the code
// it received, which err (codeErr's) may not map back to.
func (s *Stream) abortCode(err error, code wire.Code) {
	s.mu.Lock()
	dropped := s.fail(err)
	done := s.finished()
	up := s.relay()
	s.mu.Unlock()
	if up != nil {
		up.returnRecv(dropped)
	}
	s.link.reset(s.id, code)
	if done {
		s.link.mu.Lock()
		s.link.forget(s)
		s.link.mu.Unlock()
	}
}

// Bound lists the node's own listeners.
func (n *Node) Bound() []Service {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Service, 0, len(n.ports))
	for _, ln := range n.ports {
		out = append(out, Service{Name: ln.addr.Service, Node: n.id, Port: ln.addr.Port})
	}
	return out
}

// forward extends a circuit toward o's destination: one half on the link it
// came in on, one on the next hop's link, each a stream whose bytes the other
// sends on. A node that is not a router, an OPEN out of hops, and a route that
// leads back where the OPEN came from are refused.
func (n *Node) forward(in *link, circuit uint32, o *wire.Open) {
	switch {
	case n.cfg.Caps&wire.CapRouter == 0:
		in.reset(circuit, wire.CodeNotAllowed)
		return
	case o.Hops == 0: // it was forwarded with its last hop; the next may only be the destination
		in.reset(circuit, wire.CodeHopLimit)
		return
	case n.isDraining():
		in.reset(circuit, wire.CodeShutdown)
		return
	}
	out, err := n.route(NodeID(o.DstNode))
	if err != nil || out == in {
		in.reset(circuit, wire.CodeNoRoute)
		return
	}
	cfg := &n.cfg
	up := &Stream{link: in, id: circuit, peer: NodeID(o.SrcNode), peerPort: o.SrcPort,
		sendCredit: int64(o.Window), recvWindow: cfg.StreamWindow, recvAvail: int64(cfg.StreamWindow), recvEpoch: in.now()}
	down := &Stream{link: out, dialed: true, peer: NodeID(o.DstNode), peerPort: o.DstPort, service: o.Service,
		recvWindow: cfg.StreamWindow, recvAvail: int64(cfg.StreamWindow), recvEpoch: out.now()}
	up.extra().relay, down.extra().relay = down, up
	next := *o
	next.Hops--
	next.Window = cfg.StreamWindow
	payload, err := wire.AppendOpen(nil, &next)
	if err != nil { // ParseOpen checked the name; this cannot fail
		in.reset(circuit, wire.CodeProtocol)
		return
	}

	// The downstream half gets its circuit first, so that either half, once
	// the other can see it, has an id to reset; the OPEN goes last, once
	// both halves are in place.
	out.mu.Lock()
	err = out.register(down)
	out.mu.Unlock()
	if err != nil {
		in.reset(circuit, errCode(err))
		return
	}
	in.mu.Lock()
	switch {
	case in.closed:
		err = ErrLinkLost
	case len(in.streams) >= cfg.MaxStreams:
		err = ErrTooManyStreams
	default:
		up.mu.Lock()
		failed := up.err != nil // out ended meanwhile, and aborted up with down
		up.mu.Unlock()
		if !failed {
			in.streams[circuit] = up
		}
	}
	in.mu.Unlock()
	if err != nil {
		out.mu.Lock()
		out.forget(down) // never announced: nothing to reset downstream
		out.mu.Unlock()
		in.reset(circuit, errCode(err))
		return
	}
	out.mu.Lock()
	down.mu.Lock()
	open := !out.closed && down.err == nil // else a failure reset both halves already
	down.mu.Unlock()
	if open {
		out.ctl = out.appendFrame(out.ctl, wire.TypeOpen, down.id, payload)
	}
	out.mu.Unlock()
	if open {
		out.signal()
	}
}

// leastLoaded picks, among several links to one peer (lanes), the one that
// carries the fewest streams, so that a stall on one lane holds up as few
// streams as it can.
func leastLoaded(ls []*link) *link {
	best, bestN := ls[0], -1
	for _, l := range ls {
		l.mu.Lock()
		n := len(l.streams)
		closing := l.closed || l.goingAway
		l.mu.Unlock()
		if !closing && (bestN < 0 || n < bestN) {
			best, bestN = l, n
		}
	}
	return best
}
