package sdk

import (
	"context"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestDiffViews(t *testing.T) {
	a := core.Service{Name: "a", Node: 1, Port: 1}
	b := core.Service{Name: "b", Node: 1, Port: 2}
	b2 := core.Service{Name: "b", Node: 1, Port: 2, Metadata: map[string]string{"v": "2"}}
	c := core.Service{Name: "c", Node: 2, Port: 1}
	for _, tc := range []struct {
		name         string
		old, next    []core.Service
		put, deleted []string
	}{
		{"empty", nil, nil, nil, nil},
		{"add", []core.Service{a}, []core.Service{a, c}, []string{"c"}, nil},
		{"remove", []core.Service{a, c}, []core.Service{a}, nil, []string{"c"}},
		{"metadata", []core.Service{a, b}, []core.Service{a, b2}, []string{"b"}, nil},
		{"replace", []core.Service{a}, []core.Service{c}, []string{"c"}, []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put, deleted := diffViews(indexServices(tc.old), indexServices(tc.next))
			if got := names(put); got != join(tc.put) {
				t.Errorf("put %s, want %s", got, join(tc.put))
			}
			if got := names(deleted); got != join(tc.deleted) {
				t.Errorf("deleted %s, want %s", got, join(tc.deleted))
			}
		})
	}
}

func names(ss []core.Service) string {
	out := ""
	for _, s := range ss {
		out += s.Name + ","
	}
	return out
}

func join(ns []string) string {
	out := ""
	for _, n := range ns {
		out += n + ","
	}
	return out
}

// TestHubReset: a reset marks the next published view, not the current one.
func TestHubReset(t *testing.T) {
	h := newViewHub()
	h.publish([]core.Service{{Name: "a"}})
	before := h.current()
	h.reset("gap")
	if st := h.current(); st.resetRev != before.resetRev {
		t.Fatal("reset applied before the next publish")
	}
	h.publish(nil)
	st := h.current()
	if st.resetRev != st.rev || st.resetReason != "gap" {
		t.Fatalf("after publish: resetRev %d rev %d reason %q", st.resetRev, st.rev, st.resetReason)
	}
	select {
	case <-before.changed:
	default:
		t.Fatal("publish did not signal watchers")
	}
}

type nopMesh struct{ sent []wire.Kind }

func (m *nopMesh) ID() core.NodeID        { return 1 }
func (m *nopMesh) Caps() uint32           { return 0 }
func (m *nopMesh) Links() []core.LinkInfo { return nil }
func (m *nopMesh) Routes() []core.Route   { return nil }
func (m *nopMesh) Send(_ uint64, k wire.Kind, _ []byte) error {
	m.sent = append(m.sent, k)
	return nil
}

// TestHostSendKinds: a discovery plugin may send discovery and user kinds
// only.
func TestHostSendKinds(t *testing.T) {
	m := &nopMesh{}
	h := newHostServer(m, wire.KindDiscovery)
	for _, tc := range []struct {
		kind uint32
		ok   bool
	}{{uint32(wire.KindDiscovery), true}, {uint32(wire.KindUser), true}, {255, true},
		{uint32(wire.KindRouting), false}, {0, false}, {256, false}} {
		_, err := h.Send(context.Background(), &pluginv1.SendRequest{Link: 1, Kind: tc.kind})
		if ok := err == nil; ok != tc.ok {
			t.Errorf("kind %d: err %v", tc.kind, err)
		}
		if err != nil && status.Code(err) != codes.PermissionDenied {
			t.Errorf("kind %d: code %v", tc.kind, status.Code(err))
		}
	}
	if len(m.sent) != 3 {
		t.Fatalf("sent %v", m.sent)
	}
}

// receiveStream is the server side of one Receive call, for calling the
// host's handler directly.
type receiveStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s receiveStream) Context() context.Context      { return s.ctx }
func (s receiveStream) Send(*pluginv1.Received) error { return nil }

// TestHostReceiveStreamsBounded: a plugin may hold a few Receive streams at
// once, not any number (each has a queue and gets a copy of every event).
func TestHostReceiveStreamsBounded(t *testing.T) {
	h := newHostServer(&nopMesh{}, wire.KindDiscovery)
	defer h.close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, maxReceivers)
	for range maxReceivers {
		go func() { done <- h.Receive(&pluginv1.ReceiveRequest{}, receiveStream{ctx: ctx}) }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		n := len(h.subs)
		h.mu.Unlock()
		if n == maxReceivers {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Receive streams open, want %d", n, maxReceivers)
		}
		time.Sleep(time.Millisecond)
	}
	err := h.Receive(&pluginv1.ReceiveRequest{}, receiveStream{ctx: ctx})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("one Receive stream too many: %v, want ResourceExhausted", err)
	}
	cancel()
	for range maxReceivers {
		<-done
	}
}
