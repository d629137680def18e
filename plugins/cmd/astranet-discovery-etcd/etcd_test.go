package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/plugins"
	"github.com/astranet-go/astranet/sdk"
	"github.com/astranet-go/astranet/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

var prefixes atomic.Int64

// newPrefix gives each discovery under test a prefix of its own.
func newPrefix() string {
	return fmt.Sprintf("/astranet-test/%d-%d/", time.Now().UnixNano(), prefixes.Add(1))
}

func newTestDiscovery(t testing.TB, prefix string) *etcdDiscovery {
	e := newEtcdDiscovery(hclog.NewNullLogger())
	if err := e.Configure(map[string]string{"endpoints": etcdEndpoint, "prefix": prefix, "ttl": "5", "addrs": "127.0.0.1:10000"}); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestConformance(t *testing.T) {
	needEtcd(t)
	sdktest.Discovery(t, func() core.Discovery { return newTestDiscovery(t, newPrefix()) })
}

func TestConformanceOverGRPC(t *testing.T) {
	needEtcd(t)
	sdktest.Discovery(t, func() core.Discovery {
		g, err := sdktest.OverGRPC(newTestDiscovery(t, newPrefix()), sdk.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return g
	})
}

func TestConformanceSubprocess(t *testing.T) {
	needEtcd(t)
	sdktest.Discovery(t, func() core.Discovery {
		return loadPlugin(t, newPrefix())
	})
}

func loadPlugin(t testing.TB, prefix string) *plugins.Discovery {
	cfg := plugins.DefaultConfig(pluginBin)
	cfg.Options = map[string]string{"endpoints": etcdEndpoint, "prefix": prefix, "ttl": "5", "addrs": "127.0.0.1:10000,127.0.0.1:10001"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := plugins.LoadDiscovery(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func findService(n *core.Node, name string, node core.NodeID) (core.Service, bool) {
	for _, s := range n.Services() {
		if s.Name == name && s.Node == node {
			return s, true
		}
	}
	return core.Service{}, false
}

func waitUntil(t testing.TB, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNodesWithoutALink: two nodes that share no link find each other's
// services through etcd, each through its own plugin process; a node that
// closes takes its services with it.
func TestNodesWithoutALink(t *testing.T) {
	needEtcd(t)
	prefix := newPrefix()
	quiet := core.DefaultConfig()
	quiet.Logger = hclog.NewNullLogger()
	a, err := core.New(core.Options{Config: quiet, Discovery: loadPlugin(t, prefix)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := core.New(core.Options{Config: quiet, Discovery: loadPlugin(t, prefix)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Bind(0, "svc-a"); err != nil {
		t.Fatal(err)
	}
	lnB, err := b.Bind(0, "svc-b")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a to see svc-b", 10*time.Second, func() bool { _, ok := findService(a, "svc-b", b.ID()); return ok })
	waitUntil(t, "b to see svc-a", 10*time.Second, func() bool { _, ok := findService(b, "svc-a", a.ID()); return ok })
	s, _ := findService(a, "svc-b", b.ID())
	if s.Port != lnB.Addr().(core.Addr).Port || s.Metadata["addrs"] != "127.0.0.1:10000,127.0.0.1:10001" {
		t.Fatalf("a sees %+v", s)
	}
	if len(a.Links()) != 0 || len(b.Links()) != 0 {
		t.Fatal("the nodes share a link")
	}
	lnB.Close()
	waitUntil(t, "svc-b to go after Close of its listener", 10*time.Second, func() bool { _, ok := findService(a, "svc-b", b.ID()); return !ok })
	if _, err := b.Bind(0, "svc-b2"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a to see svc-b2", 10*time.Second, func() bool { _, ok := findService(a, "svc-b2", b.ID()); return ok })
	b.Close() // revokes b's lease
	waitUntil(t, "b's services to go with its lease", 10*time.Second, func() bool { _, ok := findService(a, "svc-b2", b.ID()); return !ok })
}

// serveWatched serves impl over gRPC, as a plugin process would be, starts
// it on a test mesh, and returns the client, the mesh and a check of whether
// the view it publishes holds a service of a name. It stops when the test
// ends.
func serveWatched(t *testing.T, impl core.Discovery) (*sdktest.GRPCDiscovery, *sdktest.Mesh, func(name string) bool) {
	t.Helper()
	g, err := sdktest.OverGRPC(impl, sdk.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	mesh, has, _ := startWatched(t, g)
	return g, mesh, has
}

// startWatched starts d on a test mesh and returns the mesh and checks of
// whether the view d publishes holds a service of a name, and whether that
// is all it holds.
func startWatched(t *testing.T, d core.Discovery) (mesh *sdktest.Mesh, has, only func(name string) bool) {
	t.Helper()
	var mu sync.Mutex
	var view []core.Service
	mesh = sdktest.NewMesh()
	if err := d.Start(mesh, func(ss []core.Service) { mu.Lock(); view = ss; mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	has = func(name string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(view, func(s core.Service) bool { return s.Name == name })
	}
	only = func(name string) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(view) == 1 && view[0].Name == name
	}
	return mesh, has, only
}

// privateEtcd is an etcd server of one test's own, on ports it keeps across
// restarts; it stops when the test ends.
type privateEtcd struct {
	t            *testing.T
	cport, pport int
	stop         func()
}

func newPrivateEtcd(t *testing.T) *privateEtcd {
	t.Helper()
	e := &privateEtcd{t: t, stop: func() {}}
	var err error
	if e.cport, err = freePort(); err == nil {
		e.pport, err = freePort()
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.halt() })
	return e
}

// start runs the server with its data in dir.
func (e *privateEtcd) start(dir string) {
	e.t.Helper()
	stop, err := runEtcd(etcdBin, dir, e.cport, e.pport)
	if err != nil {
		e.t.Fatal(err)
	}
	e.stop = stop
}

// halt stops the server; start runs it again.
func (e *privateEtcd) halt() {
	e.stop()
	e.stop = func() {}
}

func (e *privateEtcd) endpoint() string { return "127.0.0.1:" + fmt.Sprint(e.cport) }

// TestCompaction: a watch that resumes from a revision etcd has compacted
// away makes the plugin reset the host's view and send a fresh snapshot,
// which holds what changed meanwhile.
func TestCompaction(t *testing.T) {
	needEtcd(t)
	prefix := newPrefix()
	impl := newTestDiscovery(t, prefix)
	g, mesh, has := serveWatched(t, impl)
	if err := g.Register(core.Service{Name: "before", Node: mesh.ID(), Port: 1}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "before", 5*time.Second, func() bool { return has("before") })

	cli, ctx := testClient(t)
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	old := resp.Header.Revision
	// Changes the plugin will have missed, then a compaction past them.
	other := core.NodeID(0xfeed)
	var last int64
	for i := range 5 {
		val := fmt.Sprintf(`{"name":"after-%d","node":%q,"port":%d}`, i, other.String(), 10+i)
		r, err := cli.Put(ctx, fmt.Sprintf("%safter-%d/%s/%d", prefix, i, other, 10+i), val)
		if err != nil {
			t.Fatal(err)
		}
		last = r.Header.Revision
	}
	if _, err := cli.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	resets := g.Resets()
	select {
	case impl.rewatch <- old:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch loop did not take the rewatch")
	}
	waitUntil(t, "a reset", 5*time.Second, func() bool { return g.Resets() > resets })
	waitUntil(t, "the fresh snapshot", 5*time.Second, func() bool {
		for i := range 5 {
			if !has(fmt.Sprintf("after-%d", i)) {
				return false
			}
		}
		return has("before")
	})
	// The watch goes on after the reset.
	if _, err := cli.Delete(ctx, fmt.Sprintf("%safter-0/%s/10", prefix, other)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "after-0 to go", 5*time.Second, func() bool { return !has("after-0") })
}

// TestGarbageValues: keys under the prefix that another writer filled with
// garbage are skipped, not fatal.
func TestGarbageValues(t *testing.T) {
	needEtcd(t)
	prefix := newPrefix()
	cli, ctx := testClient(t)
	for _, v := range []string{"", "{", `{"name":"x","node":"nothex","port":1}`, strings.Repeat("x", maxValueBytes+1)} {
		if _, err := cli.Put(ctx, prefix+"junk/"+fmt.Sprint(len(v)), v); err != nil {
			t.Fatal(err)
		}
	}
	e := newTestDiscovery(t, prefix)
	mesh, _, only := startWatched(t, e)
	defer e.Close()
	e.Register(core.Service{Name: "good", Node: mesh.ID(), Port: 3})
	waitUntil(t, "only the good service", 5*time.Second, func() bool { return only("good") })
}

// TestDecodeRecordRejects: a record the host would drop is skipped in the
// plugin, with an error that says why: no port, no name or a bad one,
// metadata past core's bounds, with the addrs counted in it.
func TestDecodeRecordRejects(t *testing.T) {
	sixteen := map[string]string{}
	for i := range core.MaxMetadata {
		sixteen[fmt.Sprint("k", i)] = "v"
	}
	manyAddrs := slices.Repeat([]string{"127.0.0.1:10000"}, 20)
	for _, tc := range []struct {
		r    record
		want string
	}{
		{record{Name: "a", Node: "00000000000000b2"}, `"a" has port 0`},
		{record{Node: "00000000000000b2", Port: 7}, "port 7 has no name"},
		{record{Name: "a b", Node: "00000000000000b2", Port: 7}, "byte 0x20 not allowed"},
		{record{Name: "a", Node: "0000000000000000", Port: 7}, "node id"},
		{record{Name: "a", Node: "00000000000000b2", Port: 7, Metadata: sixteen, Addrs: []string{"x:1"}}, "17 metadata keys"},
		{record{Name: "a", Node: "00000000000000b2", Port: 7, Addrs: manyAddrs}, `metadata "addrs"`},
	} {
		v, err := json.Marshal(tc.r)
		if err != nil {
			t.Fatal(err)
		}
		if s, err := decodeRecord(v); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decodeRecord(%s) = %+v, %v; want an error saying %q", v, s, err, tc.want)
		}
	}
	if _, err := decodeRecord([]byte(strings.Repeat(" ", maxValueBytes+1))); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("an oversized value: %v", err)
	}
	s, err := decodeRecord([]byte(`{"name":"a","node":"00000000000000b2","port":7,"metadata":{"k":"v"},"addrs":["x:1","y:2"]}`))
	if err != nil || s.Name != "a" || s.Node != 0xb2 || s.Port != 7 || len(s.Metadata) != 2 || s.Metadata["addrs"] != "x:1,y:2" {
		t.Errorf("a good record: %+v, %v", s, err)
	}
}

// TestRegisterRefusesWhatNodesWouldSkip: Register refuses, rather than
// writes, a service whose record the nodes would skip; a port-only listener
// is not written; and addrs too long for a metadata value fail Configure.
func TestRegisterRefusesWhatNodesWouldSkip(t *testing.T) {
	e := newEtcdDiscovery(hclog.NewNullLogger())
	if err := e.Configure(map[string]string{"endpoints": "x", "addrs": "127.0.0.1:10000"}); err != nil {
		t.Fatal(err)
	}
	sixteen := map[string]string{}
	for i := range core.MaxMetadata {
		sixteen[fmt.Sprint("k", i)] = "v"
	}
	for _, tc := range []struct {
		s    core.Service
		want string
	}{
		{core.Service{Name: "a", Node: 0xb2, Port: 7, Metadata: sixteen}, "17 metadata keys"},
		{core.Service{Name: "a b", Node: 0xb2, Port: 7}, "byte 0x20 not allowed"},
		{core.Service{Name: "a", Node: 0xb2, Port: 7, Metadata: map[string]string{"k": strings.Repeat("v", 257)}}, `metadata "k"`},
	} {
		if err := e.Register(tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Register(%q): %v; want an error saying %q", tc.s.Name, err, tc.want)
		}
	}
	if err := e.Register(core.Service{Node: 0xb2, Port: 8}); err != nil {
		t.Errorf("Register of a port-only listener: %v", err)
	}
	if err := e.Register(core.Service{Name: "good", Node: 0xb2, Port: 9}); err != nil {
		t.Errorf("Register(good): %v", err)
	}
	if len(e.want) != 1 {
		t.Errorf("%d services to write, want only good: %v", len(e.want), e.want)
	}
	long := strings.Repeat("127.0.0.1:10000,", 20)
	if err := newEtcdDiscovery(hclog.NewNullLogger()).Configure(map[string]string{"endpoints": "x", "addrs": long}); err == nil {
		t.Errorf("Configure took addrs of %d bytes", len(long))
	}
}

func TestConfigure(t *testing.T) {
	needEtcd(t)
	for _, opts := range []map[string]string{
		{},
		{"endpoints": "x", "prefix": "nope"},
		{"endpoints": "x", "ttl": "1"},
		{"endpoints": "x", "ttl": "ten"},
		{"endpoints": "x", "dial_timeout": "-1s"},
	} {
		if err := newEtcdDiscovery(hclog.NewNullLogger()).Configure(opts); err == nil {
			t.Errorf("Configure(%v) accepted", opts)
		}
	}
}

// TestConfigureTTLBounds: a ttl longer than etcd grants is refused, rather
// than taken and then asked of etcd, which refuses every grant, for ever.
func TestConfigureTTLBounds(t *testing.T) {
	for ttl, ok := range map[string]bool{"2": true, "9000000000": true, "9000000001": false, "9223372036854775807": false} {
		err := newEtcdDiscovery(hclog.NewNullLogger()).Configure(map[string]string{"endpoints": "x", "ttl": ttl})
		if (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "ttl")) {
			t.Errorf("Configure(ttl=%s): %v; want accepted %v", ttl, err, ok)
		}
	}
}

// lineCounter counts the log lines that contain a phrase.
type lineCounter struct {
	phrase string
	n      atomic.Int64
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(strings.Count(string(p), c.phrase)))
	return len(p), nil
}

// TestKeepAliveHaltedBacksOff: when keepalives cannot be started (the
// client's lessor has halted), the lease loop revokes each lease it was
// granted and waits longer before the next, rather than granting leases as
// fast as etcd answers.
func TestKeepAliveHaltedBacksOff(t *testing.T) {
	needEtcd(t)
	failed := &lineCounter{phrase: "keepalive failed"}
	e := newTestDiscovery(t, newPrefix())
	e.log = hclog.New(&hclog.LoggerOptions{Output: failed, Level: hclog.Warn})
	if err := e.Start(sdktest.NewMesh(), func([]core.Service) {}); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	leased := func() bool { e.mu.Lock(); defer e.mu.Unlock(); return e.lease != 0 }
	waitUntil(t, "a lease", 5*time.Second, leased)

	cli, ctx := testClient(t)
	leases := func() map[clientv3.LeaseID]bool {
		t.Helper()
		resp, err := cli.Leases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids := make(map[clientv3.LeaseID]bool, len(resp.Leases))
		for _, l := range resp.Leases {
			ids[l.ID] = true
		}
		return ids
	}
	before := leases()

	// Halting the lessor makes every later KeepAlive fail, while Grant
	// still succeeds.
	e.mu.Lock()
	e.cli.Lease.Close()
	e.mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	newLeases := 0
	for id := range leases() {
		if !before[id] {
			newLeases++
		}
	}
	// Backoff from 50 ms: about four attempts in 500 ms.
	t.Logf("in 500 ms: %d keepalive failures, %d new leases left live", failed.n.Load(), newLeases)
	if n := failed.n.Load(); n > 8 {
		t.Errorf("%d keepalive failures in 500 ms; want a handful, backing off", n)
	}
	if newLeases > 1 {
		t.Errorf("%d leases granted and left live; want each revoked", newLeases)
	}
	start := time.Now()
	e.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v during the backoff", took)
	}
}

// TestStartAfterClose: a discovery closed before it started refuses to
// start, and so starts nothing that its Close would not stop.
func TestStartAfterClose(t *testing.T) {
	needEtcd(t)
	e := newTestDiscovery(t, newPrefix())
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Start(sdktest.NewMesh(), func([]core.Service) {}); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// testClient is an etcd client of the test's own, closed when the test ends,
// and a context for its calls.
func testClient(t *testing.T) (*clientv3.Client, context.Context) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdEndpoint}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return cli, ctx
}

// TestOwnKeyDeletedIsRestored: a key of the node's own that another client
// deletes (an operator cleaning the prefix, say) is written again while the
// node still has the service, rather than leaving it undiscoverable until
// the lease happens to be lost.
func TestOwnKeyDeletedIsRestored(t *testing.T) {
	needEtcd(t)
	prefix := newPrefix()
	e := newTestDiscovery(t, prefix)
	mesh, _, only := startWatched(t, e)
	defer e.Close()
	s := core.Service{Name: "mine", Node: mesh.ID(), Port: 4}
	if err := e.Register(s); err != nil {
		t.Fatal(err)
	}
	has := func() bool { return only("mine") }
	waitUntil(t, "the service", 5*time.Second, has)

	cli, ctx := testClient(t)
	if _, err := cli.Delete(ctx, prefix, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the key to be written again, under the node's lease", 5*time.Second, func() bool {
		resp, err := cli.Get(ctx, e.key(s))
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Kvs) == 1 && resp.Kvs[0].Lease != 0
	})
	waitUntil(t, "the service in the view", 5*time.Second, has)
}

// TestEtcdReplaced: when etcd comes back with a lower revision (a cluster
// restored from an older backup, or replaced by a new one), the plugin
// resets its view from a fresh snapshot; a watch resumed from its old
// revision would never see a change until the new store caught up.
func TestEtcdReplaced(t *testing.T) {
	needEtcd(t)
	etcd := newPrivateEtcd(t)
	etcd.start(t.TempDir())
	endpoint := etcd.endpoint()
	prefix := newPrefix()
	e := newEtcdDiscovery(hclog.NewNullLogger())
	if err := e.Configure(map[string]string{"endpoints": endpoint, "prefix": prefix, "ttl": "2", "dial_timeout": "1s"}); err != nil {
		t.Fatal(err)
	}
	e.revisionCheck = 100 * time.Millisecond
	g, mesh, has := serveWatched(t, e)
	if err := g.Register(core.Service{Name: "mine", Node: mesh.ID(), Port: 1}); err != nil {
		t.Fatal(err)
	}
	put := func(name string, port int) {
		t.Helper()
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		other := core.NodeID(0xfeed)
		val := fmt.Sprintf(`{"name":%q,"node":%q,"port":%d}`, name, other.String(), port)
		if _, err := cli.Put(ctx, fmt.Sprintf("%s%s/%s/%d", prefix, name, other, port), val); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 { // a revision the new store will not reach soon
		put("old", 100+i)
	}
	waitUntil(t, "the first store's services", 5*time.Second, func() bool { return has("mine") && has("old") })

	etcd.halt()
	etcd.start(t.TempDir())
	put("new", 200)
	waitUntil(t, "the new store's services", 10*time.Second, func() bool { return has("new") && has("mine") && !has("old") })
}

// TestRestartWhileEtcdDownKeepsView: a plugin that crashes while etcd is
// unreachable comes back knowing nothing yet; the node goes on with the last
// view it had (stale, not empty) until the new process has read etcd.
func TestRestartWhileEtcdDownKeepsView(t *testing.T) {
	needEtcd(t)
	etcd := newPrivateEtcd(t)
	dir := t.TempDir()
	etcd.start(dir)
	cfg := plugins.DefaultConfig(pluginBin)
	cfg.Options = map[string]string{"endpoints": etcd.endpoint(), "prefix": newPrefix(), "ttl": "5", "dial_timeout": "1s"}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := plugins.LoadDiscovery(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mesh, hasName, _ := startWatched(t, d)
	has := func() bool { return hasName("mine") }
	if err := d.Register(core.Service{Name: "mine", Node: mesh.ID(), Port: 1}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the service", 5*time.Second, has)

	etcd.halt()
	if err := syscall.Kill(d.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the restart", 5*time.Second, func() bool { return d.Restarts() == 1 })
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !has() {
			t.Fatal("the restarted plugin emptied the node's view while etcd was down")
		}
	}
	if !d.Stale() {
		t.Error("the view is not reported stale")
	}
	etcd.start(dir)
	waitUntil(t, "the view fresh again", 10*time.Second, func() bool { return has() && !d.Stale() })
}
