package sdk_test

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/sdk"
	"github.com/astranet-go/astranet/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
)

// fixedDiscovery publishes the services it was made with.
type fixedDiscovery struct{ ss []core.Service }

func (f *fixedDiscovery) Start(_ core.Mesh, publish func([]core.Service)) error {
	publish(f.ss)
	return nil
}
func (f *fixedDiscovery) Register(core.Service) error         { return nil }
func (f *fixedDiscovery) Deregister(core.Service) error       { return nil }
func (f *fixedDiscovery) LinkUp(core.LinkInfo)                {}
func (f *fixedDiscovery) LinkDown(core.LinkInfo)              {}
func (f *fixedDiscovery) HandleControl(core.LinkInfo, []byte) {}
func (f *fixedDiscovery) Close() error                        { return nil }

// countWriter counts the log lines that contain a phrase.
type countWriter struct {
	phrase string
	n      atomic.Int64
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(strings.Count(string(p), w.phrase)))
	return len(p), nil
}

// TestDiscoveryClientDropsInvalidServices: services a plugin publishes that
// the embedded discovery would not accept are left out of the view, with a
// log line, and the valid ones are kept.
func TestDiscoveryClientDropsInvalidServices(t *testing.T) {
	manyKeys := map[string]string{}
	for i := range 17 {
		manyKeys[string(rune('a'+i))] = "x"
	}
	good := core.Service{Name: "good", Node: 7, Port: 1, Metadata: map[string]string{"k": "v"}}
	bad := []core.Service{
		{Name: "", Node: 7, Port: 2},
		{Name: "noport", Node: 7, Port: 0},
		{Name: "nonode", Node: 0, Port: 3},
		{Name: strings.Repeat("n", 256), Node: 7, Port: 4},
		{Name: "has space", Node: 7, Port: 5},
		{Name: "a:b", Node: 7, Port: 6},
		{Name: "bigvalue", Node: 7, Port: 7, Metadata: map[string]string{"k": strings.Repeat("v", 257)}},
		{Name: "bigkey", Node: 7, Port: 8, Metadata: map[string]string{strings.Repeat("k", 65): "v"}},
		{Name: "emptykey", Node: 7, Port: 9, Metadata: map[string]string{"": "v"}},
		{Name: "manykeys", Node: 7, Port: 10, Metadata: manyKeys},
	}
	logged := &countWriter{phrase: "dropped"}
	cfg := sdk.ClientConfig{Logger: hclog.New(&hclog.LoggerOptions{Output: logged, Level: hclog.Warn})}
	g, err := sdktest.OverGRPC(&fixedDiscovery{ss: append([]core.Service{good}, bad...)}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var mu sync.Mutex
	var view []core.Service
	published := false
	if err := g.Start(sdktest.NewMesh(), func(ss []core.Service) {
		mu.Lock()
		view, published = ss, true
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a view", 5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return published })
	mu.Lock()
	defer mu.Unlock()
	if len(view) != 1 || view[0].Name != "good" {
		names := make([]string, len(view))
		for i, s := range view {
			names[i] = s.Name
		}
		slices.Sort(names)
		t.Errorf("view %q; want only good", names)
	}
	if logged.n.Load() == 0 {
		t.Error("nothing logged about the dropped services")
	}
}
