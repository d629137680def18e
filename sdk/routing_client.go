package sdk

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
	"google.golang.org/grpc"
)

// routingQueue bounds the events waiting to go to a routing plugin.
const routingQueue = 4096

// RoutingClient is a core.Routing that lives in the host and forwards to a
// plugin's Routing service over one Session stream: link events and routing
// messages go in without waiting, route tables come out and are published.
type RoutingClient struct {
	cfg    ClientConfig
	rpc    pluginv1.RoutingClient
	broker Broker

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	host     atomic.Pointer[hostServer]
	mu       sync.Mutex
	stopHost func()
	started  bool

	inputs  chan *pluginv1.RoutingInput
	dropped atomic.Uint64
	// endSession ends the current session, so that the next one restates the
	// links: called when a link event had to be dropped.
	endSession atomic.Pointer[context.CancelFunc]
}

// NewRoutingClient talks to the Routing service on cc; broker serves the Host
// service to the plugin (nil: none).
func NewRoutingClient(cc grpc.ClientConnInterface, broker Broker, cfg ClientConfig) *RoutingClient {
	ctx, cancel := context.WithCancel(context.Background())
	return &RoutingClient{cfg: cfg.withDefaults(), rpc: pluginv1.NewRoutingClient(cc), broker: broker,
		ctx: ctx, cancel: cancel, inputs: make(chan *pluginv1.RoutingInput, routingQueue)}
}

// Start configures the plugin for m and opens the session, whose tables go
// to publish. It is Configure then Run.
func (c *RoutingClient) Start(m core.Mesh, publish func([]core.Route)) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.Timeout)
	defer cancel()
	if err := c.Configure(ctx, m); err != nil {
		return err
	}
	c.Run(m, publish)
	return nil
}

// Configure serves the Host service for m and calls the plugin's Configure.
func (c *RoutingClient) Configure(ctx context.Context, m core.Mesh) error {
	id, err := serveHost(c.ctx, &c.mu, &c.stopHost, &c.host, c.broker, m, wire.KindRouting)
	if err != nil {
		return err
	}
	req := &pluginv1.ConfigureRequest{NodeId: uint64(m.ID()), Caps: m.Caps(), Options: maps.Clone(c.cfg.Options), HostServiceId: id}
	if _, err := c.rpc.Configure(ctx, req); err != nil {
		return fmt.Errorf("sdk: configuring the routing plugin: %w", err)
	}
	return nil
}

// Run keeps a Session open until Close, re-opening it with backoff, and
// passes each table to publish. Only the first call starts it.
func (c *RoutingClient) Run(m core.Mesh, publish func([]core.Route)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.ctx.Err() != nil {
		return
	}
	c.started = true
	c.wg.Add(1)
	go c.sessions(m, publish)
}

// sessions keeps a Session open until Close.
func (c *RoutingClient) sessions(m core.Mesh, publish func([]core.Route)) {
	defer c.wg.Done()
	b := backoff{min: 50 * time.Millisecond, max: 2 * time.Second}
	for {
		err := c.session(m, publish, &b)
		if c.ctx.Err() != nil {
			return
		}
		c.cfg.Logger.Warn("routing plugin session broke; re-opening", "error", err)
		if c.cfg.OnBroken != nil {
			c.cfg.OnBroken(err)
		}
		if !b.sleep(c.ctx) {
			return
		}
	}
}

// session runs one Session. It begins by restating the links, every time, in
// place of the events queued until then: events for a broken session may be
// lost (or dropped for a full queue, which ends it), and on the first session
// of a plugin process the host may have dropped link events while the
// process was being configured (it lists the links in Configure, but is not
// yet sent events). The plugin drops the links gone when the session opens.
func (c *RoutingClient) session(m core.Mesh, publish func([]core.Route), b *backoff) error {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	c.endSession.Store(&cancel)
	stream, err := c.rpc.Session(ctx)
	if err != nil {
		return err
	}
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		// The links listed below supersede the events queued before: a
		// LinkUp left there must not follow a list that lacks the link (its
		// LinkDown may be the event whose drop ended the last session).
		// Routing messages go with them; they repair themselves.
	drain:
		for {
			select {
			case <-c.inputs:
			default:
				break drain
			}
		}
		for _, l := range m.Links() {
			if stream.Send(&pluginv1.RoutingInput{Event: &pluginv1.RoutingInput_LinkUp{LinkUp: toPBLink(l)}}) != nil {
				return
			}
		}
		for {
			select {
			case <-ctx.Done():
				return
			case in := <-c.inputs:
				if stream.Send(in) != nil {
					cancel()
					return
				}
			}
		}
	}()
	defer func() { <-sendDone }()
	for {
		out, err := stream.Recv()
		if err != nil {
			cancel()
			return err
		}
		b.reset()
		publish(routesFromPlugin(out.GetRoutes(), m.ID(), c.cfg.Logger))
	}
}

func (c *RoutingClient) queue(in *pluginv1.RoutingInput) {
	select {
	case c.inputs <- in:
	default:
		if c.dropped.Add(1)&1023 == 1 {
			c.cfg.Logger.Warn("routing plugin is not keeping up; events dropped", "dropped", c.dropped.Load())
		}
		if in.GetControl() == nil {
			// A lost link event would leave the plugin with a wrong set of
			// links; routing messages repair themselves. A new session
			// restates the links (and the plugin drops those gone).
			if end := c.endSession.Load(); end != nil {
				(*end)()
			}
		}
	}
}

// LinkUp queues a link event for the plugin; it never waits.
func (c *RoutingClient) LinkUp(l core.LinkInfo) {
	c.queue(&pluginv1.RoutingInput{Event: &pluginv1.RoutingInput_LinkUp{LinkUp: toPBLink(l)}})
}

// LinkDown queues a link event for the plugin; it never waits.
func (c *RoutingClient) LinkDown(l core.LinkInfo) {
	c.queue(&pluginv1.RoutingInput{Event: &pluginv1.RoutingInput_LinkDown{LinkDown: toPBLink(l)}})
}

// HandleControl queues a routing message for the plugin; it never waits.
func (c *RoutingClient) HandleControl(from core.LinkInfo, body []byte) {
	msg := &pluginv1.ControlMessage{From: toPBLink(from), Kind: uint32(wire.KindRouting), Body: bytes.Clone(body)}
	c.queue(&pluginv1.RoutingInput{Event: &pluginv1.RoutingInput_Control{Control: msg}})
}

// Dropped counts the events lost because the plugin did not keep up.
func (c *RoutingClient) Dropped() uint64 { return c.dropped.Load() }

// Close ends the session and the Host service; the plugin process is the
// go-plugin client's to stop.
func (c *RoutingClient) Close() error {
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
