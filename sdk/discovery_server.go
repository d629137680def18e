package sdk

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults of the plugin side.
const (
	// DefaultProgressInterval is how often a quiet Watch stream says so when
	// the host asks for no interval of its own.
	DefaultProgressInterval = 5 * time.Second
	// MinProgressInterval is the shortest progress interval a Watch stream
	// honours, whatever the host asks.
	MinProgressInterval = 50 * time.Millisecond
	// hostCallTimeout bounds each call the plugin makes on the Host service.
	hostCallTimeout = 2 * time.Second
)

// DiscoveryServer serves a core.Discovery as the Discovery service, in the
// plugin process. Serve builds one; tests may build one to put any
// implementation behind gRPC.
type DiscoveryServer struct {
	pluginv1.UnimplementedDiscoveryServer
	impl   core.Discovery
	broker Broker
	log    hclog.Logger
	hub    *viewHub

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	configured bool
	closed     bool
	mesh       *remoteMesh
	hostConn   *grpc.ClientConn
}

// NewDiscoveryServer serves impl. broker reaches the host's Host service; nil
// leaves the plugin without one (Send then fails with ErrNoHost).
func NewDiscoveryServer(impl core.Discovery, broker Broker, log hclog.Logger) *DiscoveryServer {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &DiscoveryServer{impl: impl, broker: broker, log: log, hub: newViewHub(), ctx: ctx, cancel: cancel}
}

// Configure dials the host's Host service, configures impl and starts it.
func (s *DiscoveryServer) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, status.Error(codes.Unavailable, "plugin closing")
	case s.configured:
		return nil, status.Error(codes.FailedPrecondition, "already configured")
	}
	host, conn, err := dialHost(s.broker, req.GetHostServiceId())
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dialling the host service: %v", err)
	}
	mesh := newRemoteMesh(req, host, hostCallTimeout, s.hub.reset)
	if _, _, err := mesh.refreshLinks(); err != nil {
		s.log.Warn("listing the host's links", "error", err)
	}
	if c, ok := s.impl.(Configurable); ok {
		if err := c.Configure(req.GetOptions()); err != nil {
			closeConn(conn)
			return nil, status.Errorf(codes.InvalidArgument, "configure: %v", err)
		}
	}
	if err := s.impl.Start(mesh, s.hub.publish); err != nil {
		closeConn(conn)
		return nil, status.Errorf(codes.FailedPrecondition, "start: %v", err)
	}
	s.configured, s.mesh, s.hostConn = true, mesh, conn
	if host != nil {
		s.wg.Add(1)
		go s.receive(host, mesh)
	}
	return &pluginv1.ConfigureResponse{Implementation: fmt.Sprintf("%T", s.impl)}, nil
}

func dialHost(b Broker, id uint32) (pluginv1.HostClient, *grpc.ClientConn, error) {
	if id == 0 || b == nil {
		return nil, nil, nil
	}
	conn, err := b.DialHost(id)
	if err != nil {
		return nil, nil, err
	}
	return pluginv1.NewHostClient(conn), conn, nil
}

func closeConn(c *grpc.ClientConn) {
	if c != nil {
		c.Close()
	}
}

// receive feeds impl the host's link events and control messages until Close.
func (s *DiscoveryServer) receive(host pluginv1.HostClient, mesh *remoteMesh) {
	defer s.wg.Done()
	receiveLoop(s.ctx, s.log, host, mesh, func(l core.LinkInfo, up bool) {
		if up {
			s.impl.LinkUp(l)
		} else {
			s.impl.LinkDown(l)
		}
	}, func(m *pluginv1.ControlMessage) {
		if wire.Kind(m.GetKind()) == wire.KindDiscovery {
			s.impl.HandleControl(fromPBLink(m.GetFrom()), m.GetBody())
		}
	})
}

// receiveLoop reads the host's Receive stream, re-opening it with backoff,
// until ctx ends. It re-reads the host's links when the host says that it
// dropped events, and when it sends a message without an event: first on
// each stream, once the stream is registered (events before it are not on
// it), and when the host may have missed events (DiscoveryClient.Watch).
func receiveLoop(ctx context.Context, log hclog.Logger, host pluginv1.HostClient, mesh *remoteMesh,
	link func(core.LinkInfo, bool), control func(*pluginv1.ControlMessage)) {
	refresh := func() {
		up, down, err := mesh.refreshLinks()
		if err != nil {
			log.Warn("listing the host's links", "error", err)
		}
		for _, l := range down {
			link(l, false)
		}
		for _, l := range up {
			link(l, true)
		}
	}
	b := backoff{min: 50 * time.Millisecond, max: time.Second}
	for ctx.Err() == nil {
		stream, err := host.Receive(ctx, &pluginv1.ReceiveRequest{})
		for err == nil {
			var ev *pluginv1.Received
			if ev, err = stream.Recv(); err != nil {
				break
			}
			b.reset()
			switch {
			case ev.GetDropped() > 0:
				log.Warn("host dropped events for this plugin; re-listing links", "dropped", ev.GetDropped())
				refresh()
			case ev.GetEvent() == nil:
				log.Debug("host asks to re-list links")
				refresh()
			}
			// A link the refresh reported is not reported again: link ids
			// are never reused, so an event for a link the cache already
			// has (or no longer has) is one the refresh saw.
			switch e := ev.GetEvent().(type) {
			case *pluginv1.Received_LinkUp:
				if l := fromPBLink(e.LinkUp); mesh.linkUp(l) {
					link(l, true)
				}
			case *pluginv1.Received_LinkDown:
				if l := fromPBLink(e.LinkDown); mesh.linkDown(l) {
					link(l, false)
				}
			case *pluginv1.Received_Message:
				control(e.Message)
			}
		}
		if ctx.Err() != nil {
			return
		}
		log.Debug("host receive stream ended; re-opening", "error", err)
		if !b.sleep(ctx) {
			return
		}
	}
}

// Register announces a service of the host node.
func (s *DiscoveryServer) Register(_ context.Context, req *pluginv1.RegisterRequest) (*pluginv1.RegisterResponse, error) {
	if err := s.ready(req.GetService()); err != nil {
		return nil, err
	}
	if err := s.impl.Register(fromPBService(req.GetService())); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &pluginv1.RegisterResponse{}, nil
}

// Deregister withdraws a service of the host node.
func (s *DiscoveryServer) Deregister(_ context.Context, req *pluginv1.DeregisterRequest) (*pluginv1.DeregisterResponse, error) {
	if err := s.ready(req.GetService()); err != nil {
		return nil, err
	}
	if err := s.impl.Deregister(fromPBService(req.GetService())); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &pluginv1.DeregisterResponse{}, nil
}

func (s *DiscoveryServer) ready(svc *pluginv1.Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return status.Error(codes.Unavailable, "plugin closing")
	case !s.configured:
		return status.Error(codes.FailedPrecondition, "not configured")
	case svc == nil:
		return status.Error(codes.InvalidArgument, "no service")
	}
	return nil
}

// Watch sends the view: a snapshot once the implementation has published
// one, then changes, a reset and a fresh snapshot when the implementation
// asked for one, and progress when quiet.
func (s *DiscoveryServer) Watch(req *pluginv1.WatchRequest, stream grpc.ServerStreamingServer[pluginv1.WatchEvent]) error {
	interval := DefaultProgressInterval
	if ms := req.GetProgressIntervalMs(); ms > 0 {
		interval = max(time.Duration(ms)*time.Millisecond, MinProgressInterval)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	// await waits for changed, saying progress at rev on every tick; it
	// fails when the stream or the plugin ends.
	await := func(changed <-chan struct{}, rev uint64) error {
		for {
			select {
			case <-stream.Context().Done():
				return stream.Context().Err()
			case <-s.ctx.Done():
				return status.Error(codes.Unavailable, "plugin closing")
			case <-tick.C:
				progress := &pluginv1.WatchEvent{Revision: rev, Event: &pluginv1.WatchEvent_Progress{Progress: &pluginv1.Progress{}}}
				if err := stream.Send(progress); err != nil {
					return err
				}
			case <-changed:
				return nil
			}
		}
	}
	// Until the implementation publishes, it knows nothing: a snapshot then
	// would empty the view a host kept from the process before this one
	// (restarted while its backend is unreachable, say). Progress goes out
	// meanwhile, so that the host does not deem the plugin hung.
	st := s.hub.current()
	for st.rev == 0 {
		if err := await(st.changed, 0); err != nil {
			return err
		}
		st = s.hub.current()
	}
	sent := indexServices(st.view)
	if err := stream.Send(snapshotEvent(st.rev, st.view)); err != nil {
		return err
	}
	rev, resetRev, changed := st.rev, st.resetRev, st.changed
	tick.Reset(interval)
	for {
		if err := await(changed, rev); err != nil {
			return err
		}
		st := s.hub.current()
		if st.resetRev > resetRev {
			reset := &pluginv1.WatchEvent{Revision: st.rev, Event: &pluginv1.WatchEvent_ResetView{ResetView: &pluginv1.Reset{Reason: st.resetReason}}}
			if err := stream.Send(reset); err != nil {
				return err
			}
			if err := stream.Send(snapshotEvent(st.rev, st.view)); err != nil {
				return err
			}
			sent = indexServices(st.view)
		} else {
			next := indexServices(st.view)
			put, deleted := diffViews(sent, next)
			sent = next
			if len(put)+len(deleted) > 0 {
				ev := &pluginv1.WatchEvent{Revision: st.rev, Event: &pluginv1.WatchEvent_Changes{Changes: &pluginv1.Changes{
					Put: toPBServices(put), Deleted: toPBServices(deleted)}}}
				if err := stream.Send(ev); err != nil {
					return err
				}
			}
		}
		rev, resetRev, changed = st.rev, st.resetRev, st.changed
		tick.Reset(interval)
	}
}

func snapshotEvent(rev uint64, view []core.Service) *pluginv1.WatchEvent {
	ss := cloneServices(view)
	sortServices(ss)
	return &pluginv1.WatchEvent{Revision: rev, Event: &pluginv1.WatchEvent_Snapshot{Snapshot: &pluginv1.Snapshot{Services: toPBServices(ss)}}}
}

// Close ends the Watch streams and the link to the host, and closes the
// implementation if it was started.
func (s *DiscoveryServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	configured, conn := s.configured, s.hostConn
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	var err error
	if configured {
		err = s.impl.Close()
	}
	closeConn(conn)
	return err
}
