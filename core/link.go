package core

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astranet-go/astranet/core/wire"
)

const (
	maxBatchBytes  = 512 << 10 // data bytes per write call
	maxBatchFrames = 512       // frames per write call
	maxControl     = 4 << 20   // queued control bytes before the peer counts as not reading
	drainTimeout   = time.Second
)

// errPeerNotReading closes a link whose peer makes us queue control frames
// (pongs, resets, credit) faster than it reads them.
var errPeerNotReading = errors.New("astranet: peer does not read its control frames")

// link is one neighbour connection: a reader goroutine, a writer goroutine and
// the circuits they carry.
type link struct {
	node    *Node
	conn    io.ReadWriter
	closer  io.Closer                                      // nil if conn cannot be closed
	wdl     interface{ SetWriteDeadline(time.Time) error } // nil if conn has no deadlines
	writev  bool                                           // conn gathers net.Buffers in one syscall
	raw     *rawWriter                                     // non-blocking writes to conn's socket; nil if none
	peer    wire.Greeting
	peerID  NodeID
	oddIDs  bool // this side allocates odd circuit ids
	start   time.Time
	network string // transport network, for LinkInfo
	id      uint64

	mu         sync.Mutex
	streams    map[uint32]*Stream
	nextID     uint32
	ready      readyList // streams with data (or a FIN) to send, in turn
	small      readyList // the same, for streams with at most smallWrite bytes queued
	bare       readyList // the same, for streams with only a FIN (or RESET) to send: they need no credit
	ctl        []byte    // control frames waiting for the writer
	sendCredit int64     // link credit the peer granted us
	closed     bool
	err        error
	goingAway  bool // the peer said GOAWAY: open nothing new here
	overrun    bool // the control queue passed maxControl; the link is being closed
	writing    bool // a goroutine is between take and send; it alone uses w and spare
	handoff    bool // with writing: sendNow or writeDirect left the rest of w to the writer
	lastWords  bool // with writing: w holds a stream's FIN, its last frame (Shutdown waits for it)
	w          batch
	spare      []byte // the control buffer last sent, for reuse

	buffered    atomic.Int64 // bytes in stream receive queues
	recvAvail   atomic.Int64 // link credit the peer still holds
	recvUnacked atomic.Int64 // bytes read by applications, not yet returned
	lastRecv    atomic.Int64 // nanoseconds since start of the last frame received
	rttNanos    atomic.Int64
	pingSent    atomic.Int64          // nanoseconds since start of the outstanding PING, 0 if none
	lastPong    atomic.Int64          // nanoseconds since start of the last round-trip sample
	handoffs    atomic.Int64          // times sendNow or writeDirect left part of a write to the writer
	lends       atomic.Int64          // Writes that lent their buffer to the send queue (writeLent)
	drainBy     atomic.Int64          // once the link is ending: Unix nanoseconds by which the writer gives up
	dead        atomic.Pointer[error] // why the keep-alive timer found the link dead (die)

	// The reading side (handover.go). br, lastData and streak belong to
	// whichever goroutine holds the socket.
	br        *bufio.Reader
	lastData  *Stream                                       // the stream the last DATA frame was for
	streak    int                                           // DATA frames in a row for lastData
	rdl       interface{ SetReadDeadline(time.Time) error } // nil: the socket is never handed over
	rmu       sync.Mutex
	leader    *Stream                // the stream whose Read holds the socket, if any
	leading   atomic.Pointer[Stream] // leader, for a look without rmu
	lactive   bool                   // the leader is reading
	lkick     bool                   // the leader's read was interrupted (a past read deadline)
	lback     chan error             // the socket back to the link's reader, with an error that ends the link
	lidle     *time.Timer            // takes the socket back from a leader whose application stopped reading
	handOvers atomic.Int64           // times the link's reader handed the socket to a Read
	rwant     bool                   // a Read interrupted the link's reader to ask for the socket (want)
	wants     atomic.Int64           // times a Read interrupted the link's reader (want)
	hot       atomic.Pointer[Stream] // lastData, once its streak reaches handOverStreak
	rblocked  atomic.Bool            // the link's reader is (about to be) blocked on an empty socket

	wake     chan struct{}
	done     chan struct{}
	finished chan struct{} // closed when the writer has exited
}

func newLink(n *Node, conn io.ReadWriter, peer wire.Greeting, oddIDs bool, network string) *link {
	l := &link{
		node:       n,
		conn:       conn,
		peer:       peer,
		peerID:     NodeID(peer.Node),
		oddIDs:     oddIDs,
		start:      time.Now(),
		network:    network,
		streams:    make(map[uint32]*Stream),
		sendCredit: int64(peer.LinkWindow),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		finished:   make(chan struct{}),
	}
	l.w.hdrs = make([]byte, 0, (maxBatchFrames+1)*(wire.HeaderSize+4))
	l.nextID = 2
	if oddIDs {
		l.nextID = 1
	}
	if c, ok := conn.(io.Closer); ok {
		l.closer = c
	}
	if d, ok := conn.(interface{ SetWriteDeadline(time.Time) error }); ok {
		l.wdl = d
	}
	switch conn.(type) {
	case *net.TCPConn, *net.UnixConn:
		l.writev = true
	}
	l.raw = newRawWriter(conn)
	if l.rdl = readDeadliner(conn); l.rdl != nil {
		l.lback = make(chan error, 1)
		l.lidle = time.AfterFunc(time.Hour, l.reclaim)
		l.lidle.Stop()
	}
	l.recvAvail.Store(int64(n.cfg.LinkWindow))
	return l
}

func (l *link) now() int64 { return int64(time.Since(l.start)) }

func (l *link) rtt() time.Duration { return time.Duration(l.rttNanos.Load()) }

func (l *link) String() string { return fmt.Sprintf("link to %v", l.peerID) }

// run serves the link until it ends: the writer in a new goroutine, the reader
// in this one. It returns why the link ended.
func (l *link) run() error {
	l.node.wg.Add(1)
	go func() {
		defer l.node.wg.Done()
		l.writeLoop()
	}()
	cfg := &l.node.cfg
	l.watch(max(min(cfg.KeepAlive, cfg.DeadTimeout-cfg.KeepAlive)/4, time.Millisecond))
	l.queuePing() // measure the round trip from the start: windows auto-tune on it
	err := l.readLoop()
	var perr *wire.ProtocolError
	l.terminate(err, errors.As(err, &perr))
	<-l.finished
	l.mu.Lock()
	err = l.err
	l.mu.Unlock()
	return err
}

// terminate ends the link: every stream on it fails at once, the writer
// flushes what control frames it can (a GOAWAY saying why, if goAway) within
// drainTimeout, and the connection closes.
func (l *link) terminate(err error, goAway bool) {
	if dead := l.dead.Load(); dead != nil {
		err = *dead // the keep-alive timer closed the connection (die): that is why
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.err = err
	if goAway {
		code := wire.CodeProtocol
		if errors.Is(err, ErrClosed) {
			code = wire.CodeShutdown
		}
		l.ctl = l.appendFrame(l.ctl, wire.TypeGoAway, 0, wire.AppendGoAway(nil, wire.GoAway{Code: code, Reason: err.Error()}))
	}
	streams := l.streams
	l.streams = nil
	l.ready, l.small, l.bare = readyList{}, readyList{}, readyList{}
	l.mu.Unlock()
	close(l.done)
	l.interruptAny() // a Read holding the socket gives it back to the link's reader
	if l.wdl != nil {
		l.drainBy.Store(time.Now().Add(drainTimeout).UnixNano())
		l.setWriteDeadline()
	} else if l.closer != nil {
		l.closer.Close()
	}
	lost := fmt.Errorf("%w: %v", ErrLinkLost, err)
	var relays []*Stream
	for _, s := range streams {
		s.mu.Lock()
		s.inReady = false
		s.state |= stDone
		dropped := s.fail(lost)
		r := s.relay()
		if r != nil {
			relays = append(relays, r)
		}
		s.mu.Unlock()
		if r != nil {
			r.returnRecv(dropped)
		}
	}
	for _, s := range relays { // the rest of each forwarded circuit fails too
		s.abort(lost)
	}
	l.node.linkDown(l, err)
}

// appendFrame appends a whole control frame to b. Caller holds l.mu.
func (l *link) appendFrame(b []byte, t wire.Type, circuit uint32, payload []byte) []byte {
	b = wire.AppendHeader(b, wire.Header{Length: uint32(len(payload)), Type: t, Circuit: circuit})
	return append(b, payload...)
}

// control queues one control frame ahead of all data and wakes the writer.
func (l *link) control(t wire.Type, circuit uint32, payload []byte) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.ctl = l.appendFrame(l.ctl, t, circuit, payload)
	over := len(l.ctl) > maxControl && !l.overrun
	if over {
		l.overrun = true // one goroutine ends the link, however many calls see it
	}
	l.mu.Unlock()
	if over {
		// Not on this goroutine: it may be routing's or discovery's, inside
		// Mesh.Send, and terminate calls back into them (LinkDown).
		l.node.wg.Add(1)
		go func() {
			defer l.node.wg.Done()
			l.terminate(errPeerNotReading, true)
		}()
		return
	}
	l.signal()
}

func (l *link) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *link) queuePing() {
	if !l.pingSent.CompareAndSwap(0, l.now()|1) {
		return
	}
	l.control(wire.TypePing, 0, wire.AppendPing(nil, uint64(l.pingSent.Load())))
}

func (l *link) reset(circuit uint32, code wire.Code) {
	l.control(wire.TypeReset, circuit, wire.AppendReset(nil, code))
}

// schedule puts s on the writer's ready list and wakes the writer.
func (l *link) schedule(s *Stream) {
	l.mu.Lock()
	if l.closed || s.inReady {
		l.mu.Unlock()
		return
	}
	s.inReady = true
	s.mu.Lock()
	queued := s.sendLen()
	s.mu.Unlock()
	if queued == 0 {
		l.bare.pushBack(s)
	} else {
		l.list(queued <= smallWrite).pushBack(s)
	}
	l.mu.Unlock()
	l.signal()
}

// smallWrite is the most a stream may have queued and still be served ahead
// of bulk streams: a short message should not wait for a turn behind
// thousands of streams' full frames.
const smallWrite = 4 << 10

func (l *link) list(small bool) *readyList {
	if small {
		return &l.small
	}
	return &l.ready
}

// readyList is a FIFO of streams waiting for the writer, linked through
// Stream.next. Under link.mu.
type readyList struct{ head, tail *Stream }

func (r *readyList) pushBack(s *Stream) {
	s.next = nil
	if r.tail == nil {
		r.head = s
	} else {
		r.tail.next = s
	}
	r.tail = s
}

func (r *readyList) pushFront(s *Stream) {
	s.next = r.head
	r.head = s
	if r.tail == nil {
		r.tail = s
	}
}

func (r *readyList) pop() *Stream {
	s := r.head
	if s != nil {
		r.head = s.next
		if r.head == nil {
			r.tail = nil
		}
		s.next = nil
	}
	return s
}

// returnCredit gives back n bytes of link credit read (or discarded) by an
// application, and inc bytes of stream credit for s.
func (l *link) returnCredit(s *Stream, n int, inc uint32) {
	if s != nil && inc > 0 {
		l.control(wire.TypeWindow, s.id, wire.AppendWindow(nil, inc))
	}
	if n <= 0 {
		return
	}
	threshold := int64(l.node.cfg.LinkWindow / 8)
	if v := l.recvUnacked.Add(int64(n)); v >= threshold && l.recvUnacked.CompareAndSwap(v, 0) {
		l.recvAvail.Add(v)
		l.control(wire.TypeWindow, 0, wire.AppendWindow(nil, uint32(v)))
	}
}

// register adds s under a fresh circuit id. Caller holds l.mu.
func (l *link) register(s *Stream) error {
	if l.closed {
		return ErrLinkLost
	}
	if l.goingAway {
		return fmt.Errorf("%w: peer is going away", ErrLinkLost)
	}
	if len(l.streams) >= l.node.cfg.MaxStreams {
		return ErrTooManyStreams
	}
	for { // ids keep their parity when they wrap; 0 is never used
		id := l.nextID
		l.nextID += 2
		if _, taken := l.streams[id]; !taken && id != 0 {
			s.id = id
			l.streams[id] = s
			return nil
		}
	}
}

// forget removes a finished stream. Caller holds l.mu.
func (l *link) forget(s *Stream) {
	if l.streams != nil && l.streams[s.id] == s {
		delete(l.streams, s.id)
	}
}

func (l *link) lookup(id uint32) *Stream {
	l.mu.Lock()
	s := l.streams[id]
	l.mu.Unlock()
	return s
}

// readLoop reads frames until the link fails and returns why. While a
// stream's Read holds the socket (see handover.go), it waits for it back.
func (l *link) readLoop() error {
	l.br = bufio.NewReaderSize(l.conn, int(l.node.cfg.MaxFrame)+wire.HeaderSize)
	for {
		if l.rdl != nil && l.streak >= handOverStreak && l.br.Buffered() == 0 && l.handOver(l.lastData) {
			if err := <-l.lback; err != nil {
				return err
			}
			l.streak = 0
			l.hot.Store(nil) // with the streak: a want waits until it is hot again
			l.takeBack()
			continue
		}
		blocking := l.rdl != nil && l.br.Buffered() == 0
		if blocking {
			l.rblocked.Store(true)
		}
		err := l.readFrame(nil)
		if blocking {
			l.rblocked.Store(false)
		}
		if err != nil {
			if l.rdl != nil && errors.Is(err, os.ErrDeadlineExceeded) && l.wanted() {
				continue // a Read asks for the socket
			}
			return err
		}
	}
}

// readFrame reads and handles one frame. With only set (a leader), it
// consumes nothing and returns errNotMine unless the frame is DATA for only;
// a read error (a deadline) leaves what was read buffered, and the frame
// whole.
func (l *link) readFrame(only *Stream) error {
	maxFrame := l.node.cfg.MaxFrame
	hdr, err := l.br.Peek(wire.HeaderSize)
	if err != nil {
		return readErr(err)
	}
	h, err := wire.ParseHeader(hdr, maxFrame)
	if err != nil {
		return err
	}
	if only != nil && (h.Type != wire.TypeData || h.Circuit != only.id) {
		return errNotMine
	}
	frame, err := l.br.Peek(wire.HeaderSize + int(h.Length))
	if err != nil {
		return fmt.Errorf("reading %v: %w", h, readErr(err))
	}
	l.lastRecv.Store(l.now())
	if err := l.handle(h, frame[wire.HeaderSize:]); err != nil {
		return err
	}
	l.br.Discard(len(frame))
	return nil
}

func readErr(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("peer closed the link: %w", err)
	}
	return err
}

// handle acts on one frame. The payload is only valid during the call.
func (l *link) handle(h wire.Header, p []byte) error {
	if h.Type == wire.TypeData {
		return l.handleData(h, p)
	}
	f, err := wire.ParsePayload(h, p)
	if err != nil {
		return err
	}
	switch h.Type {
	case wire.TypeOpen:
		return l.node.handleOpen(l, h.Circuit, &f.Open)
	case wire.TypeAccept:
		return l.handleAccept(h.Circuit, f.Accept)
	case wire.TypeReset:
		l.handleReset(h.Circuit, f.Code)
	case wire.TypeWindow:
		return l.handleWindow(h.Circuit, f.Credit)
	case wire.TypePing:
		l.control(wire.TypePong, 0, wire.AppendPing(nil, f.Ping))
	case wire.TypePong:
		if sent := l.pingSent.Load(); sent != 0 && uint64(sent) == f.Ping {
			now := l.now()
			l.rttNanos.Store(now - sent)
			l.lastPong.Store(now)
			l.pingSent.Store(0)
		}
	case wire.TypeGoAway:
		l.mu.Lock()
		l.goingAway = true
		l.mu.Unlock()
		l.node.log.Debug("peer going away", "peer", l.peerID, "code", f.GoAway.Code, "reason", f.GoAway.Reason)
	case wire.TypeControl:
		l.node.handleControl(l, f.Kind, f.Payload)
	}
	return nil
}

// readAhead is how far the link's reader gets ahead of a stream's reader
// before it yields to it. On two cores, a bulk stream's three goroutines
// (writer, link reader, reader) share two processors, and a reader that
// wakes to megabytes copies them from memory rather than cache. With 512 KiB,
// harness bulk1 went from 3292 to 3603 MB/s (9 interleaved runs) and from
// 0.509 to 0.486 CPU s/GiB; bulk100 and busyecho were unchanged.
const readAhead = 512 << 10

func (l *link) handleData(h wire.Header, p []byte) error {
	n := int64(len(p))
	if l.recvAvail.Add(-n) < 0 {
		return &wire.ProtocolError{What: fmt.Sprintf("DATA of %d bytes on circuit %d exceeds the link credit", n, h.Circuit)}
	}
	s := l.lookup(h.Circuit)
	if s == nil {
		// The circuit ended while this was in flight; its bytes will never be
		// read, so their link credit comes back now.
		l.returnCredit(nil, int(n), 0)
		return nil
	}
	s.mu.Lock()
	if s.state&stAccepted == 0 {
		s.mu.Unlock()
		return &wire.ProtocolError{What: fmt.Sprintf("DATA on circuit %d before ACCEPT", h.Circuit)}
	}
	if s.recvAvail -= n; s.recvAvail < 0 {
		s.mu.Unlock()
		return &wire.ProtocolError{What: fmt.Sprintf("DATA of %d bytes on circuit %d exceeds the stream credit", n, h.Circuit)}
	}
	if s.state&stRecvFin != 0 {
		s.mu.Unlock()
		return &wire.ProtocolError{What: fmt.Sprintf("DATA on circuit %d after FIN", h.Circuit)}
	}
	if r := s.relay(); r != nil {
		return l.relayData(s, r, h, p)
	}
	if s != l.lastData {
		if l.streak >= handOverStreak && l.rdl != nil {
			l.hot.Store(nil)
		}
		l.lastData, l.streak = s, 0
	}
	if l.streak++; l.streak == handOverStreak && l.rdl != nil {
		l.hot.Store(s)
	}
	discard := s.state&stClosed != 0 || s.err != nil
	// Bytes for a stream closed with written bytes waiting for credit: as
	// TCP, reset it now (see Stream.Close). A bare FIN is no reason to.
	abortive := n > 0 && discard && s.err == nil && s.state&stFinSent == 0 && s.stuck()
	if abortive {
		s.fail(net.ErrClosed)
	}
	if !discard {
		if x := s.x; x != nil && x.rbuf != nil && s.recvLen() == 0 {
			// A Read is waiting with its buffer: one copy instead of two.
			k := copy(x.rbuf, p)
			x.rbuf, x.rn = nil, k
			p = p[k:]
		}
		if len(p) > 0 {
			s.queues().recv.write(p)
			l.buffered.Add(int64(len(p)))
		}
	}
	if h.Flags&wire.FlagFin != 0 {
		s.state |= stRecvFin
	}
	done := s.finished()
	s.wake()
	ahead := s.recvLen() >= readAhead
	s.mu.Unlock()
	if ahead {
		// The application's reader is behind: let it run (it is likely
		// runnable on this P, just woken) while what it reads is still in
		// the cache, rather than read further ahead of it.
		runtime.Gosched()
	}
	if discard {
		l.returnCredit(nil, int(n), 0)
	}
	if abortive {
		l.reset(s.id, wire.CodeCancelled)
	}
	if done {
		l.mu.Lock()
		l.forget(s)
		l.mu.Unlock()
	}
	return nil
}

// relayData passes the bytes of a forwarded circuit on to its other half. s.mu
// is held on entry and released here; credit goes back upstream only when the
// bytes leave on the next link (see writeLoop).
func (l *link) relayData(s, next *Stream, h wire.Header, p []byte) error {
	fin := h.Flags&wire.FlagFin != 0
	if fin {
		s.state |= stRecvFin
	}
	done := s.finished()
	s.mu.Unlock()
	if done {
		l.mu.Lock()
		l.forget(s)
		l.mu.Unlock()
	}
	n := len(p)
	next.mu.Lock()
	if next.err != nil || next.state&stFinQueued != 0 {
		next.mu.Unlock()
		l.returnCredit(nil, n, 0) // the circuit is going; its RESET follows
		return nil
	}
	next.queues().send.write(p)
	if fin {
		next.state |= stFinQueued
	}
	next.mu.Unlock()
	l.buffered.Add(int64(n))
	next.link.schedule(next)
	return nil
}

func (l *link) handleAccept(id uint32, a wire.Accept) error {
	s := l.lookup(id)
	if s == nil {
		return nil // the dialler gave up; its RESET is on the way
	}
	s.mu.Lock()
	if up := s.relay(); up != nil {
		if !s.dialed {
			// The half the peer opened to this router: only the far end
			// may accept it, through the other half.
			s.mu.Unlock()
			return &wire.ProtocolError{What: fmt.Sprintf("ACCEPT on circuit %d, which the peer opened", id)}
		}
		if s.state&stAccepted != 0 {
			s.mu.Unlock()
			return &wire.ProtocolError{What: fmt.Sprintf("second ACCEPT on circuit %d", id)}
		}
		if err := s.checkAccept(id, a); err != nil {
			s.mu.Unlock()
			return err
		}
		s.state |= stAccepted
		s.sendCredit = int64(a.Window)
		ready := s.sendLen() > 0
		s.mu.Unlock()
		up.mu.Lock()
		up.state |= stAccepted
		a.Window = up.recvWindow
		up.mu.Unlock()
		up.link.control(wire.TypeAccept, up.id, wire.AppendAccept(nil, a))
		if ready {
			l.schedule(s)
		}
		return nil
	}
	defer s.mu.Unlock()
	if s.opened == nil || s.state&stAccepted != 0 {
		return &wire.ProtocolError{What: fmt.Sprintf("ACCEPT on circuit %d, which is not opening", id)}
	}
	if err := s.checkAccept(id, a); err != nil {
		return err
	}
	s.state |= stAccepted
	s.sendCredit = int64(a.Window)
	s.peer, s.peerPort = NodeID(a.Node), a.Port
	close(s.opened)
	return nil
}

// checkAccept checks that an ACCEPT for s, a stream this side opened, comes
// from what the OPEN asked for: the node it named, if it named one, and the
// port, unless it named a service alone. Caller holds s.mu.
func (s *Stream) checkAccept(id uint32, a wire.Accept) error {
	nodeOK := s.peer == 0 || NodeID(a.Node) == s.peer
	portOK := (s.service != "" && s.peerPort == 0) || a.Port == s.peerPort
	if nodeOK && portOK {
		return nil
	}
	var asked []string
	if s.peer != 0 {
		asked = append(asked, "node "+s.peer.String())
	}
	if s.service != "" {
		asked = append(asked, fmt.Sprintf("service %q", s.service))
	}
	if s.peerPort != 0 {
		asked = append(asked, fmt.Sprintf("port %d", s.peerPort))
	}
	return &wire.ProtocolError{What: fmt.Sprintf("ACCEPT on circuit %d from node %v port %d, but the OPEN asked for %s", id, NodeID(a.Node), a.Port, strings.Join(asked, ", "))}
}

func (l *link) handleReset(id uint32, code wire.Code) {
	s := l.lookup(id)
	if s == nil {
		return
	}
	s.mu.Lock()
	dropped := s.fail(codeErr(code))
	done := s.finished()
	next := s.relay()
	s.mu.Unlock()
	if next != nil {
		next.returnRecv(dropped)
	}
	if done {
		l.mu.Lock()
		l.forget(s)
		l.mu.Unlock()
	}
	if next == nil {
		return
	}
	// A close after FIN (Close's RESET, code cancelled) must not overtake the
	// bytes and FIN still queued for the next hop: deliver them, then reset.
	next.mu.Lock()
	graceful := code == wire.CodeCancelled && next.err == nil &&
		next.state&(stFinQueued|stFinSent) == stFinQueued
	if graceful {
		next.state |= stResetAfter
	}
	next.mu.Unlock()
	if graceful {
		next.link.schedule(next)
		return
	}
	next.abortCode(codeErr(code), code) // the opener learns why, whatever the code
}

// maxCredit is the most credit, link or stream, a peer may grant: a WINDOW
// that would raise a credit above it is a protocol error (docs/PROTOCOL.md
// sections 4.5 and 6), so that a credit always fits in 32 bits.
const maxCredit = 1<<32 - 1

func (l *link) handleWindow(id uint32, inc uint32) error {
	if id == 0 {
		l.mu.Lock()
		l.sendCredit += int64(inc)
		credit := l.sendCredit
		l.mu.Unlock()
		if credit > maxCredit {
			return &wire.ProtocolError{What: fmt.Sprintf("WINDOW of %d raises the link credit to %d, above 2^32-1", inc, credit)}
		}
		l.signal()
		return nil
	}
	s := l.lookup(id)
	if s == nil {
		return nil
	}
	s.mu.Lock()
	s.sendCredit += int64(inc)
	if credit := s.sendCredit; credit > maxCredit {
		s.mu.Unlock()
		return &wire.ProtocolError{What: fmt.Sprintf("WINDOW of %d raises the credit of circuit %d to %d, above 2^32-1", inc, id, credit)}
	}
	ready := s.sendLen() > 0 || (s.state&stFinQueued != 0 && s.state&stFinSent == 0)
	s.mu.Unlock()
	if ready {
		l.schedule(s)
	}
	return nil
}

// writeLoop is the link's writer: control frames first, then the ready
// streams in turn, many frames per write call. While it is idle, a stream's
// Write may send its own frames (see sendNow and writeDirect); the writing
// flag makes sure one goroutine at a time writes. On exit it closes the
// connection.
func (l *link) writeLoop() {
	defer close(l.finished)
	defer l.closeConn()
	for {
		l.mu.Lock()
		for (l.writing && !l.handoff) || (!l.writing && !l.closed && !l.due()) {
			done := l.done
			if l.writing {
				done = nil // the goroutine writing now signals when it is done
			}
			l.mu.Unlock()
			select {
			case <-l.wake:
				// Let the goroutines that are about to queue frames do so, so that
				// one write carries them all.
				runtime.Gosched()
			case <-done:
			}
			if dead := l.dead.Load(); dead != nil {
				l.terminate(*dead, false)
			}
			l.mu.Lock()
		}
		if l.handoff {
			// sendNow or writeDirect left part of its batch to the writer.
			l.handoff = false
			l.mu.Unlock()
			if err := l.send(); err != nil {
				l.terminate(fmt.Errorf("writing to link: %w", err), false)
				return
			}
			continue
		}
		closing := l.closed
		l.take(closing)
		l.mu.Unlock()
		if err := l.send(); err != nil {
			l.terminate(fmt.Errorf("writing to link: %w", err), false)
			return
		}
		if closing {
			return
		}
	}
}

// closeWaiter is a connection that lingers after Close to deliver what was
// written (a QUIC link does, in the background): CloseWait bounds that and
// returns once the connection is done with the network.
type closeWaiter interface{ CloseWait(d time.Duration) error }

// closeConn closes the connection as the writer exits. One that lingers is
// given what is left of the drain time, so that nothing a transport runs for
// the link outlives the node's Close.
func (l *link) closeConn() {
	if cw, ok := l.conn.(closeWaiter); ok {
		d := drainTimeout
		if by := l.drainBy.Load(); by != 0 {
			d = time.Until(time.Unix(0, by))
		}
		cw.CloseWait(d)
		return
	}
	if l.closer != nil {
		l.closer.Close()
	}
}

// due reports whether the writer has frames it may send. Caller holds l.mu.
func (l *link) due() bool {
	return len(l.ctl) > 0 || l.bare.head != nil || ((l.ready.head != nil || l.small.head != nil) && l.sendCredit > 0)
}

// take makes the next batch in l.w: the control frames, then (unless the link
// is closing) data from the ready streams. The caller holds l.mu and becomes
// the writer until send returns.
func (l *link) take(closing bool) {
	l.writing = true
	ctl := l.ctl
	l.ctl = l.spare[:0]
	l.spare = ctl
	l.w.reset(ctl)
	if !closing {
		l.fill(&l.w)
	}
}

// send writes the batch take made, gives its buffers back and ends this
// goroutine's turn as the writer. Called without l.mu.
func (l *link) send() error {
	w := &l.w
	var err error
	if len(w.lent) > 0 && len(w.bufs) > 0 {
		err = l.settleLent(w)
	}
	if err == nil && len(w.bufs) > 0 {
		err = l.flush(w)
	}
	w.releaseLent()
	w.release()
	w.creditUpstream()
	l.mu.Lock()
	l.writing = false
	l.lastWords = false
	l.mu.Unlock()
	return err
}

// sendNow is schedule for a small write on an interactive stream, called by
// the goroutine that wrote: when no other goroutine is writing and nothing
// else waits, it hands the stream's queued frames to the kernel itself, which
// saves a hand-off to the writer on the latency path. It never waits for the
// socket: what the kernel does not take at once, the writer sends. Links
// without a raw socket always use the writer.
func (l *link) sendNow(s *Stream) {
	if l.raw == nil {
		l.schedule(s)
		return
	}
	l.mu.Lock()
	if l.closed || s.inReady {
		l.mu.Unlock()
		return
	}
	if l.writing || l.due() || l.sendCredit <= 0 {
		l.mu.Unlock()
		l.schedule(s)
		return
	}
	s.inReady = true
	l.small.pushBack(s)
	l.take(false)
	l.mu.Unlock()
	w := &l.w
	total := 0
	for _, b := range w.bufs {
		total += len(b)
	}
	n := 0
	var err error
	if total > 0 && len(w.bufs) <= maxInlineBufs {
		n, err = l.raw.write(w.bufs)
	}
	if err == nil && n < total {
		// The kernel took part of it (or none): the writer sends the rest
		// before anything else.
		w.consume(n)
		l.handoffs.Add(1)
		l.mu.Lock()
		l.handoff = true
		l.mu.Unlock()
		l.signal()
		return
	}
	l.endTurn(err)
}

// maxInlineBufs bounds the buffers sendNow passes to one writev; a larger
// batch (many streams' frames) is left whole to the writer.
const maxInlineBufs = 64

// maxWritev is the most buffers one writev takes (IOV_MAX on Linux, the BSDs
// and macOS); a batch can hold more.
const maxWritev = 1024

// Direct writes: a Write whose stream has nothing queued may hand its bytes
// to the kernel itself, without copying them, when the link is idle: a
// large write (at least directMin bytes, at most directMax at a time), or a
// short one on an interactive stream.
const (
	directMin = 16 << 10
	directMax = 256 << 10
)

// writeDirect sends up to len(p) bytes of s, straight from p, as DATA frames
// on the writing goroutine. It takes the bytes only when no other goroutine
// is writing, nothing else waits to be sent and s has nothing queued, and it
// never waits for the socket: what the kernel does not take at once is
// copied into buffers the link owns and left to the writer, which sends it
// before anything else. It returns how many bytes of p it took (0: none; the
// caller queues them as usual).
func (l *link) writeDirect(s *Stream, p []byte) int {
	if l.raw == nil {
		return 0
	}
	l.mu.Lock()
	if l.closed || l.writing || l.due() || l.sendCredit <= 0 || s.inReady {
		l.mu.Unlock()
		return 0
	}
	s.mu.Lock()
	if s.sendLen() != 0 || s.err != nil || s.state&(stClosed|stFinQueued) != 0 || s.sendCredit <= 0 {
		s.mu.Unlock()
		l.mu.Unlock()
		return 0
	}
	maxFrame := int(l.peer.MaxFrame)
	n := int(min(int64(len(p)), s.sendCredit, l.sendCredit, directMax, int64(maxInlineBufs/2*maxFrame)))
	s.sendCredit -= int64(n)
	l.sendCredit -= int64(n)
	s.state |= stWrote
	s.mu.Unlock()
	l.writing = true
	w := &l.w
	w.reset(nil)
	for off := 0; off < n; off += maxFrame {
		k := min(maxFrame, n-off)
		w.frame(wire.Header{Length: uint32(k), Type: wire.TypeData, Circuit: s.id}, nil, p[off:off+k])
	}
	l.mu.Unlock()
	total := len(w.hdrs) + n
	m, err := l.raw.write(w.bufs)
	if err == nil && m < total {
		// The frames are promised: the writer sends the rest before anything
		// else, from copies, since p goes back to the caller.
		w.consume(m)
		w.own()
		l.handoffs.Add(1)
		l.mu.Lock()
		l.handoff = true
		l.mu.Unlock()
		l.signal()
		return n
	}
	l.endTurn(err)
	return n
}

// endTurn ends a writing goroutine's turn after sendNow or writeDirect: it
// gives the batch's buffers back, lets the writer go on if there is more,
// and ends the link if the write failed.
func (l *link) endTurn(err error) {
	w := &l.w
	w.releaseLent()
	w.release()
	w.creditUpstream()
	l.mu.Lock()
	l.writing = false
	l.lastWords = false
	more := l.closed || l.due()
	l.mu.Unlock()
	if err != nil {
		// Not on this goroutine: the application's Write should not run
		// routing's and discovery's link-down callbacks.
		l.node.wg.Add(1)
		go func() {
			defer l.node.wg.Done()
			l.terminate(fmt.Errorf("writing to link: %w", err), false)
		}()
		return
	}
	if more {
		l.signal()
	}
}

// settleLent frees the Writes that lent their buffers to the batch before
// the writer can wait on the socket: it hands the kernel what it takes now,
// copies the rest into buffers the link owns, and releases the Writes. A
// Write lends only on links with a raw socket.
func (l *link) settleLent(w *batch) error {
	n, err := l.raw.write(w.bufs[:min(len(w.bufs), maxWritev)])
	if err != nil {
		return err
	}
	w.consume(n)
	if len(w.bufs) > 0 {
		w.own()
	}
	w.releaseLent()
	return nil
}

// watch runs keepAlive every period until the link ends, and ends a dead
// link. It runs on a timer, not on the writer: a writer blocked on a peer
// that reads nothing (with no write deadline to wake it) would never notice.
func (l *link) watch(period time.Duration) {
	time.AfterFunc(period, func() {
		select {
		case <-l.done:
			return
		default:
		}
		if err := l.keepAlive(); err != nil {
			l.die(err)
			return
		}
		l.watch(period)
	})
}

// die ends a link the keep-alive timer found dead. It leaves terminate
// (whose LinkDown calls Node.Close must wait for) to the link's own
// goroutines: it records why, wakes the writer, and closes the connection,
// so that a reader or writer blocked on it returns.
func (l *link) die(err error) {
	l.dead.CompareAndSwap(nil, &err)
	l.signal()
	if l.closer != nil {
		l.closer.Close()
	}
}

// keepAlive pings a quiet link and reports a dead one.
func (l *link) keepAlive() error {
	cfg := &l.node.cfg
	quiet := time.Duration(l.now() - l.lastRecv.Load())
	if quiet >= cfg.DeadTimeout {
		return fmt.Errorf("%w: nothing received for %v", ErrLinkTimeout, quiet.Round(time.Millisecond))
	}
	if sent := l.pingSent.Load(); sent != 0 && time.Duration(l.now()-sent) >= cfg.DeadTimeout {
		// Its PONG never came, though other frames do: ping afresh, or the
		// round-trip time would never be measured again.
		l.pingSent.CompareAndSwap(sent, 0)
	}
	// Ping a quiet link to see whether it lives, and a busy one now and then
	// so that its round-trip time (which routing and auto-tuning use) stays
	// current.
	if quiet >= cfg.KeepAlive || time.Duration(l.now()-l.lastPong.Load()) >= cfg.KeepAlive {
		l.queuePing()
	}
	return nil
}

// batch is one write call's worth of frames.
type batch struct {
	relayed []relayed // forwarded bytes whose credit goes back upstream
	lent    []lentRef // bytes referenced in Writes' own buffers (see settleLent)
	bufs    net.Buffers
	hdrs    []byte // frame headers (and small payloads) referenced by bufs; never reallocated
	done    []*chunk
	flat    []byte
	bytes   int
}

func (w *batch) reset(ctl []byte) {
	w.bufs = w.bufs[:0]
	w.hdrs = w.hdrs[:0]
	w.bytes = 0
	if len(ctl) > 0 {
		w.bufs = append(w.bufs, ctl)
	}
}

// consume drops the first n bytes of the batch, which have been written.
func (w *batch) consume(n int) {
	i := 0
	for ; i < len(w.bufs) && n >= len(w.bufs[i]); i++ {
		n -= len(w.bufs[i])
	}
	if i < len(w.bufs) {
		w.bufs[i] = w.bufs[i][n:]
	}
	k := copy(w.bufs, w.bufs[i:])
	clear(w.bufs[k:])
	w.bufs = w.bufs[:k]
}

// own replaces the batch's buffers with copies in pooled chunks, for bytes
// whose memory goes back to an application before the batch is sent.
func (w *batch) own() {
	bufs := w.bufs
	w.bufs = make(net.Buffers, 0, len(bufs))
	for _, b := range bufs {
		for len(b) > 0 {
			c := getChunk(len(b))
			c.wr = copy(c.buf, b)
			w.bufs = append(w.bufs, c.buf[:c.wr])
			w.done = append(w.done, c)
			b = b[c.wr:]
		}
	}
}

func (w *batch) full() bool {
	return w.bytes >= maxBatchBytes || len(w.hdrs)+wire.HeaderSize+4 > cap(w.hdrs)
}

// frame adds a frame whose payload is small (and is copied) or data (referenced).
func (w *batch) frame(h wire.Header, small []byte, data []byte) {
	start := len(w.hdrs)
	w.hdrs = wire.AppendHeader(w.hdrs, h)
	w.hdrs = append(w.hdrs, small...)
	w.bufs = append(w.bufs, w.hdrs[start:len(w.hdrs):len(w.hdrs)])
	if len(data) > 0 {
		w.bufs = append(w.bufs, data)
		w.bytes += len(data)
	}
}

// lentRef counts bytes of s's lent chunk that a batch references.
type lentRef struct {
	s *Stream
	n int
}

// releaseLent tells the Writes whose bytes the batch referenced that it no
// longer does: they were written, copied, or the link failed. Called without
// locks held.
func (w *batch) releaseLent() {
	for i, r := range w.lent {
		r.s.mu.Lock()
		r.s.x.wlent -= r.n
		if r.s.x.wlent == 0 {
			r.s.wake()
		}
		r.s.mu.Unlock()
		w.lent[i] = lentRef{}
	}
	w.lent = w.lent[:0]
}

// relayed counts bytes a router sent on for the upstream half up.
type relayed struct {
	up *Stream
	n  int
}

// creditUpstream returns credit for forwarded bytes that have left: the
// upstream sender may send as much again. Called without locks held.
func (w *batch) creditUpstream() {
	for i, r := range w.relayed {
		up := r.up
		up.mu.Lock()
		inc := up.consumed(r.n)
		up.mu.Unlock()
		up.link.buffered.Add(-int64(r.n))
		up.link.returnCredit(up, r.n, inc)
		w.relayed[i] = relayed{}
	}
	w.relayed = w.relayed[:0]
}

func (w *batch) release() {
	for i, c := range w.done {
		putChunk(c)
		w.done[i] = nil
	}
	w.done = w.done[:0]
	for i := range w.bufs {
		w.bufs[i] = nil
	}
}

// fill takes data from the ready streams in turn, each at most one frame per
// turn, so that no stream waits behind another's bulk. Streams with little
// queued go first, for up to half the batch, so that a short message does not
// wait for a turn among thousands of bulk streams; a stream counts as short
// by what it has queued when its turn comes, not when it joined the list.
// Caller holds l.mu.
func (l *link) fill(w *batch) {
	maxFrame := int64(l.peer.MaxFrame)
	smallSent := 0
	for !w.full() {
		var s *Stream
		fromSmall, bare := false, l.bare.head != nil
		if bare {
			s = l.bare.pop() // a FIN costs no credit: these go first
		} else {
			fromSmall = l.small.head != nil && (smallSent < maxBatchBytes/2 || l.ready.head == nil)
			s = l.list(fromSmall).pop()
		}
		if s == nil {
			return
		}
		s.mu.Lock()
		if queued := s.sendLen(); bare && queued > 0 || fromSmall && queued > smallWrite {
			// It joined its list with less queued than it has now: it takes
			// its turn where its queue puts it. (A stream that joined the
			// short list with a header and queued a body behind it must not
			// keep jumping ahead of the bulk streams.)
			s.mu.Unlock()
			l.list(queued <= smallWrite).pushBack(s)
			continue
		}
		s.inReady = false
		n := min(int64(s.sendLen()), s.sendCredit, maxFrame)
		if s.err != nil {
			n = 0
		}
		if n > 0 && l.sendCredit <= 0 {
			// Out of link credit: keep the stream first in line.
			s.mu.Unlock()
			s.inReady = true
			l.list(fromSmall).pushFront(s)
			return
		}
		n = min(n, l.sendCredit)
		if fromSmall {
			smallSent += int(n)
		}
		var flags wire.Flags
		for n > 0 {
			q := &s.q.send // n > 0, so the queues exist
			c := q.head
			k := min(n, int64(c.wr-c.rd))
			data := c.buf[c.rd : c.rd+int(k)]
			c.rd += int(k)
			q.n -= int(k)
			s.sendCredit -= k
			l.sendCredit -= k
			n -= k
			if up := s.relay(); up != nil {
				w.relayed = append(w.relayed, relayed{up, int(k)})
			}
			if c.lent {
				w.lent = append(w.lent, lentRef{s, int(k)})
			}
			if c.rd == c.wr {
				q.head = c.next
				if q.head == nil {
					q.tail = nil
				}
				if !c.lent {
					w.done = append(w.done, c)
				}
			}
			if n == 0 && s.finDue() {
				flags = wire.FlagFin
				s.state |= stFinSent
			}
			w.frame(wire.Header{Length: uint32(k), Type: wire.TypeData, Flags: flags, Circuit: s.id}, nil, data)
		}
		if s.finDue() {
			s.state |= stFinSent
			w.frame(wire.Header{Type: wire.TypeData, Flags: wire.FlagFin, Circuit: s.id}, nil, nil)
			flags = wire.FlagFin
		}
		if flags != 0 && s.state&stResetAfter != 0 {
			w.frame(wire.Header{Length: 4, Type: wire.TypeReset, Circuit: s.id}, wire.AppendReset(nil, wire.CodeCancelled), nil)
		}
		s.dropEmptyQueues()
		more := s.err == nil && (s.sendLen() > 0 && s.sendCredit > 0)
		small := s.sendLen() <= smallWrite
		s.wake() // room in the send buffer
		done := s.finished()
		s.mu.Unlock()
		if done {
			l.forget(s)
		}
		if flags != 0 {
			// A FIN: the stream may leave streams (now, or when the
			// peer's FIN comes) before the batch is written.
			l.lastWords = true
		}
		if more {
			s.inReady = true
			l.list(small).pushBack(s)
		}
	}
}

// finDue reports whether the FIN should go now: CloseWrite was called and
// everything before it is sent. Caller holds s.mu.
func (s *Stream) finDue() bool {
	return s.state&(stFinQueued|stFinSent) == stFinQueued && s.sendLen() == 0 && s.err == nil
}

// setWriteDeadline gives the next write WriteTimeout, or what is left of
// drainTimeout once the link is ending. Only for links with l.wdl.
func (l *link) setWriteDeadline() {
	d := time.Now().Add(l.node.cfg.WriteTimeout).UnixNano()
	for range 2 { // terminate sets drainBy once; a second pass sees it
		by := l.drainBy.Load()
		if by != 0 {
			d = min(d, by)
		}
		l.wdl.SetWriteDeadline(time.Unix(0, d))
		if l.drainBy.Load() == by {
			return
		}
	}
}

func (l *link) flush(w *batch) error {
	if l.wdl != nil {
		l.setWriteDeadline()
	}
	if l.writev || len(w.bufs) == 1 {
		bufs := w.bufs // WriteTo consumes its receiver; keep w.bufs' capacity
		_, err := bufs.WriteTo(l.conn)
		return err
	}
	// Without a gathering write, one copy beats a syscall per frame.
	w.flat = w.flat[:0]
	for _, b := range w.bufs {
		w.flat = append(w.flat, b...)
	}
	_, err := l.conn.Write(w.flat)
	return err
}
