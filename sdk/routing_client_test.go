package sdk_test

import (
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/sdk"
	"github.com/astranet-go/astranet/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
)

// fixedRouting publishes the routes table returns for the node's id.
type fixedRouting struct {
	table func(self core.NodeID) []core.Route
}

func (f *fixedRouting) Start(m core.Mesh, publish func([]core.Route)) error {
	publish(f.table(m.ID()))
	return nil
}
func (f *fixedRouting) LinkUp(core.LinkInfo)                {}
func (f *fixedRouting) LinkDown(core.LinkInfo)              {}
func (f *fixedRouting) HandleControl(core.LinkInfo, []byte) {}
func (f *fixedRouting) Close() error                        { return nil }

// TestRoutingClientDropsInvalidRoutes: routes a plugin publishes to node 0
// or to the node itself are left out of the table, with a log line.
func TestRoutingClientDropsInvalidRoutes(t *testing.T) {
	impl := &fixedRouting{table: func(self core.NodeID) []core.Route {
		return []core.Route{
			{Dst: 9, Link: 1, NextHop: 9, Metric: 1},
			{Dst: 0, Link: 1, NextHop: 9, Metric: 1},
			{Dst: self, Link: 1, NextHop: 9, Metric: 1},
		}
	}}
	logged := &countWriter{phrase: "dropped"}
	cfg := sdk.ClientConfig{Logger: hclog.New(&hclog.LoggerOptions{Output: logged, Level: hclog.Warn})}
	g, err := sdktest.OverGRPCRouting(impl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	mesh := sdktest.NewMesh()
	var mu sync.Mutex
	var table []core.Route
	published := false
	if err := g.Start(mesh, func(rs []core.Route) { mu.Lock(); table, published = rs, true; mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a table", 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return published })
	mu.Lock()
	defer mu.Unlock()
	if len(table) != 1 || table[0].Dst != 9 {
		t.Errorf("table %+v; want only the route to 9", table)
	}
	if logged.n.Load() == 0 {
		t.Error("nothing logged about the dropped routes")
	}
}
