package sdk

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
)

// ClientConfig tunes the host side of a plugin connection.
type ClientConfig struct {
	// Options are handed to the plugin in Configure (see Configurable).
	Options map[string]string
	// Timeout bounds each unary call on the plugin. Default 2 s.
	Timeout time.Duration
	// ProgressInterval is how often a quiet Watch stream must say so.
	// Default DefaultProgressInterval.
	ProgressInterval time.Duration
	// Logger receives the adapter's logs. Default: none.
	Logger hclog.Logger
	// OnBroken, if set, is called when the Watch or Session stream fails while
	// the client is open (the plugin may have died); the client re-opens it
	// with backoff.
	OnBroken func(error)
}

func (c ClientConfig) withDefaults() ClientConfig {
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// ErrClientClosed: the client adapter was closed.
var ErrClientClosed = errors.New("sdk: plugin client closed")

// DiscoveryClient is a core.Discovery that lives in the host and forwards to
// a plugin's Discovery service. It serves the plugin the Host service, keeps
// the plugin's Watch stream open and publishes each view the stream brings;
// a dial reads what it published and never waits on the plugin.
type DiscoveryClient struct {
	cfg    ClientConfig
	rpc    pluginv1.DiscoveryClient
	broker Broker

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	host     atomic.Pointer[hostServer]
	mu       sync.Mutex
	stopHost func()
	watching bool

	resets    atomic.Uint64
	lastEvent atomic.Int64 // unix nanos of the last Watch event
}

// NewDiscoveryClient talks to the Discovery service on cc. broker serves the
// Host service to the plugin; nil offers none.
func NewDiscoveryClient(cc grpc.ClientConnInterface, broker Broker, cfg ClientConfig) *DiscoveryClient {
	ctx, cancel := context.WithCancel(context.Background())
	return &DiscoveryClient{cfg: cfg.withDefaults(), rpc: pluginv1.NewDiscoveryClient(cc), broker: broker, ctx: ctx, cancel: cancel}
}

// Start configures the plugin for m and opens the Watch stream, whose views
// go to publish. It is Configure then Watch.
func (c *DiscoveryClient) Start(m core.Mesh, publish func([]core.Service)) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
	defer cancel()
	if err := c.Configure(ctx, m); err != nil {
		return err
	}
	c.Watch(publish)
	return nil
}

// Configure serves the Host service for m and calls the plugin's Configure.
func (c *DiscoveryClient) Configure(ctx context.Context, m core.Mesh) error {
	id, err := c.serveHost(m, wire.KindDiscovery)
	if err != nil {
		return err
	}
	req := &pluginv1.ConfigureRequest{NodeId: uint64(m.ID()), Caps: m.Caps(), Options: maps.Clone(c.cfg.Options), HostServiceId: id}
	if _, err := c.rpc.Configure(ctx, req); err != nil {
		return fmt.Errorf("sdk: configuring the discovery plugin: %w", err)
	}
	return nil
}

func (c *DiscoveryClient) serveHost(m core.Mesh, kind wire.Kind) (uint32, error) {
	return serveHost(c.ctx, &c.mu, &c.stopHost, &c.host, c.broker, m, kind)
}

// serveHost starts the Host service for m once; shared by both clients.
func serveHost(ctx context.Context, mu *sync.Mutex, stop *func(), host *atomic.Pointer[hostServer], b Broker, m core.Mesh, kind wire.Kind) (uint32, error) {
	mu.Lock()
	defer mu.Unlock()
	if ctx.Err() != nil {
		return 0, ErrClientClosed
	}
	if host.Load() != nil {
		return 0, errors.New("sdk: plugin already configured")
	}
	if b == nil {
		return 0, nil
	}
	h := newHostServer(m, kind)
	id, stopFn, err := b.ServeHost(h.register)
	if err != nil {
		return 0, fmt.Errorf("sdk: serving the host service: %w", err)
	}
	host.Store(h)
	*stop = func() {
		h.close()
		stopFn()
	}
	return id, nil
}

// Watch keeps the plugin's Watch stream open until Close, re-opening it with
// backoff, and passes each view to publish. Only the first call starts it.
//
// Watch also has the plugin re-read the node's links: a host may not pass
// link events to a plugin until it uses it (plugins.Discovery passes them
// only to the process it has made current, which it does before Watch), so
// the plugin's Receive stream, open since Configure, may have missed some.
func (c *DiscoveryClient) Watch(publish func([]core.Service)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watching || c.ctx.Err() != nil {
		return
	}
	c.watching = true
	if h := c.host.Load(); h != nil {
		h.resync()
	}
	c.wg.Add(1)
	go c.watch(publish)
}

func (c *DiscoveryClient) watch(publish func([]core.Service)) {
	defer c.wg.Done()
	b := backoff{min: 50 * time.Millisecond, max: 2 * time.Second}
	req := &pluginv1.WatchRequest{ProgressIntervalMs: uint32(c.cfg.ProgressInterval / time.Millisecond)}
	for {
		stream, err := c.rpc.Watch(c.ctx, req)
		if err == nil {
			err = c.follow(stream, publish, &b)
		}
		if c.ctx.Err() != nil {
			return
		}
		c.cfg.Logger.Warn("discovery plugin watch broke; re-opening", "error", err)
		if c.cfg.OnBroken != nil {
			c.cfg.OnBroken(err)
		}
		if !b.sleep(c.ctx) {
			return
		}
	}
}

// follow applies one Watch stream's events to a view until it fails.
func (c *DiscoveryClient) follow(stream grpc.ServerStreamingClient[pluginv1.WatchEvent], publish func([]core.Service), b *backoff) error {
	var view map[serviceKey]core.Service // nil until a snapshot arrives
	for {
		ev, err := stream.Recv()
		if err != nil {
			return err
		}
		c.lastEvent.Store(time.Now().UnixNano())
		b.reset()
		switch e := ev.GetEvent().(type) {
		case *pluginv1.WatchEvent_Snapshot:
			view = make(map[serviceKey]core.Service, len(e.Snapshot.GetServices()))
			c.put(view, e.Snapshot.GetServices())
		case *pluginv1.WatchEvent_Changes:
			if view == nil {
				return errors.New("sdk: discovery plugin sent changes before a snapshot")
			}
			for _, s := range e.Changes.GetDeleted() {
				delete(view, keyOf(fromPBService(s)))
			}
			c.put(view, e.Changes.GetPut())
		case *pluginv1.WatchEvent_ResetView:
			c.resets.Add(1)
			c.cfg.Logger.Info("discovery plugin reset its view", "reason", e.ResetView.GetReason())
			// Keep publishing nothing until the snapshot that follows: the
			// node goes on reading the last view meanwhile.
			view = nil
			continue
		default: // progress, or an event this host does not know
			continue
		}
		publish(listServices(view))
	}
}

// put adds services a plugin published to view. Those checkService refuses
// are left out (and an earlier version of one is removed), with a log line:
// one bad entry does not cost the node the rest of the view.
func (c *DiscoveryClient) put(view map[serviceKey]core.Service, ss []*pluginv1.Service) {
	n, first := 0, error(nil)
	for _, s := range ss {
		svc := fromPBService(s)
		if err := checkService(svc); err != nil {
			delete(view, keyOf(svc))
			if n++; first == nil {
				first = err
			}
			continue
		}
		view[keyOf(svc)] = svc
	}
	dropped(c.cfg.Logger, "discovery plugin published services that are not valid; dropped", n, first)
}

// Register announces s through the plugin, waiting at most the timeout.
func (c *DiscoveryClient) Register(s core.Service) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
	defer cancel()
	_, err := c.rpc.Register(ctx, &pluginv1.RegisterRequest{Service: toPBService(s)})
	return err
}

// Deregister withdraws s through the plugin, waiting at most the timeout.
func (c *DiscoveryClient) Deregister(s core.Service) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
	defer cancel()
	_, err := c.rpc.Deregister(ctx, &pluginv1.DeregisterRequest{Service: toPBService(s)})
	return err
}

// LinkUp queues a link event for the plugin; it never waits.
func (c *DiscoveryClient) LinkUp(l core.LinkInfo) {
	if h := c.host.Load(); h != nil {
		h.linkUp(l)
	}
}

// LinkDown queues a link event for the plugin; it never waits.
func (c *DiscoveryClient) LinkDown(l core.LinkInfo) {
	if h := c.host.Load(); h != nil {
		h.linkDown(l)
	}
}

// HandleControl queues a discovery control message for the plugin; it never
// waits.
func (c *DiscoveryClient) HandleControl(from core.LinkInfo, body []byte) {
	if h := c.host.Load(); h != nil {
		h.control(from, wire.KindDiscovery, body)
	}
}

// Resets counts the resets the plugin sent.
func (c *DiscoveryClient) Resets() uint64 { return c.resets.Load() }

// LastEvent is when the Watch stream last brought anything, progress
// included; zero before the first event.
func (c *DiscoveryClient) LastEvent() time.Time {
	if n := c.lastEvent.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Close stops the Watch stream and the Host service. It does not stop the
// plugin process: that is the go-plugin client's Kill.
func (c *DiscoveryClient) Close() error {
	c.mu.Lock()
	c.cancel()
	stop := c.stopHost
	c.stopHost = nil
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	c.wg.Wait()
	return nil
}
