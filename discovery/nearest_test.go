package discovery

import (
	"testing"

	"github.com/astranet-go/astranet/core"
)

func TestNearest(t *testing.T) {
	ss := instances(4) // nodes 0x1000 .. 0x1003
	table := []core.Route{
		{Dst: 0x1000, Metric: 300},
		{Dst: 0x1001, Metric: 100},
		{Dst: 0x1002, Metric: 100},
		{Dst: 0x1001, Metric: 500}, // a worse second route changes nothing
		// 0x1003 has no route
	}
	pick := Nearest(func() []core.Route { return table })
	counts := map[core.NodeID]int{}
	for range 1000 {
		counts[pick(ss).Node]++
	}
	if counts[0x1000]+counts[0x1003] != 0 {
		t.Errorf("picked a farther instance: %v", counts)
	}
	if counts[0x1001] < 400 || counts[0x1002] < 400 {
		t.Errorf("ties not broken at random: %v", counts)
	}

	// Instances without a route come last but are still picked alone.
	if got := pick(ss[3:]); got.Node != 0x1003 {
		t.Errorf("only instance: got %v", got.Node)
	}
	if got := pick([]core.Service{ss[3], ss[0]}); got.Node != 0x1000 {
		t.Errorf("routed vs unknown: got %v", got.Node)
	}
	if got := Nearest(func() []core.Route { return nil })(ss[:1]); got.Node != 0x1000 {
		t.Errorf("empty table: got %v", got.Node)
	}
}

func TestMeshNearestPrefersItself(t *testing.T) {
	tn := newNet(t)
	a, m := tn.add(MeshOptions{})
	ss := append(instances(2), core.Service{Name: "svc", Node: a.ID(), Port: 9})
	for range 100 {
		if got := m.Nearest()(ss); got.Node != a.ID() {
			t.Fatalf("picked %v, want the node itself %v", got.Node, a.ID())
		}
	}
	// Before Start the mesh knows neither itself nor routes: a random pick.
	if got := NewMesh(MeshOptions{}).Nearest()(ss[:1]); got.Node != ss[0].Node {
		t.Errorf("got %v", got.Node)
	}
}
