package sdk

import (
	"context"
	"fmt"
	"sync"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// routeHub holds the latest route table a plugin's routing published.
type routeHub struct {
	mu      sync.Mutex
	rev     uint64
	table   []*pluginv1.Route
	changed chan struct{}
}

func (h *routeHub) publish(rs []core.Route) {
	table := toPBRoutes(rs)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev++
	h.table = table
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *routeHub) current() (uint64, []*pluginv1.Route, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev, h.table, h.changed
}

// RoutingServer serves a core.Routing as the Routing service, in the plugin
// process.
type RoutingServer struct {
	pluginv1.UnimplementedRoutingServer
	impl   core.Routing
	broker Broker
	log    hclog.Logger
	hub    routeHub

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // sessions' receive goroutines, waited for by Close

	mu         sync.Mutex
	configured bool
	closed     bool
	mesh       *remoteMesh
	hostConn   *grpc.ClientConn
}

// NewRoutingServer serves impl; broker reaches the host's Host service (nil:
// none).
func NewRoutingServer(impl core.Routing, broker Broker, log hclog.Logger) *RoutingServer {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &RoutingServer{impl: impl, broker: broker, log: log, hub: routeHub{changed: make(chan struct{})}, ctx: ctx, cancel: cancel}
}

// Configure dials the host's Host service, configures impl and starts it.
func (s *RoutingServer) Configure(_ context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
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
	mesh := newRemoteMesh(req, host, hostCallTimeout, nil)
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
	return &pluginv1.ConfigureResponse{Implementation: fmt.Sprintf("%T", s.impl)}, nil
}

// Session feeds impl the link events and routing messages the host sends,
// and sends the host each table impl publishes (the current one first).
func (s *RoutingServer) Session(stream grpc.BidiStreamingServer[pluginv1.RoutingInput, pluginv1.RoutingOutput]) error {
	s.mu.Lock()
	mesh, ok := s.mesh, s.configured && !s.closed
	if ok {
		s.wg.Add(1) // under mu, so that it never follows Close's Wait
	}
	s.mu.Unlock()
	if !ok {
		return status.Error(codes.FailedPrecondition, "not configured")
	}
	received := false // the receive goroutine's Done, once it is started
	defer func() {
		if !received {
			s.wg.Done()
		}
	}()
	// Link events may have been lost before this session (a broken one, or
	// the host's start of this process): drop the links the host no longer
	// has; the host restates the live ones as the session opens.
	if _, down, err := mesh.refreshLinks(); err != nil {
		s.log.Warn("listing the host's links", "error", err)
	} else {
		for _, l := range down {
			s.impl.LinkDown(l)
		}
	}
	recvErr := make(chan error, 1)
	received = true
	go func() {
		defer s.wg.Done()
		for {
			in, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			switch e := in.GetEvent().(type) {
			case *pluginv1.RoutingInput_LinkUp:
				l := fromPBLink(e.LinkUp)
				mesh.linkUp(l)
				s.impl.LinkUp(l)
			case *pluginv1.RoutingInput_LinkDown:
				l := fromPBLink(e.LinkDown)
				mesh.linkDown(l)
				s.impl.LinkDown(l)
			case *pluginv1.RoutingInput_Control:
				if wire.Kind(e.Control.GetKind()) == wire.KindRouting {
					s.impl.HandleControl(fromPBLink(e.Control.GetFrom()), e.Control.GetBody())
				}
			}
		}
	}()
	var sentRev uint64
	sent := false
	for {
		rev, table, changed := s.hub.current()
		if !sent || rev != sentRev {
			if err := stream.Send(&pluginv1.RoutingOutput{Revision: rev, Routes: table}); err != nil {
				return err
			}
			sent, sentRev = true, rev
		}
		select {
		case <-changed:
		case err := <-recvErr:
			return err
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-s.ctx.Done():
			return status.Error(codes.Unavailable, "plugin closing")
		}
	}
}

// Close ends the sessions and closes the implementation if it was started.
func (s *RoutingServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	configured, conn := s.configured, s.hostConn
	s.mu.Unlock()
	s.cancel()
	// Sessions end on cancel, and their receive goroutines when the streams
	// do: after this, nothing calls impl.
	s.wg.Wait()
	var err error
	if configured {
		err = s.impl.Close()
	}
	closeConn(conn)
	return err
}
