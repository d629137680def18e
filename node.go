package astranet

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/routing"
	"github.com/astranet-go/astranet/core/wire"
	"github.com/astranet-go/astranet/discovery"
	"github.com/astranet-go/astranet/plugins"
	"github.com/astranet-go/astranet/transports/pipe"
	"github.com/astranet-go/astranet/transports/quic"
	"github.com/astranet-go/astranet/transports/tcp"
	"github.com/hashicorp/go-hclog"
)

// Option changes how New builds a node.
type Option func(*settings)

type settings struct {
	cfg        core.Config
	transports map[string]core.Transport
	env        string // ".a.b" suffix for service names
	loopBack   bool
	id         NodeID
	upgrade    bool                                      // WithDirectUpgrade
	advertise  []string                                  // addresses to announce for direct upgrade
	routing    func(core.Config) (core.Routing, error)   // nil: direct neighbours only
	discovery  func(core.Config) (core.Discovery, error) // nil: ask the neighbours
}

// WithLogger sends the node's logs to l.
func WithLogger(l hclog.Logger) Option { return func(s *settings) { s.cfg.Logger = l } }

// WithConfig lets f change any engine setting (windows, limits, keep-alive).
func WithConfig(f func(*core.Config)) Option { return func(s *settings) { f(&s.cfg) } }

// WithTransport serves networks with t in ListenAndServe and Join.
func WithTransport(t core.Transport, networks ...string) Option {
	return func(s *settings) {
		for _, n := range networks {
			s.transports[n] = t
		}
	}
}

// WithTLS secures the tcp and quic transports with cfg (mutual TLS when cfg
// asks for client certificates).
func WithTLS(cfg *tls.Config) Option {
	return func(s *settings) {
		t := tcp.New()
		t.TLS = cfg
		q := quic.New()
		q.TLS = cfg
		for _, n := range []string{"", "tcp", "tcp4", "tcp6"} {
			s.transports[n] = t
		}
		s.transports["quic"] = q
	}
}

// WithRouting replaces the embedded distance-vector routing: each node New
// (or WithEnv, Client, ...) builds calls f for its own instance. A nil f
// turns routing off: the node then reaches only its direct neighbours.
func WithRouting(f func(core.Config) (core.Routing, error)) Option {
	return func(s *settings) { s.routing = f }
}

// WithDiscovery replaces the embedded mesh discovery, as WithRouting does
// routing. A nil f turns discovery off: a dial by name then asks the direct
// neighbours.
func WithDiscovery(f func(core.Config) (core.Discovery, error)) Option {
	return func(s *settings) { s.discovery = f }
}

// WithDiscoveryPlugin runs discovery in the plugin binary cfg names (see
// package plugins): the node starts it, supervises it and restarts it.
func WithDiscoveryPlugin(cfg plugins.Config) Option {
	return WithDiscovery(func(c core.Config) (core.Discovery, error) {
		return plugins.LoadDiscovery(context.Background(), withLogger(cfg, c))
	})
}

// WithRoutingPlugin runs routing in the plugin binary cfg names.
func WithRoutingPlugin(cfg plugins.Config) Option {
	return WithRouting(func(c core.Config) (core.Routing, error) {
		return plugins.LoadRouting(context.Background(), withLogger(cfg, c))
	})
}

// withLogger returns a copy of cfg that logs through the node's logger if it
// has none of its own. A copy: the options of several nodes share cfg.
func withLogger(cfg plugins.Config, c core.Config) plugins.Config {
	if cfg.Logger == nil {
		cfg.Logger = c.Logger
	}
	return cfg
}

// DefaultRouting builds the embedded distance-vector routing.
func DefaultRouting(cfg core.Config) (core.Routing, error) {
	return routing.New(routing.Options{Logger: cfg.Logger}), nil
}

// DefaultDiscovery builds the embedded mesh discovery.
func DefaultDiscovery(cfg core.Config) (core.Discovery, error) {
	return discovery.NewMesh(discovery.MeshOptions{Logger: cfg.Logger, Client: cfg.Caps&wire.CapServer == 0}), nil
}

// WithID gives the node a chosen id instead of a random one.
func WithID(id NodeID) Option { return func(s *settings) { s.id = id } }

// New returns a node with the embedded defaults: tcp, quic and pipe
// transports, distance-vector routing and mesh discovery; it routes, serves
// and dials. The engine starts on first use.
func New(opts ...Option) AstraNet {
	s := settings{cfg: core.DefaultConfig(), transports: map[string]core.Transport{},
		routing: DefaultRouting, discovery: DefaultDiscovery}
	t := tcp.New()
	for _, n := range []string{"", "tcp", "tcp4", "tcp6"} {
		s.transports[n] = t
	}
	s.transports["quic"] = quic.New()
	s.transports["pipe"] = pipe.New()
	for _, o := range opts {
		o(&s)
	}
	return &node{s: s, roundRobin: discovery.RoundRobin()}
}

// node is the face over one core.Node, started lazily so that
// New().WithEnv(...) costs nothing for the node it copies.
type node struct {
	s          settings
	roundRobin discovery.Selector // this node's turn-taking, for the "roundrobin" network
	up         upgrader
	once       sync.Once
	core       *core.Node
	initErr    error
}

func (n *node) engine() (*core.Node, error) {
	n.once.Do(func() {
		// Check first: a bad config must not leave a plugin process behind.
		if n.initErr = n.s.cfg.Verify(); n.initErr != nil {
			return
		}
		o := core.Options{Config: n.s.cfg, ID: n.s.id, Transports: n.s.transports, LoopBack: n.s.loopBack}
		if n.s.routing != nil {
			if o.Routing, n.initErr = n.s.routing(n.s.cfg); n.initErr != nil {
				n.initErr = fmt.Errorf("astranet: routing: %w", n.initErr)
				return
			}
		}
		if n.s.discovery != nil {
			if o.Discovery, n.initErr = n.s.discovery(n.s.cfg); n.initErr != nil {
				if o.Routing != nil {
					o.Routing.Close()
				}
				n.initErr = fmt.Errorf("astranet: discovery: %w", n.initErr)
				return
			}
		}
		n.core, n.initErr = core.New(o)
	})
	return n.core, n.initErr
}

// derive copies the settings (not the id) into a fresh node.
func (n *node) derive(f func(*settings)) Multiplexer {
	s := n.s
	s.id = 0
	s.transports = make(map[string]core.Transport, len(n.s.transports))
	for k, v := range n.s.transports {
		s.transports[k] = v
	}
	f(&s)
	return &node{s: s, roundRobin: discovery.RoundRobin()}
}

func (n *node) WithEnv(env ...string) Multiplexer {
	return n.derive(func(s *settings) {
		for _, e := range env {
			s.env += "." + e
		}
	})
}

func (n *node) WithLoopBack() Multiplexer { return n.derive(func(s *settings) { s.loopBack = true }) }
func (n *node) Client() Multiplexer {
	return n.derive(func(s *settings) { s.cfg.Caps = wire.CapClient })
}
func (n *node) Server() Multiplexer {
	return n.derive(func(s *settings) { s.cfg.Caps = wire.CapServer })
}
func (n *node) Router() Multiplexer {
	return n.derive(func(s *settings) { s.cfg.Caps = wire.CapRouter })
}
func (n *node) New() Multiplexer {
	return n.derive(func(s *settings) { s.cfg.Caps = wire.CapRouter | wire.CapServer | wire.CapClient })
}

// Start starts the node's engine now, rather than at its first use, and
// returns why it cannot (a bad config, a plugin that does not start, a node
// already closed). Every method starts the engine when first needed; Start
// lets a program report that error first.
func (n *node) Start() error {
	_, err := n.engine()
	return err
}

func (n *node) ID() NodeID {
	c, err := n.engine()
	if err != nil {
		return 0
	}
	return c.ID()
}

// Close stops the node. A node never used has no engine to stop: Close does
// not start one (which could launch plugin processes only to kill them), and
// the node stays closed.
func (n *node) Close() error {
	n.once.Do(func() { n.initErr = ErrClosed })
	if n.core == nil {
		return nil
	}
	err := n.core.Close()
	n.up.close()
	return err
}

// Shutdown stops the node gracefully (see AstraNet.Shutdown). Like Close, it
// does not start an engine that was never used.
func (n *node) Shutdown(ctx context.Context) error {
	n.once.Do(func() { n.initErr = ErrClosed })
	if n.core == nil {
		return nil
	}
	err := n.core.Shutdown(ctx)
	n.up.close()
	return err
}

func (n *node) Attach(conn io.ReadWriter) error {
	c, err := n.engine()
	if err != nil {
		return err
	}
	return c.Attach(conn)
}

func (n *node) ListenAndServe(network, address string) error {
	_, err := n.ListenAddr(network, address)
	return err
}

// ListenAddr is ListenAndServe that also returns the address it listens on,
// for ":0".
func (n *node) ListenAddr(network, address string) (net.Addr, error) {
	c, err := n.engine()
	if err != nil {
		return nil, err
	}
	addr, err := c.ListenAndServe(network, address)
	if err == nil {
		n.noteListen(network, addr)
	}
	return addr, err
}

func (n *node) Join(network, address string) error {
	c, err := n.engine()
	if err != nil {
		return err
	}
	return c.Join(context.Background(), network, address) // core bounds the dial by HandshakeTimeout
}

func (n *node) Bind(network, hp string) (net.Listener, error) { return n.BindMeta(network, hp, nil) }

func (n *node) BindMeta(network, hp string, metadata map[string]string) (net.Listener, error) {
	c, err := n.engine()
	if err != nil {
		return nil, err
	}
	name, port, err := splitNamePort(hp)
	if err != nil {
		return nil, fmt.Errorf("astranet: bind %q: %w", hp, err)
	}
	if name == "" && port == 0 {
		return nil, fmt.Errorf("astranet: bind %q: want \":port\", \"name\" or \"name:port\"", hp)
	}
	if name != "" {
		if _, err := core.ParseNodeID(name); err == nil {
			return nil, fmt.Errorf("astranet: bind: service name %q would read as a node id", name)
		}
		name += n.s.env
	}
	l, err := c.BindService(port, name, n.announce(metadata))
	if err != nil {
		return nil, err // a nil net.Listener, not a nil *core.Listener inside one
	}
	return l, nil
}

func (n *node) Dial(network, hp string) (net.Conn, error) {
	return n.DialTimeout(network, hp, DefaultDialTimeout)
}

func (n *node) DialTimeout(network, hp string, t time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), t)
	defer cancel()
	return n.DialContext(ctx, network, hp)
}

func (n *node) DialContext(ctx context.Context, network, hp string) (net.Conn, error) {
	c, err := n.engine()
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "astranet", Err: err}
	}
	t, err := n.target(network, hp)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "astranet", Err: err}
	}
	conn, err := c.Dial(ctx, t)
	if err != nil {
		return nil, err // a nil net.Conn, not a nil *core.Stream inside one
	}
	n.upgrade(c, conn, t.Service)
	return conn, nil
}

func (n *node) HttpDial(network, host string) (net.Conn, error) {
	if _, err := core.ParseNodeID(strings.TrimSuffix(host, ":80")); err == nil {
		return n.Dial("", host) // a node's port 80 is a port like any other
	}
	return n.Dial("", strings.TrimSuffix(host, ":80"))
}

// target reads "<node-id>:<port>", "name" or "name:port", and picks the
// selector network asks for. A name, with the environment, must be one the
// wire accepts (wire.CheckName).
func (n *node) target(network, hp string) (core.Target, error) {
	name, port, err := splitNamePort(hp)
	if err != nil {
		return core.Target{}, fmt.Errorf("address %q: %w", hp, err)
	}
	if id, err := core.ParseNodeID(name); err == nil {
		if port == 0 {
			return core.Target{}, fmt.Errorf("address %q: a node id needs a port", hp)
		}
		return core.Target{Node: id, Port: port}, nil
	} else if name == "0000000000000000" {
		return core.Target{}, fmt.Errorf("address %q: %w", hp, err) // node id 0 names no node
	}
	if name == "" {
		return core.Target{}, fmt.Errorf("address %q names no node and no service", hp)
	}
	t := core.Target{Service: name + n.s.env, Port: port}
	if err := wire.CheckName(t.Service); err != nil {
		return core.Target{}, fmt.Errorf("address %q: %w", hp, err)
	}
	switch {
	case network == "roundrobin":
		t.Pick = n.roundRobin
	case network == "nearest":
		if c, err := n.engine(); err == nil {
			t.Pick = discovery.Nearest(c.Routes)
		}
	case strings.HasPrefix(network, "registry://"):
		t.Pick = discovery.Rendezvous(network)
	case network == "vport2registry":
		t.Pick = discovery.Rendezvous(strconv.FormatUint(uint64(port), 10))
	}
	return t, nil
}

// splitNamePort splits "name:port" at its last colon; either part may be
// missing.
func splitNamePort(hp string) (string, uint32, error) {
	i := strings.LastIndexByte(hp, ':')
	if i < 0 {
		return hp, 0, nil
	}
	p, err := strconv.ParseUint(hp[i+1:], 10, 32)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("port %q is not a number in [1, 2^32)", hp[i+1:])
	}
	return hp[:i], uint32(p), nil
}
