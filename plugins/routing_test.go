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

	var mu sync.Mutex
	var table []core.Route
	routeTo := func(dst core.NodeID) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(table, func(x core.Route) bool { return x.Dst == dst })
	}
	mesh := &hookMesh{Mesh: sdktest.NewMesh()}
	first := core.LinkInfo{ID: 1, Peer: 0xa1, Network: "pipe"}
	mesh.AddLink(first)
	if err := r.Start(mesh, func(rs []core.Route) { mu.Lock(); table = rs; mu.Unlock() }); err != nil {
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
