package plugins_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/plugins"
	"github.com/astranet-go/astranet/sdk/sdktest"
)

// hookMesh is a fake mesh that runs a hook once, inside the next Links call.
type hookMesh struct {
	*sdktest.Mesh
	hook atomic.Pointer[func()]
}

func (m *hookMesh) Links() []core.LinkInfo {
	ls := m.Mesh.Links()
	if f := m.hook.Swap(nil); f != nil {
		(*f)()
	}
	return ls
}

// routes returns a publish callback for Routing.Start and a check of whether
// the table it last received has a route to a node.
func routes() (publish func([]core.Route), routeTo func(core.NodeID) bool) {
	var mu sync.Mutex
	var table []core.Route
	return func(rs []core.Route) { mu.Lock(); table = rs; mu.Unlock() },
		func(dst core.NodeID) bool {
			mu.Lock()
			defer mu.Unlock()
			return slices.ContainsFunc(table, func(x core.Route) bool { return x.Dst == dst })
		}
}

// TestRestartedRoutingPluginLearnsLinks: a link that comes up while a
// restarted routing plugin is being configured (after it has listed the
// node's links, before it is current, so the host drops the event) still
// reaches the plugin.
func TestRestartedRoutingPluginLearnsLinks(t *testing.T) {
	cfg := plugins.DefaultConfig(policyPlugin)
	cfg.Options = map[string]string{"interval": "20ms"}
	cfg.MinBackoff, cfg.MaxBackoff = 300*time.Millisecond, time.Second // time to set the hook
	cfg.RoutingGrace = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := plugins.LoadRouting(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	publish, routeTo := routes()
	mesh := &hookMesh{Mesh: sdktest.NewMesh()}
	first := core.LinkInfo{ID: 1, Peer: 0xa1, Network: "pipe"}
	mesh.AddLink(first)
	if err := r.Start(mesh, publish); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the route to the first neighbour", 5*time.Second, func() bool { return routeTo(first.Peer) })

	if err := syscall.Kill(r.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the crash to be seen", 2*time.Second, r.Stale)
	// The restarted plugin lists the links as it is configured: the hook
	// brings a link up just after, as the node would.
	late := core.LinkInfo{ID: 2, Peer: 0xb2, Network: "pipe"}
	up := func() {
		mesh.AddLink(late)
		r.LinkUp(late)
	}
	mesh.hook.Store(&up)
	waitUntil(t, "the restart", 5*time.Second, func() bool { return r.Restarts() == 1 && !r.Stale() })
	if mesh.hook.Load() != nil {
		t.Fatal("the restarted plugin did not list the links")
	}
	waitUntil(t, "the route over the link that came up during the restart", 3*time.Second, func() bool {
		return routeTo(late.Peer) && routeTo(first.Peer)
	})
}

// TestDroppedLinkDownDoesNotResurrectLink: a link that came up and went down
// while the routing plugin was not keeping up (its LinkUp still queued, its
// LinkDown dropped for a full queue) is not left in the plugin once the
// session is re-opened: the queued LinkUp must not follow the restated links.
func TestDroppedLinkDownDoesNotResurrectLink(t *testing.T) {
	cfg := plugins.DefaultConfig(policyPlugin)
	cfg.Options = map[string]string{"interval": "20ms"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := plugins.LoadRouting(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	publish, routeTo := routes()
	mesh := sdktest.NewMesh()
	first := core.LinkInfo{ID: 1, Peer: 0xa1, Network: "pipe"}
	mesh.AddLink(first)
	if err := r.Start(mesh, publish); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the route to the first neighbour", 5*time.Second, func() bool { return routeTo(first.Peer) })

	// Freeze the plugin and fill the gRPC windows, so that what follows
	// stays in the host's queue.
	pid := r.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	big := make([]byte, 16<<10)
	for range 1024 {
		r.HandleControl(first, big)
	}
	flap := core.LinkInfo{ID: 2, Peer: 0xb2, Network: "pipe"}
	mesh.AddLink(flap)
	r.LinkUp(flap)
	for i := 0; r.Dropped() == 0; i++ {
		if i > 10000 {
			t.Fatal("the routing queue never filled")
		}
		r.HandleControl(first, nil)
	}
	mesh.RemoveLink(flap.ID)
	dropped := r.Dropped()
	r.LinkDown(flap)
	if r.Dropped() == dropped {
		t.Fatal("the LinkDown was not dropped")
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	var ghosts uint64

	// A link that is not in the mesh reaches the plugin only as an event
	// through the queue: once the plugin routes to one, it has seen all that
	// was queued before it.
	waitUntil(t, "an event queued after the drops to reach the plugin", 10*time.Second, func() bool {
		for id := uint64(100); id < 100+ghosts; id++ {
			if routeTo(core.NodeID(id)) {
				return true
			}
		}
		if ghosts < 200 {
			r.LinkUp(core.LinkInfo{ID: 100 + ghosts, Peer: core.NodeID(100 + ghosts), Network: "pipe"})
			ghosts++
		}
		time.Sleep(20 * time.Millisecond)
		return false
	})
	if routeTo(flap.Peer) {
		t.Fatal("the plugin routes over a link that went down")
	}
}
