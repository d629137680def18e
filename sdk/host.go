package sdk

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// receiveQueue bounds the events waiting for one Receive stream; a plugin too
// slow to take them loses the excess and is told how many in the next event.
const receiveQueue = 1024

// maxReceivers bounds the Receive streams a plugin may hold open at once:
// each has its own queue, and every event is copied to each.
const maxReceivers = 4

// hostServer is the Host service the host node serves to its plugin: the
// plugin's way back into the mesh.
type hostServer struct {
	pluginv1.UnimplementedHostServer
	mesh core.Mesh
	kind wire.Kind // the control kind the plugin owns

	done     chan struct{}
	doneOnce sync.Once

	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	ch      chan *pluginv1.Received
	dropped atomic.Uint64
}

func newHostServer(m core.Mesh, kind wire.Kind) *hostServer {
	return &hostServer{mesh: m, kind: kind, done: make(chan struct{}), subs: make(map[*subscriber]struct{})}
}

func (h *hostServer) register(s *grpc.Server) { pluginv1.RegisterHostServer(s, h) }

// close ends every Receive stream, so that the server can stop.
func (h *hostServer) close() { h.doneOnce.Do(func() { close(h.done) }) }

func (h *hostServer) Send(_ context.Context, req *pluginv1.SendRequest) (*pluginv1.SendResponse, error) {
	k := req.GetKind()
	if k > 255 || (wire.Kind(k) != h.kind && wire.Kind(k) < wire.KindUser) {
		return nil, status.Errorf(codes.PermissionDenied, "this plugin may not send control kind %d", k)
	}
	if err := h.mesh.Send(req.GetLink(), wire.Kind(k), req.GetBody()); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &pluginv1.SendResponse{}, nil
}

func (h *hostServer) Links(context.Context, *pluginv1.LinksRequest) (*pluginv1.LinksResponse, error) {
	return &pluginv1.LinksResponse{Links: toPBLinks(h.mesh.Links())}, nil
}

func (h *hostServer) Routes(context.Context, *pluginv1.RoutesRequest) (*pluginv1.RoutesResponse, error) {
	return &pluginv1.RoutesResponse{Routes: toPBRoutes(h.mesh.Routes())}, nil
}

func (h *hostServer) Receive(_ *pluginv1.ReceiveRequest, stream grpc.ServerStreamingServer[pluginv1.Received]) error {
	sub := &subscriber{ch: make(chan *pluginv1.Received, receiveQueue)}
	h.mu.Lock()
	if len(h.subs) >= maxReceivers {
		h.mu.Unlock()
		return status.Errorf(codes.ResourceExhausted, "at most %d Receive streams at once", maxReceivers)
	}
	h.subs[sub] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.subs, sub)
		h.mu.Unlock()
	}()
	// The stream's first message says that it is registered: events from
	// here on reach it, and those before did not, so the plugin re-reads
	// Links. It carries no event, which a plugin of an older SDK ignores.
	if err := stream.Send(&pluginv1.Received{}); err != nil {
		return err
	}
	for {
		select {
		case <-h.done:
			return status.Error(codes.Unavailable, "host closing")
		case <-stream.Context().Done():
			return stream.Context().Err()
		case ev := <-sub.ch:
			if d := sub.dropped.Swap(0); d > 0 {
				ev = &pluginv1.Received{Dropped: d, Event: ev.Event}
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

// deliver queues ev for every Receive stream without waiting.
func (h *hostServer) deliver(ev *pluginv1.Received) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs {
		select {
		case sub.ch <- ev:
		default:
			sub.dropped.Add(1)
		}
	}
}

// resync asks every Receive stream's plugin to re-read Links, as at the
// start of a stream: the host may have missed link events that it now passes
// on. Like the events, it is dropped (and counted) for a full queue.
func (h *hostServer) resync() { h.deliver(&pluginv1.Received{}) }

func (h *hostServer) linkUp(l core.LinkInfo) {
	h.deliver(&pluginv1.Received{Event: &pluginv1.Received_LinkUp{LinkUp: toPBLink(l)}})
}

func (h *hostServer) linkDown(l core.LinkInfo) {
	h.deliver(&pluginv1.Received{Event: &pluginv1.Received_LinkDown{LinkDown: toPBLink(l)}})
}

func (h *hostServer) control(from core.LinkInfo, kind wire.Kind, body []byte) {
	msg := &pluginv1.ControlMessage{From: toPBLink(from), Kind: uint32(kind), Body: bytes.Clone(body)}
	h.deliver(&pluginv1.Received{Event: &pluginv1.Received_Message{Message: msg}})
}
