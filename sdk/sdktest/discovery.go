package sdktest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/sdk"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Timeouts of the suite: how long an implementation may take to publish a
// change, and to close.
const (
	PublishTimeout = 5 * time.Second
	CloseTimeout   = 3 * time.Second
)

// Discovery runs the conformance suite on the implementations newImpl makes,
// one per subtest. newImpl must return a fresh, unstarted implementation.
func Discovery(t *testing.T, newImpl func() core.Discovery) {
	t.Helper()
	t.Run("StartClose", func(t *testing.T) {
		h := startDiscovery(t, newImpl)
		h.close(t)
	})
	t.Run("RegisterPublishes", func(t *testing.T) {
		h := startDiscovery(t, newImpl)
		defer h.close(t)
		s := h.service("conformance-a", 7001)
		s.Metadata = map[string]string{"zone": "z1"}
		mustRegister(t, h.d, s)
		// An implementation may add metadata of its own (addresses, say).
		h.rec.waitFor(t, "the registered service, with its metadata", func(v view) bool {
			got, ok := v[keyOf(s)]
			return ok && got.Metadata["zone"] == "z1"
		})
	})
	t.Run("DeregisterWithdraws", func(t *testing.T) {
		h := startDiscovery(t, newImpl)
		defer h.close(t)
		a, b := h.service("conformance-a", 7001), h.service("conformance-b", 7002)
		mustRegister(t, h.d, a)
		mustRegister(t, h.d, b)
		h.rec.waitFor(t, "both services", func(v view) bool { return v.has(a) && v.has(b) })
		if err := h.d.Deregister(a); err != nil {
			t.Fatalf("Deregister: %v", err)
		}
		h.rec.waitFor(t, "b without a", func(v view) bool { return !v.has(a) && v.has(b) })
	})
	t.Run("RegisterTwiceIsOneInstance", func(t *testing.T) {
		h := startDiscovery(t, newImpl)
		defer h.close(t)
		a := h.service("conformance-a", 7001)
		mustRegister(t, h.d, a)
		mustRegister(t, h.d, a)
		b := h.service("conformance-b", 7002)
		mustRegister(t, h.d, b)
		h.rec.waitFor(t, "one instance of a, and b", func(v view) bool {
			return v.has(a) && v.has(b) && v.count(a.Name) == 1
		})
	})
	t.Run("PortOnlyListener", func(t *testing.T) {
		h := startDiscovery(t, newImpl)
		defer h.close(t)
		a := h.service("", 7003)
		if err := h.d.Register(a); err != nil {
			t.Logf("Register of a port-only listener refused: %v", err)
		}
		b := h.service("conformance-b", 7002)
		mustRegister(t, h.d, b)
		h.rec.waitFor(t, "b", func(v view) bool { return v.has(b) })
	})
	t.Run("ManyServices", func(t *testing.T) {
		h := startDiscovery(t, newImpl)
		defer h.close(t)
		var ss []core.Service
		for i := range 40 {
			s := h.service(fmt.Sprintf("conformance-many-%02d", i), uint32(8000+i))
			mustRegister(t, h.d, s)
			ss = append(ss, s)
		}
		h.rec.waitFor(t, "all 40 services", func(v view) bool {
			for _, s := range ss {
				if !v.has(s) {
					return false
				}
			}
			return true
		})
		for _, s := range ss[:20] {
			if err := h.d.Deregister(s); err != nil {
				t.Fatalf("Deregister: %v", err)
			}
		}
		h.rec.waitFor(t, "the last 20 only", func(v view) bool {
			for i, s := range ss {
				if v.has(s) != (i >= 20) {
					return false
				}
			}
			return true
		})
	})
	t.Run("BadInputDoesNotPanic", func(t *testing.T) {
		h := startDiscovery(t, newImpl)
		defer h.close(t)
		badInput(t, h)
		s := h.service("conformance-after", 7100)
		mustRegister(t, h.d, s)
		h.rec.waitFor(t, "a service registered after bad input", func(v view) bool { return v.has(s) })
	})
	t.Run("NoPublishAfterClose", func(t *testing.T) {
		h := startDiscovery(t, newImpl)
		s := h.service("conformance-a", 7001)
		mustRegister(t, h.d, s)
		h.rec.waitFor(t, "the service", func(v view) bool { return v.has(s) })
		h.close(t)
		n := h.rec.calls()
		time.Sleep(200 * time.Millisecond)
		if m := h.rec.calls(); m != n {
			t.Errorf("publish called %d times after Close returned", m-n)
		}
	})
	t.Run("WatchSnapshotThenChanges", func(t *testing.T) {
		watchSemantics(t, newImpl())
	})
}

// harness is one started implementation with what it published.
type harness struct {
	d      core.Discovery
	mesh   *Mesh
	rec    *recorder
	closed bool
}

func startDiscovery(t *testing.T, newImpl func() core.Discovery) *harness {
	t.Helper()
	h := &harness{d: newImpl(), mesh: NewMesh(), rec: newRecorder()}
	if h.d == nil {
		t.Fatal("newImpl returned nil")
	}
	if err := h.d.Start(h.mesh, h.rec.publish); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { h.close(t) })
	return h
}

func (h *harness) service(name string, port uint32) core.Service {
	return core.Service{Name: name, Node: h.mesh.ID(), Port: port}
}

// close closes the implementation once and fails if that is slow.
func (h *harness) close(t *testing.T) {
	t.Helper()
	if h.closed {
		return
	}
	h.closed = true
	done := make(chan error, 1)
	go func() { done <- h.d.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(CloseTimeout):
		t.Errorf("Close did not return within %v", CloseTimeout)
	}
}

func mustRegister(t *testing.T, d core.Discovery, s core.Service) {
	t.Helper()
	if err := d.Register(s); err != nil {
		t.Fatalf("Register(%v): %v", s, err)
	}
}

// badInput feeds the implementation what a buggy host or a hostile peer
// might; the test fails on a panic.
func badInput(t *testing.T, h *harness) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic on bad input: %v", r)
		}
	}()
	peer := core.LinkInfo{ID: 9001, Peer: h.mesh.ID() ^ 0xff, Network: "pipe"}
	h.mesh.AddLink(peer)
	h.d.LinkUp(peer)
	h.d.LinkUp(peer) // twice
	h.d.LinkDown(core.LinkInfo{ID: 424242})
	h.d.HandleControl(core.LinkInfo{}, nil)
	h.d.HandleControl(peer, nil)
	h.d.HandleControl(peer, []byte{})
	h.d.HandleControl(core.LinkInfo{ID: 777, Peer: 3}, []byte{0xff, 0xff, 0xff})
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := make([]byte, rng.IntN(600))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		h.d.HandleControl(peer, b)
	}
	h.d.Deregister(core.Service{Name: "never-registered", Node: h.mesh.ID(), Port: 1})
	h.d.Register(core.Service{Name: strings.Repeat("x", 300), Node: h.mesh.ID(), Port: 2})
	h.d.Register(core.Service{Name: "nul\x00name", Node: h.mesh.ID(), Port: 3})
	h.d.Register(core.Service{Name: "no-node", Port: 4})
	h.d.Register(core.Service{Name: "big-metadata", Node: h.mesh.ID(), Port: 5,
		Metadata: map[string]string{"k": strings.Repeat("v", 70000)}})
	h.d.Deregister(core.Service{})
	h.d.Deregister(core.Service{})
	h.mesh.RemoveLink(peer.ID)
	h.d.LinkDown(peer)
	h.d.LinkDown(peer) // twice
}

// view is a published set of instances by key.
type view map[svcKey]core.Service

type svcKey struct {
	name string
	node core.NodeID
	port uint32
}

func keyOf(s core.Service) svcKey { return svcKey{s.Name, s.Node, s.Port} }

func (v view) has(s core.Service) bool { _, ok := v[keyOf(s)]; return ok }

func (v view) count(name string) int {
	n := 0
	for k := range v {
		if k.name == name {
			n++
		}
	}
	return n
}

// recorder is a publish func that keeps the last view.
type recorder struct {
	mu      sync.Mutex
	last    view
	n       int
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{last: view{}, changed: make(chan struct{})} }

func (r *recorder) publish(ss []core.Service) {
	v := make(view, len(ss))
	for _, s := range ss {
		v[keyOf(s)] = s
	}
	r.mu.Lock()
	r.last = v
	r.n++
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// waitFor waits until the last published view satisfies ok.
func (r *recorder) waitFor(t *testing.T, what string, ok func(view) bool) {
	t.Helper()
	deadline := time.NewTimer(PublishTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		v, ch := r.last, r.changed
		r.mu.Unlock()
		if ok(v) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no publish with %s within %v; last view: %v", what, PublishTimeout, v)
		}
	}
}

// watchSemantics serves impl through the SDK's server adapter and reads the
// raw Watch stream: a snapshot first (progress only, before impl publishes),
// then changes.
func watchSemantics(t *testing.T, impl core.Discovery) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	server := sdk.NewDiscoveryServer(impl, nil, nil)
	pluginv1.RegisterDiscoveryServer(srv, server)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.Serve(ln)
	}()
	defer func() {
		server.Close()
		srv.Stop()
		wg.Wait()
	}()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := pluginv1.NewDiscoveryClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 3*PublishTimeout)
	defer cancel()
	mesh := NewMesh()
	node := mesh.ID()
	if _, err := c.Configure(ctx, &pluginv1.ConfigureRequest{NodeId: uint64(node), Caps: mesh.Caps()}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	stream, err := c.Watch(ctx, &pluginv1.WatchRequest{ProgressIntervalMs: 100})
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	snapshot := first.GetSnapshot() != nil
	if !snapshot && first.GetProgress() == nil {
		t.Fatalf("first Watch event is %T, want a snapshot (or progress, before impl publishes)", first.GetEvent())
	}
	svc := &pluginv1.Service{Name: "conformance-watch", Node: uint64(node), Port: 7200}
	if _, err := c.Register(ctx, &pluginv1.RegisterRequest{Service: svc}); err != nil {
		t.Fatalf("Register: %v", err)
	}
	is := func(s *pluginv1.Service) bool { return s.GetName() == svc.Name && s.GetPort() == svc.Port }
	expect := func(what string, match func(*pluginv1.WatchEvent) bool) {
		t.Helper()
		for {
			ev, err := stream.Recv()
			if err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
			switch {
			case ev.GetSnapshot() != nil && snapshot:
				t.Fatalf("waiting for %s: a second snapshot with no reset before it", what)
			case ev.GetSnapshot() == nil && !snapshot && ev.GetProgress() == nil:
				t.Fatalf("waiting for %s: %T before the first snapshot", what, ev.GetEvent())
			}
			if ev.GetSnapshot() != nil {
				snapshot = true
			}
			if ev.GetResetView() != nil {
				// A reset is followed by a snapshot, which may hold it.
				next, err := stream.Recv()
				if err != nil || next.GetSnapshot() == nil {
					t.Fatalf("reset not followed by a snapshot: %v %v", next, err)
				}
				if match(next) {
					return
				}
				continue
			}
			if match(ev) {
				return
			}
		}
	}
	inList := func(list func(*pluginv1.WatchEvent) []*pluginv1.Service) func(*pluginv1.WatchEvent) bool {
		return func(ev *pluginv1.WatchEvent) bool {
			for _, s := range list(ev) {
				if is(s) {
					return true
				}
			}
			return false
		}
	}
	expect("a change that puts the service", inList(func(ev *pluginv1.WatchEvent) []*pluginv1.Service {
		return append(ev.GetChanges().GetPut(), ev.GetSnapshot().GetServices()...)
	}))
	if _, err := c.Deregister(ctx, &pluginv1.DeregisterRequest{Service: svc}); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	expect("a change that deletes the service", func(ev *pluginv1.WatchEvent) bool {
		if snap := ev.GetSnapshot(); snap != nil {
			return !inList(func(*pluginv1.WatchEvent) []*pluginv1.Service { return snap.GetServices() })(ev)
		}
		return inList(func(ev *pluginv1.WatchEvent) []*pluginv1.Service { return ev.GetChanges().GetDeleted() })(ev)
	})
	expect("progress while quiet", func(ev *pluginv1.WatchEvent) bool { return ev.GetProgress() != nil })
}
