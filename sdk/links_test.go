package sdk_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/sdk"
	"github.com/astranet-go/astranet/sdk/sdktest"
)

// linkWatcher is a discovery that remembers the mesh it was started with,
// the links it was told of and the control messages it received. onStart,
// if set, runs at the end of Start.
type linkWatcher struct {
	onStart func()

	mu      sync.Mutex
	mesh    core.Mesh
	ups     map[uint64]int
	pings   map[string]bool
	changed chan struct{}
}

func newLinkWatcher() *linkWatcher {
	return &linkWatcher{ups: make(map[uint64]int), pings: make(map[string]bool), changed: make(chan struct{})}
}

func (w *linkWatcher) Start(m core.Mesh, publish func([]core.Service)) error {
	w.mu.Lock()
	w.mesh = m
	w.mu.Unlock()
	publish(nil)
	if w.onStart != nil {
		w.onStart()
	}
	return nil
}
func (w *linkWatcher) Register(core.Service) error   { return nil }
func (w *linkWatcher) Deregister(core.Service) error { return nil }
func (w *linkWatcher) LinkUp(l core.LinkInfo) {
	w.mu.Lock()
	w.ups[l.ID]++
	w.mu.Unlock()
}
func (w *linkWatcher) LinkDown(core.LinkInfo) {}
func (w *linkWatcher) HandleControl(_ core.LinkInfo, body []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.pings[string(body)] {
		w.pings[string(body)] = true
		close(w.changed)
		w.changed = make(chan struct{})
	}
}
func (w *linkWatcher) Close() error { return nil }

// ping sends body to the plugin as a discovery message until the plugin has
// it: then every message the host queued for the plugin's Receive stream
// before it has been handled.
func (w *linkWatcher) ping(t *testing.T, g *sdktest.GRPCDiscovery, body string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		w.mu.Lock()
		got, changed := w.pings[body], w.changed
		w.mu.Unlock()
		if got {
			return
		}
		g.HandleControl(core.LinkInfo{ID: 99, Peer: 99}, []byte(body))
		select {
		case <-changed:
		case <-time.After(5 * time.Millisecond):
		case <-deadline:
			t.Fatalf("the plugin never received %q", body)
		}
	}
}

// knows reports whether the plugin's mesh lists link id, and how many times
// the implementation was told it came up.
func (w *linkWatcher) knows(id uint64) (listed bool, ups int) {
	w.mu.Lock()
	m, ups := w.mesh, w.ups[id]
	w.mu.Unlock()
	return slices.ContainsFunc(m.Links(), func(l core.LinkInfo) bool { return l.ID == id }), ups
}

func startLinkWatcher(t *testing.T, w *linkWatcher) (*sdktest.GRPCDiscovery, *sdktest.Mesh) {
	t.Helper()
	g, err := sdktest.OverGRPC(w, sdk.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g, sdktest.NewMesh()
}

// TestPluginLearnsLinkBeforeReceive: a link that comes up after the plugin
// listed the node's links in Configure, but before its Receive stream is
// registered at the host (so that the link's event reaches no stream), is
// in the plugin's Links, and its implementation is told of it once.
func TestPluginLearnsLinkBeforeReceive(t *testing.T) {
	w := newLinkWatcher()
	g, mesh := startLinkWatcher(t, w)
	mesh.AddLink(core.LinkInfo{ID: 1, Peer: 101, Network: "pipe"})
	late := core.LinkInfo{ID: 2, Peer: 102, Network: "pipe"}
	// Start runs in the plugin's Configure after it listed the links and
	// before it opens its Receive stream.
	w.onStart = func() {
		mesh.AddLink(late)
		g.LinkUp(late)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Configure(ctx, mesh); err != nil {
		t.Fatal(err)
	}
	w.ping(t, g, "after configure")
	if listed, _ := w.knows(1); !listed {
		t.Fatal("the plugin does not list the link it was configured with")
	}
	if listed, ups := w.knows(late.ID); !listed || ups != 1 {
		t.Fatalf("link up before the Receive stream: listed %v, told %d times; want listed, told once", listed, ups)
	}
}

// TestPluginRelistsLinksOnWatch: link events a host does not pass on before
// it starts watching a plugin (plugins.Discovery drops them while the
// process is not yet current) are made good when it does.
func TestPluginRelistsLinksOnWatch(t *testing.T) {
	w := newLinkWatcher()
	g, mesh := startLinkWatcher(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Configure(ctx, mesh); err != nil {
		t.Fatal(err)
	}
	w.ping(t, g, "receiving") // the Receive stream is registered
	missed := core.LinkInfo{ID: 3, Peer: 103, Network: "pipe"}
	mesh.AddLink(missed) // and the host drops its event
	g.Watch(func([]core.Service) {})
	w.ping(t, g, "watching")
	if listed, ups := w.knows(missed.ID); !listed || ups != 1 {
		t.Fatalf("link up before Watch: listed %v, told %d times; want listed, told once", listed, ups)
	}
}
