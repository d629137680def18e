package sdk

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/astranet-go/astranet/core"
)

// ServeConfig is what a plugin's main hands to Serve.
type ServeConfig struct {
	// Discovery and Routing are the implementations served; at least one.
	Discovery core.Discovery
	Routing   core.Routing
	// Logger receives the plugin's logs. The default writes JSON to stderr at
	// the level named by $ASTRANET_PLUGIN_LOG_LEVEL (info if unset); the host
	// reads stderr and re-logs each line through its own logger. A plugin
	// never writes to stdout: go-plugin's handshake line goes there.
	Logger hclog.Logger
}

// parentPoll is how often Serve checks that the process that started the
// plugin still lives.
const parentPoll = 200 * time.Millisecond

// Serve runs the plugin until the host stops it or goes away, then closes
// the implementations. Call it from main; it returns their Close error.
//
// Run by hand (without the host's cookie in the environment), it prints a
// notice to stderr and exits with status 1.
func Serve(cfg ServeConfig) error {
	if cfg.Discovery == nil && cfg.Routing == nil {
		return errors.New("sdk: Serve needs a Discovery or a Routing")
	}
	log := cfg.Logger
	if log == nil {
		level := hclog.LevelFromString(os.Getenv("ASTRANET_PLUGIN_LOG_LEVEL"))
		if level == hclog.NoLevel {
			level = hclog.Info
		}
		log = hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: level, Output: os.Stderr, JSONFormat: true})
	}
	set := plugin.PluginSet{}
	var dp *DiscoveryPlugin
	var rp *RoutingPlugin
	if cfg.Discovery != nil {
		dp = &DiscoveryPlugin{Impl: cfg.Discovery, Logger: log.Named("discovery")}
		set[DiscoveryPluginName] = dp
	}
	if cfg.Routing != nil {
		rp = &RoutingPlugin{Impl: cfg.Routing, Logger: log.Named("routing")}
		set[RoutingPluginName] = rp
	}
	w := &hostWatch{log: log, parent: os.Getppid(), done: make(chan struct{})}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         set,
		Logger:          log,
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			s := grpc.NewServer(append(opts, grpc.StatsHandler(w))...)
			w.start(s)
			return s
		},
	})
	w.close()
	var err error
	if dp != nil && dp.server != nil {
		err = dp.server.Close()
	}
	if rp != nil && rp.server != nil {
		err = errors.Join(err, rp.server.Close())
	}
	return err
}

// hostWatch stops the plugin's gRPC server (and so Serve) when the host goes
// away: when its last connection to the server closes, as the kernel closes
// a dead host's sockets, or when the process is re-parented because its
// parent died before it ever connected.
type hostWatch struct {
	log    hclog.Logger
	parent int
	done   chan struct{}

	mu       sync.Mutex
	srv      *grpc.Server
	conns    int
	stopping bool
	wg       sync.WaitGroup
}

func (w *hostWatch) start(s *grpc.Server) {
	w.mu.Lock()
	w.srv = s
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(parentPoll)
		defer t.Stop()
		for {
			select {
			case <-w.done:
				return
			case <-t.C:
				if os.Getppid() != w.parent {
					w.stop("the host process is gone")
					return
				}
			}
		}
	}()
}

func (w *hostWatch) stop(why string) {
	w.mu.Lock()
	s := w.srv
	already := w.stopping
	w.stopping = true
	w.mu.Unlock()
	if already || s == nil {
		return
	}
	w.log.Info("stopping: " + why)
	// Stop, not GracefulStop: streams to a dead host never finish.
	go s.Stop()
}

func (w *hostWatch) close() {
	close(w.done)
	w.wg.Wait()
}

func (w *hostWatch) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (w *hostWatch) HandleRPC(context.Context, stats.RPCStats)                         {}
func (w *hostWatch) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (w *hostWatch) HandleConn(_ context.Context, s stats.ConnStats) {
	switch s.(type) {
	case *stats.ConnBegin:
		w.mu.Lock()
		w.conns++
		w.mu.Unlock()
	case *stats.ConnEnd:
		w.mu.Lock()
		w.conns--
		last := w.conns == 0
		w.mu.Unlock()
		if last {
			w.stop("the host closed its connection")
		}
	}
}
