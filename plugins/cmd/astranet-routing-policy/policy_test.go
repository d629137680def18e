package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/routing"
	"github.com/astranet-go/astranet/plugins"
	"github.com/astranet-go/astranet/sdk"
	"github.com/astranet-go/astranet/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

var pluginBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "astranet-routing-policy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginBin = filepath.Join(dir, "astranet-routing-policy")
	if out, err := exec.Command("go", "build", "-o", pluginBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the plugin: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		// go-plugin's client leaves its stdio copier running for a moment
		// after Kill; it ends when the plugin's pipes close.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/hashicorp/go-plugin.(*GRPCStdioClient).Run")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func newTestPolicy(t *testing.T, opts map[string]string) *policy {
	p := newPolicy(hclog.NewNullLogger())
	o := map[string]string{"interval": "20ms"}
	for k, v := range opts {
		o[k] = v
	}
	if err := p.Configure(o); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformance(t *testing.T) {
	sdktest.Routing(t, func() core.Routing { return newTestPolicy(t, nil) })
}

func TestConformanceOverGRPC(t *testing.T) {
	sdktest.Routing(t, func() core.Routing {
		g, err := sdktest.OverGRPCRouting(newTestPolicy(t, nil), sdk.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return g
	})
}

// The embedded routing passes the same suite: the baseline.
func TestConformanceEmbedded(t *testing.T) {
	sdktest.Routing(t, func() core.Routing { return routing.New(routing.Options{Interval: 20 * time.Millisecond}) })
}

func loadPolicy(t *testing.T, opts map[string]string) *plugins.Routing {
	cfg := plugins.DefaultConfig(pluginBin)
	cfg.Options = map[string]string{"interval": "20ms"}
	for k, v := range opts {
		cfg.Options[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := plugins.LoadRouting(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConformanceSubprocess(t *testing.T) {
	sdktest.Routing(t, func() core.Routing { return loadPolicy(t, nil) })
}

// TestPreferAndPin: a node with two ways to a destination takes the
// preferred link, and a pin overrides the metrics.
func TestPreferAndPin(t *testing.T) {
	//     b
	//   /   \
	// a       d      a reaches d through b or c
	//   \   /
	//     c
	n := sdktest.NewNet()
	defer n.Close()
	ids := make([]core.NodeID, 0, 3)
	mk := func(opts map[string]string) *sdktest.NetNode {
		nn := n.Add(t, newTestPolicy(t, opts))
		ids = append(ids, nn.Mesh.ID())
		return nn
	}
	b, c, d := mk(nil), mk(nil), mk(nil)
	a := n.Add(t, newTestPolicy(t, map[string]string{"prefer": "peer:" + c.Mesh.ID().String()}))
	_, _ = n.Connect(a, b)
	ac, _ := n.Connect(a, c)
	n.Connect(b, d)
	n.Connect(c, d)
	waitRoute(t, a.Impl.(*policy), d.Mesh.ID(), ac)

	pinned := n.Add(t, newTestPolicy(t, map[string]string{"prefer": "peer:" + c.Mesh.ID().String(),
		"pin": d.Mesh.ID().String() + "=" + b.Mesh.ID().String()}))
	pb, _ := n.Connect(pinned, b)
	n.Connect(pinned, c)
	waitRoute(t, pinned.Impl.(*policy), d.Mesh.ID(), pb)
}

func waitRoute(t *testing.T, p *policy, dst core.NodeID, link uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p.mu.Lock()
		r, ok := p.table[dst]
		p.mu.Unlock()
		if ok && r.Link == link {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no route to %s through link %d; have %+v", dst, link, r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseAdvertRejects(t *testing.T) {
	for _, b := range [][]byte{nil, {2}, {1, 0}, append([]byte{1}, make([]byte, 12)...)} {
		if _, err := parseAdvert(b); err == nil {
			t.Errorf("parseAdvert(%x) accepted", b)
		}
	}
}

// TestConfigureIntervalBounds: an interval so long that 3.5 of them overflow
// a time.Duration (which made every heard route expire at once) is refused,
// as is anything past a day.
func TestConfigureIntervalBounds(t *testing.T) {
	for interval, ok := range map[string]bool{"10ms": true, "24h": true, "9ms": false, "24h0m0.001s": false, "700000h": false} {
		err := newPolicy(hclog.NewNullLogger()).Configure(map[string]string{"interval": interval})
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "option interval")) {
			t.Errorf("Configure(interval=%s): %v; want accepted %v", interval, err, ok)
		}
	}
}

// TestNodesRouteThroughPlugin: three core nodes in a line, each routing with
// the plugin as a process; a dials c's service through b. Killing a's plugin
// keeps the table the node has, and the plugin comes back.
func TestNodesRouteThroughPlugin(t *testing.T) {
	cfg := core.DefaultConfig()
	cfg.Logger = hclog.NewNullLogger()
	var nodes []*core.Node
	var rs []*plugins.Routing
	for range 3 {
		r := loadPolicy(t, nil)
		n, err := core.New(core.Options{Config: cfg, Routing: r})
		if err != nil {
			t.Fatal(err)
		}
		nodes, rs = append(nodes, n), append(rs, r)
	}
	var wg sync.WaitGroup
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
		wg.Wait()
	}()
	link := func(x, y *core.Node) {
		p, q := net.Pipe()
		wg.Add(2)
		go func() { defer wg.Done(); x.Attach(p) }()
		go func() { defer wg.Done(); y.Attach(q) }()
	}
	a, b, c := nodes[0], nodes[1], nodes[2]
	link(a, b)
	link(b, c)
	ln, err := c.Bind(0, "far")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(core.Addr).Port
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			s.Close()
		}
	}()
	dial := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := a.Dial(ctx, core.Target{Node: c.ID(), Port: port})
		if err == nil {
			s.Close()
		}
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for dial() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("a never reached c: routes %+v", a.Routes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	killed := time.Now()
	if err := syscall.Kill(rs[0].Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for !rs[0].Stale() && time.Since(killed) < 2*time.Second {
		time.Sleep(time.Millisecond)
	}
	if err := dial(); err != nil {
		t.Fatalf("dial while a's routing plugin is down: %v", err)
	}
	for rs[0].Restarts() < 1 || rs[0].Stale() {
		if time.Since(killed) > 5*time.Second {
			t.Fatal("routing plugin not back")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("routing plugin back %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
	if err := dial(); err != nil {
		t.Fatal(err)
	}
}
