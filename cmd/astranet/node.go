package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/astranet-go/astranet"
	"github.com/astranet-go/astranet/plugins"
	"github.com/hashicorp/go-hclog"
)

// listenAddrer is the part of the concrete node that reports the address
// ListenAndServe chose, for ":0".
type listenAddrer interface {
	ListenAddr(network, addr string) (net.Addr, error)
}

// proxyDialTimeout bounds the dial behind one exposed or forwarded connection.
const proxyDialTimeout = 10 * time.Second

func runNode(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("node", "-listen network://host:port | -join network://host:port [flags]", stderr)
	var listens, joins, exposes, forwards listFlag
	fs.Var(&listens, "listen", "accept links on `network://host:port`, e.g. tcp4://:10000 or quic://:10001 (repeatable)")
	fs.Var(&joins, "join", "keep a link to the node at `network://host:port` (repeatable)")
	fs.Var(&exposes, "expose", "bind a service and proxy each stream to it to a local TCP address: `name=host:port` (repeatable)")
	fs.Var(&forwards, "forward", "listen on a local TCP address and proxy each connection to a service: `host:port=name` (repeatable)")
	statusEvery := fs.Duration("status-interval", 0, "print routes (links) and services this often; 0 never")
	maxConns := fs.Int("max-conns", 1024, "the most connections each -expose or -forward proxies at once; more wait in the listener's backlog\n(an -expose's holds 1024 streams, then refuses) until one ends")
	idleTimeout := fs.Duration("idle-timeout", 0, "close a proxied connection after this long with no bytes either way; 0 never")
	grace := fs.Duration("grace", 10*time.Second, "on SIGINT or SIGTERM, stop taking connections and give open ones this long to finish;\na second signal, or 0, stops at once")
	discoveryPlugin := fs.String("discovery-plugin", "", "run discovery in the plugin binary at `path` instead of the embedded mesh discovery")
	routingPlugin := fs.String("routing-plugin", "", "run routing in the plugin binary at `path` instead of the embedded distance-vector routing")
	var discoveryOpts, routingOpts listFlag
	fs.Var(&discoveryOpts, "discovery-opt", "pass the discovery plugin the option `key=value` (repeatable), e.g. path=services.json")
	fs.Var(&routingOpts, "routing-opt", "pass the routing plugin the option `key=value` (repeatable)")
	verbose := fs.Bool("v", false, "log at Debug level")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	cfg, err := parseNodeFlags(listens, joins, exposes, forwards)
	switch {
	case err != nil:
	case *statusEvery < 0:
		err = fmt.Errorf("-status-interval %v is negative", *statusEvery)
	case *maxConns < 1:
		err = fmt.Errorf("-max-conns %d: want at least 1", *maxConns)
	case *idleTimeout < 0:
		err = fmt.Errorf("-idle-timeout %v is negative", *idleTimeout)
	case *grace < 0:
		err = fmt.Errorf("-grace %v is negative", *grace)
	}
	var discoveryCfg, routingCfg plugins.Config
	if err == nil {
		discoveryCfg, err = pluginConfig("discovery", *discoveryPlugin, discoveryOpts)
	}
	if err == nil {
		routingCfg, err = pluginConfig("routing", *routingPlugin, routingOpts)
	}
	cfg.maxConns, cfg.idle = *maxConns, *idleTimeout
	if err != nil {
		fmt.Fprintf(stderr, "astranet node: %v\n", err)
		fs.Usage()
		return 2
	}

	// The proxies run until ctx ends or the node stops, not until the signal:
	// open connections get the grace period to finish.
	proxyCtx, endProxies := context.WithCancel(ctx)
	defer endProxies()
	// One channel for the whole run, with room for two signals: the first
	// starts the grace period, the second ends it, however soon it follows
	// (the two must neither be lost between two registrations nor find the
	// default action, which kills the process, in between).
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	log := newLogger(stderr, *verbose)
	opts := []astranet.Option{astranet.WithLogger(log)}
	if discoveryCfg.Path != "" {
		opts = append(opts, astranet.WithDiscoveryPlugin(discoveryCfg))
	}
	if routingCfg.Path != "" {
		opts = append(opts, astranet.WithRoutingPlugin(routingCfg))
	}
	r := &nodeRunner{node: astranet.New(opts...), out: stdout, log: log.Named("cmd")}
	err = r.start(proxyCtx, cfg)
	if err == nil {
		r.wait(ctx, sigs, *statusEvery)
	}
	if err != nil || ctx.Err() != nil {
		*grace = 0 // nothing started, or the caller ended ctx: no grace
	}
	r.stop(ctx, *grace, sigs, endProxies)
	if err != nil {
		fmt.Fprintf(stderr, "astranet node: %v\n", err)
		return 1
	}
	return 0
}

// pluginConfig is the configuration of the plugin at path (none if path is
// empty) with the options given as key=value; what is "discovery" or
// "routing", for the flags' names in errors.
func pluginConfig(what, path string, opts []string) (plugins.Config, error) {
	if path == "" {
		if len(opts) > 0 {
			return plugins.Config{}, fmt.Errorf("-%s-opt without -%s-plugin", what, what)
		}
		return plugins.Config{}, nil
	}
	cfg := plugins.DefaultConfig(path)
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok || k == "" {
			return plugins.Config{}, fmt.Errorf("-%s-opt %q: want key=value", what, o)
		}
		if _, dup := cfg.Options[k]; dup {
			return plugins.Config{}, fmt.Errorf("-%s-opt %q: %q given twice", what, o, k)
		}
		if cfg.Options == nil {
			cfg.Options = make(map[string]string)
		}
		cfg.Options[k] = v
	}
	return cfg, nil
}

// nodeConfig is the node command's flags, checked.
type nodeConfig struct {
	listens, joins []endpoint
	exposes        []pair        // service name = local TCP address
	forwards       []pair        // local TCP address = service name
	maxConns       int           // proxied connections at once, per -expose or -forward
	idle           time.Duration // close a proxied connection this long without traffic; 0 never
}

type endpoint struct{ network, addr string }

type pair struct{ left, right string }

func parseNodeFlags(listens, joins, exposes, forwards []string) (nodeConfig, error) {
	var cfg nodeConfig
	if len(listens)+len(joins) == 0 {
		return cfg, errors.New("give at least one -listen or -join")
	}
	for _, s := range listens {
		n, a, err := parseEndpoint(s)
		if err != nil {
			return cfg, fmt.Errorf("-listen %v", err)
		}
		cfg.listens = append(cfg.listens, endpoint{n, a})
	}
	for _, s := range joins {
		n, a, err := parseEndpoint(s)
		if err != nil {
			return cfg, fmt.Errorf("-join %v", err)
		}
		cfg.joins = append(cfg.joins, endpoint{n, a})
	}
	for _, s := range exposes {
		name, addr, err := parsePair(s, "name=host:port")
		if err == nil {
			err = checkHostPort(addr)
		}
		if err != nil {
			return cfg, fmt.Errorf("-expose %v", err)
		}
		cfg.exposes = append(cfg.exposes, pair{name, addr})
	}
	for _, s := range forwards {
		addr, name, err := parsePair(s, "host:port=name")
		if err == nil {
			err = checkHostPort(addr)
		}
		if err != nil {
			return cfg, fmt.Errorf("-forward %v", err)
		}
		cfg.forwards = append(cfg.forwards, pair{addr, name})
	}
	return cfg, nil
}

// nodeRunner is a running node with the listeners and proxies around it.
type nodeRunner struct {
	node      astranet.AstraNet
	out       io.Writer
	log       hclog.Logger
	listeners []net.Listener
	wg        sync.WaitGroup // accept loops and proxies
}

// start brings the node up as cfg asks and prints what it did. It stops at
// the first thing that fails.
func (r *nodeRunner) start(ctx context.Context, cfg nodeConfig) error {
	if s, ok := r.node.(interface{ Start() error }); ok {
		if err := s.Start(); err != nil {
			return fmt.Errorf("starting the node: %w", err)
		}
	}
	fmt.Fprintf(r.out, "node %s\n", r.node.ID())
	for _, e := range cfg.listens {
		a, err := r.node.(listenAddrer).ListenAddr(e.network, e.addr)
		if err != nil {
			return fmt.Errorf("listen %s://%s: %w", e.network, e.addr, err)
		}
		fmt.Fprintf(r.out, "listening on %s://%s\n", e.network, a)
	}
	for _, p := range cfg.exposes {
		name, target := p.left, p.right
		l, err := r.node.Bind("", name)
		if err != nil {
			return fmt.Errorf("expose %s: %w", name, err)
		}
		r.serve(l, cfg.maxConns, func(c net.Conn) {
			var d net.Dialer
			dctx, cancel := context.WithTimeout(ctx, proxyDialTimeout)
			t, err := d.DialContext(dctx, "tcp", target)
			cancel()
			if err != nil {
				r.log.Warn("expose: cannot reach the local service", "service", name, "error", err)
				c.Close()
				return
			}
			proxy(ctx, c, t, cfg.idle)
		})
		fmt.Fprintf(r.out, "exposing service %q -> tcp://%s\n", name, target)
	}
	for _, p := range cfg.forwards {
		local, name := p.left, p.right
		l, err := net.Listen("tcp", local)
		if err != nil {
			return fmt.Errorf("forward %s: %w", local, err)
		}
		r.serve(l, cfg.maxConns, func(c net.Conn) {
			s, err := r.node.DialTimeout("", name, proxyDialTimeout)
			if err != nil {
				r.log.Warn("forward: cannot reach the service", "service", name, "error", err)
				c.Close()
				return
			}
			proxy(ctx, c, s, cfg.idle)
		})
		fmt.Fprintf(r.out, "forwarding tcp://%s -> service %q\n", l.Addr(), name)
	}
	for _, e := range cfg.joins {
		if err := r.node.Join(e.network, e.addr); err != nil {
			return fmt.Errorf("join %s://%s: %w", e.network, e.addr, err)
		}
		fmt.Fprintf(r.out, "joined %s://%s\n", e.network, e.addr)
	}
	fmt.Fprintln(r.out, "running; stop with Ctrl-C (SIGINT) or SIGTERM")
	return nil
}

// serve accepts from l until it is closed, handling each connection in its
// own goroutine (these are the application's proxies, not the library's), at
// most max at once. (x/net/netutil's LimitListener would bound them too, but
// its connections hide CloseWrite, which the proxies need for half-closes.)
func (r *nodeRunner) serve(l net.Listener, max int, handle func(net.Conn)) {
	r.listeners = append(r.listeners, l)
	r.wg.Go(func() {
		err := acceptEach(l, &r.wg, max, r.log, handle)
		if !errors.Is(err, net.ErrClosed) && !errors.Is(err, astranet.ErrClosed) {
			r.log.Error("listener stopped", "addr", l.Addr(), "error", err)
		}
	})
}

// wait blocks until ctx ends or a signal comes on sigs, printing the status
// every interval (if > 0).
func (r *nodeRunner) wait(ctx context.Context, sigs <-chan os.Signal, interval time.Duration) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-sigs:
			return
		case <-tick:
			r.printStatus()
		}
	}
}

func (r *nodeRunner) printStatus() {
	routes, services := r.node.Routes(), r.node.Services()
	fmt.Fprintf(r.out, "status %s: routes %d, services %d\n", time.Now().Format(time.TimeOnly), len(routes), len(services))
	for _, rt := range routes {
		fmt.Fprintf(r.out, "  route   %s via %s metric %d\n", rt.Host, rt.Upstream, rt.Metric)
	}
	for _, s := range services {
		name := s.Service
		if name == "" {
			name = "(port only)"
		}
		fmt.Fprintf(r.out, "  service %-20s at %s:%d\n", name, s.Host, s.Port)
	}
}

// errSignalledAgain ends the grace period when a second signal comes.
var errSignalledAgain = errors.New("signalled again")

// stop closes the listeners, gives the open connections up to grace to
// finish (a signal on sigs cuts that short), then ends the proxies that are
// left (endProxies ends the context start was given: some, one waiting on
// its local side alone, the node's Close would not end), closes the node and
// waits for the accept loops and the proxies. From the end of the grace
// period on, signals act as they do by default.
func (r *nodeRunner) stop(ctx context.Context, grace time.Duration, sigs chan os.Signal, endProxies context.CancelFunc) {
	for _, l := range r.listeners {
		l.Close()
	}
	if grace > 0 {
		fmt.Fprintf(r.out, "stopping: open connections have %v to finish; signal again to stop now\n", grace)
		tctx, cancelTimeout := context.WithTimeout(ctx, grace)
		gctx, cancel := context.WithCancelCause(tctx)
		go func() {
			select {
			case <-sigs:
				cancel(errSignalledAgain)
			case <-gctx.Done():
			}
		}()
		err := r.node.Shutdown(gctx)
		switch {
		case err == nil:
		case gctx.Err() != nil:
			why := "grace period over"
			if errors.Is(context.Cause(gctx), errSignalledAgain) {
				why = "signalled again"
			}
			r.log.Warn("closing the connections still open", "reason", why)
		default:
			r.log.Warn("shutdown", "error", err)
		}
		cancel(nil)
		cancelTimeout()
	}
	signal.Stop(sigs)
	endProxies()
	if err := r.node.Close(); err != nil {
		r.log.Warn("close", "error", err)
	}
	r.wg.Wait()
	fmt.Fprintln(r.out, "stopped")
}
