package routing

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	"github.com/hashicorp/go-hclog"
)

// testInterval is the update interval of every test network: short, so that
// tests run quickly, and long enough for -race on two cores.
const testInterval = 50 * time.Millisecond

// testNet is a network of real nodes in one process, linked by net.Pipe. Node
// i has id i+1.
type testNet struct {
	t       testing.TB
	opts    Options // for every node added; Interval is testInterval unless set
	nodes   []*core.Node
	routing []*Routing // node i's, nil for a node without routing
	wg      sync.WaitGroup

	mu    sync.Mutex
	pipes map[[2]int]net.Conn // one end of the live pipe between i < j
}

// lineNet starts three nodes with opts, links them in a line 0-1-2 and waits
// until every node has a route to every other.
func lineNet(t *testing.T, opts Options) *testNet {
	t.Helper()
	tn := &testNet{t: t, pipes: make(map[[2]int]net.Conn), opts: opts}
	t.Cleanup(tn.close)
	for range 3 {
		tn.add(core.DefaultConfig(), true)
	}
	tn.link(0, 1)
	tn.link(1, 2)
	waitFor(t, 5*time.Second, "converge", func() error { return tn.snapshot().allPairs() })
	return tn
}

// optsNet starts n nodes with opts and makes the links given, without
// waiting for routes.
func optsNet(t *testing.T, opts Options, n int, links ...[2]int) *testNet {
	t.Helper()
	tn := &testNet{t: t, pipes: make(map[[2]int]net.Conn), opts: opts}
	t.Cleanup(tn.close)
	for range n {
		tn.add(core.DefaultConfig(), true)
	}
	for _, l := range links {
		tn.link(l[0], l[1])
	}
	return tn
}

// newTestNet starts n nodes. caps, if not nil, gives node i's capability bits.
func newTestNet(t testing.TB, n int, caps func(i int) uint32) *testNet {
	t.Helper()
	tn := &testNet{t: t, pipes: make(map[[2]int]net.Conn)}
	t.Cleanup(tn.close)
	for i := range n {
		cfg := core.DefaultConfig()
		if caps != nil {
			cfg.Caps = caps(i)
		}
		tn.add(cfg, true)
	}
	return tn
}

// add starts one more node with cfg, with or without routing, and returns
// its index.
func (tn *testNet) add(cfg core.Config, routing bool) int {
	tn.t.Helper()
	node, r := tn.start(len(tn.nodes), cfg, routing)
	tn.nodes = append(tn.nodes, node)
	tn.routing = append(tn.routing, r)
	return len(tn.nodes) - 1
}

// restart closes node i and starts it again, with the same id and a fresh
// routing. Its links must have been cut.
func (tn *testNet) restart(i int) {
	tn.t.Helper()
	cfg := tn.nodes[i].Config()
	tn.nodes[i].Close()
	tn.nodes[i], tn.routing[i] = tn.start(i, cfg, tn.routing[i] != nil)
}

// start starts node i.
func (tn *testNet) start(i int, cfg core.Config, routing bool) (*core.Node, *Routing) {
	t := tn.t
	t.Helper()
	opts := tn.opts
	if opts.Interval == 0 {
		opts.Interval = testInterval
	}
	if level := os.Getenv("ROUTING_TEST_LOG"); level != "" {
		// For debugging: ROUTING_TEST_LOG=debug go test ...
		opts.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.LevelFromString(level), Name: fmt.Sprint(i)})
		cfg.Logger = opts.Logger
	}
	var r *Routing
	o := core.Options{Config: cfg, ID: core.NodeID(i + 1)}
	if routing {
		r = New(opts)
		o.Routing = r
	}
	node, err := core.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return node, r
}

func (tn *testNet) close() {
	for _, n := range tn.nodes {
		n.Close()
	}
	tn.wg.Wait()
}

func pairKey(i, j int) [2]int {
	if i > j {
		i, j = j, i
	}
	return [2]int{i, j}
}

// link joins nodes i and j by a new pipe.
func (tn *testNet) link(i, j int) {
	a, b := net.Pipe()
	tn.mu.Lock()
	if old := tn.pipes[pairKey(i, j)]; old != nil {
		tn.mu.Unlock()
		tn.t.Fatalf("nodes %d and %d are linked already", i, j)
	}
	tn.pipes[pairKey(i, j)] = a
	tn.mu.Unlock()
	tn.wg.Add(2)
	go func() { defer tn.wg.Done(); tn.nodes[i].Attach(a) }()
	go func() { defer tn.wg.Done(); tn.nodes[j].Attach(b) }()
}

// cut closes the pipe between nodes i and j: that link dies on both sides.
func (tn *testNet) cut(i, j int) {
	tn.mu.Lock()
	c := tn.pipes[pairKey(i, j)]
	delete(tn.pipes, pairKey(i, j))
	tn.mu.Unlock()
	if c == nil {
		tn.t.Fatalf("nodes %d and %d are not linked", i, j)
	}
	c.Close()
}

// snapshot is every node's route table and live links, read once.
type snapshot struct {
	routes []map[core.NodeID]core.Route
	links  []map[uint64]core.NodeID // link id -> peer
}

func (tn *testNet) snapshot() snapshot {
	var s snapshot
	for _, n := range tn.nodes {
		rs := make(map[core.NodeID]core.Route)
		for _, r := range n.Routes() {
			rs[r.Dst] = r
		}
		ls := make(map[uint64]core.NodeID)
		for _, l := range n.Links() {
			ls[l.ID] = l.Peer
		}
		s.routes = append(s.routes, rs)
		s.links = append(s.links, ls)
	}
	return s
}

func index(id core.NodeID) int { return int(id) - 1 }

// path follows the next hops from src to dst through the route tables. It
// fails on a missing route, a route over a dead link or whose next hop is not
// the link's peer, and a node visited twice (a loop).
func (s snapshot) path(src, dst int) ([]int, error) {
	p := []int{src}
	seen := map[int]bool{src: true}
	for cur := src; cur != dst; {
		r, ok := s.routes[cur][core.NodeID(dst+1)]
		if !ok {
			return p, fmt.Errorf("node %d has no route to %d (path %v)", cur, dst, p)
		}
		peer, live := s.links[cur][r.Link]
		switch {
		case !live:
			return p, fmt.Errorf("node %d routes to %d over dead link %d", cur, dst, r.Link)
		case peer != r.NextHop:
			return p, fmt.Errorf("node %d routes to %d via %v over link %d to %v", cur, dst, r.NextHop, r.Link, peer)
		}
		cur = index(r.NextHop)
		if seen[cur] {
			return append(p, cur), fmt.Errorf("routing loop from %d to %d: %v", src, dst, append(p, cur))
		}
		seen[cur] = true
		p = append(p, cur)
	}
	return p, nil
}

// check verifies that no route points at a dead link or the wrong peer.
func (s snapshot) check() error {
	for i, rs := range s.routes {
		for _, r := range rs {
			peer, live := s.links[i][r.Link]
			if !live {
				return fmt.Errorf("node %d: route to %v over dead link %d", i, r.Dst, r.Link)
			}
			if peer != r.NextHop {
				return fmt.Errorf("node %d: route to %v via %v over link to %v", i, r.Dst, r.NextHop, peer)
			}
		}
	}
	return nil
}

// allPairs checks that every node reaches every other without a loop.
func (s snapshot) allPairs() error {
	if err := s.check(); err != nil {
		return err
	}
	for src := range s.routes {
		for dst := range s.routes {
			if src == dst {
				continue
			}
			if _, err := s.path(src, dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitFor polls cond until it returns nil, failing the test if it has not by
// d. It returns how long it took.
func waitFor(t testing.TB, d time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// randomMesh returns the edges of a connected graph of n nodes with about
// degree/2 * n edges: a random spanning tree plus random extra edges.
func randomMesh(rng *rand.Rand, n, degree int) [][2]int {
	have := make(map[[2]int]bool)
	var edges [][2]int
	add := func(i, j int) bool {
		k := pairKey(i, j)
		if i == j || have[k] {
			return false
		}
		have[k] = true
		edges = append(edges, k)
		return true
	}
	for i := 1; i < n; i++ {
		add(i, rng.IntN(i))
	}
	for len(edges) < n*degree/2 {
		add(rng.IntN(n), rng.IntN(n))
	}
	return edges
}

// noRouter is the capability set of a node that does not forward.
const noRouter = wire.CapServer | wire.CapClient
