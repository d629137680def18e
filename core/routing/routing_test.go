package routing

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
)

// hops checks that every path from src to dst has want(src, dst) hops.
func (s snapshot) hops(want func(src, dst int) int) error {
	if err := s.check(); err != nil {
		return err
	}
	for src := range s.routes {
		for dst := range s.routes {
			if src == dst {
				continue
			}
			p, err := s.path(src, dst)
			if err != nil {
				return err
			}
			if len(p)-1 != want(src, dst) {
				return fmt.Errorf("path %d -> %d is %v, want %d hops", src, dst, p, want(src, dst))
			}
		}
	}
	return nil
}

func absInt(x int) int { return max(x, -x) }

func TestLine(t *testing.T) {
	const n = 5
	tn := newTestNet(t, n, nil)
	for i := 0; i+1 < n; i++ {
		tn.link(i, i+1)
	}
	took := waitFor(t, 5*time.Second, "line converges", func() error {
		return tn.snapshot().hops(func(a, b int) int { return absInt(a - b) })
	})
	t.Logf("line of %d converged in %v", n, took)

	s := tn.snapshot()
	for src := range n {
		for dst := range n {
			if src == dst {
				continue
			}
			r := s.routes[src][core.NodeID(dst+1)]
			wantHop := src + 1
			if dst < src {
				wantHop = src - 1
			}
			if r.NextHop != core.NodeID(wantHop+1) {
				t.Errorf("route %d -> %d via %v, want %d", src, dst, r.NextHop, wantHop+1)
			}
			h := absInt(src - dst)
			if r.Metric < uint32(h*HopCost) || r.Metric >= uint32(h*HopCost+HopCost/2) {
				t.Errorf("route %d -> %d (%d hops): metric %d", src, dst, h, r.Metric)
			}
			// More hops, larger metric.
			for far := range n {
				if far != src && absInt(src-far) > h && s.routes[src][core.NodeID(far+1)].Metric <= r.Metric {
					t.Errorf("metric %d -> %d (%d) not above %d -> %d (%d)", src, far,
						s.routes[src][core.NodeID(far+1)].Metric, src, dst, r.Metric)
				}
			}
		}
		if _, ok := s.routes[src][core.NodeID(src+1)]; ok {
			t.Errorf("node %d publishes a route to itself", src)
		}
	}
}

func TestRingCut(t *testing.T) {
	const n = 8
	tn := newTestNet(t, n, nil)
	for i := range n {
		tn.link(i, (i+1)%n)
	}
	ring := func(a, b int) int { d := absInt(a - b); return min(d, n-d) }
	took := waitFor(t, 5*time.Second, "ring converges", func() error { return tn.snapshot().hops(ring) })
	t.Logf("ring of %d converged in %v", n, took)

	// Without the link 0-1 the ring is the line 1, 2, ..., 7, 0.
	tn.cut(0, 1)
	pos := func(k int) int { return (k - 1 + n) % n }
	line := func(a, b int) int { return absInt(pos(a) - pos(b)) }
	took = waitFor(t, 5*time.Second, "routes go the other way round", func() error { return tn.snapshot().hops(line) })
	t.Logf("after cutting link 0-1: converged in %v", took)

	tn.link(0, 1)
	took = waitFor(t, 5*time.Second, "shorter routes return", func() error { return tn.snapshot().hops(ring) })
	t.Logf("after re-linking 0-1: converged in %v", took)
}

func TestRandomMesh(t *testing.T) {
	n := 100
	if raceEnabled || testing.Short() {
		n = 50
	}
	rng := rand.New(rand.NewPCG(1, 2))
	edges := randomMesh(rng, n, 3)
	tn := newTestNet(t, n, nil)
	start := time.Now()
	for _, e := range edges {
		tn.link(e[0], e[1])
	}
	waitFor(t, 15*time.Second, "mesh converges", func() error { return tn.snapshot().allPairs() })
	t.Logf("random mesh of %d nodes, %d links: all pairs reachable %v after linking", n, len(edges), time.Since(start))

	// Cut a few links that keep the mesh connected and converge again.
	var cut [][2]int
	for _, e := range edges[n-1:] { // the extra edges, beyond the spanning tree
		if len(cut) == 3 {
			break
		}
		cut = append(cut, e)
	}
	start = time.Now()
	for _, e := range cut {
		tn.cut(e[0], e[1])
	}
	waitFor(t, 10*time.Second, "mesh converges after cuts", func() error { return tn.snapshot().allPairs() })
	t.Logf("after cutting %d links: all pairs reachable again in %v", len(cut), time.Since(start))
}

func TestPartitionHeal(t *testing.T) {
	const half = 10
	rng := rand.New(rand.NewPCG(3, 4))
	tn := newTestNet(t, 2*half, nil)
	for _, e := range randomMesh(rng, half, 3) {
		tn.link(e[0], e[1])
		tn.link(e[0]+half, e[1]+half)
	}
	bridges := [][2]int{{0, half}, {3, half + 5}, {7, half + 2}}
	for _, b := range bridges {
		tn.link(b[0], b[1])
	}
	waitFor(t, 5*time.Second, "mesh converges", func() error { return tn.snapshot().allPairs() })

	split := func() error {
		s := tn.snapshot()
		if err := s.check(); err != nil {
			return err
		}
		for a := range 2 * half {
			for b := range 2 * half {
				switch {
				case a == b:
				case (a < half) == (b < half):
					if _, err := s.path(a, b); err != nil {
						return err
					}
				default:
					if r, ok := s.routes[a][core.NodeID(b+1)]; ok {
						return fmt.Errorf("node %d still has a route to %d in the other half: %+v", a, b, r)
					}
				}
			}
		}
		return nil
	}
	start := time.Now()
	for _, b := range bridges {
		tn.cut(b[0], b[1])
	}
	waitFor(t, 5*time.Second, "routes to the other half disappear", split)
	t.Logf("partition: routes to the other half gone in %v", time.Since(start))
	// And they stay gone.
	for range 5 {
		time.Sleep(testInterval)
		if err := split(); err != nil {
			t.Fatal(err)
		}
	}

	start = time.Now()
	for _, b := range bridges {
		tn.link(b[0], b[1])
	}
	waitFor(t, 5*time.Second, "heal", func() error { return tn.snapshot().allPairs() })
	t.Logf("heal: all pairs reachable again in %v", time.Since(start))
}

func TestFlappingLink(t *testing.T) {
	const n = 10
	rng := rand.New(rand.NewPCG(5, 6))
	tn := newTestNet(t, n, nil)
	for i := range n {
		tn.link(i, (i+1)%n)
	}
	tn.link(0, 5)
	tn.link(2, 7)
	waitFor(t, 5*time.Second, "mesh converges", func() error { return tn.snapshot().allPairs() })

	for range 20 {
		tn.cut(0, 1)
		time.Sleep(time.Duration(rng.Int64N(int64(testInterval / 2))))
		tn.link(0, 1)
		time.Sleep(time.Duration(rng.Int64N(int64(testInterval / 2))))
	}
	took := waitFor(t, 5*time.Second, "converges after flapping", func() error { return tn.snapshot().allPairs() })
	t.Logf("after 20 flaps: converged in %v", took)
	// Stable from then on: no loop, no dead link, everything reachable.
	for range 10 {
		time.Sleep(testInterval / 2)
		if err := tn.snapshot().allPairs(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNonRouter(t *testing.T) {
	const a, c, b = 0, 1, 2
	tn := newTestNet(t, 3, func(i int) uint32 {
		if i == c {
			return noRouter
		}
		return wire.CapRouter | wire.CapServer | wire.CapClient
	})
	tn.link(a, c)
	tn.link(c, b)
	waitFor(t, 5*time.Second, "A and B reach C", func() error {
		s := tn.snapshot()
		for _, src := range []int{a, b} {
			if _, err := s.path(src, c); err != nil {
				return err
			}
		}
		// C itself learns routes for its own dials.
		for _, dst := range []int{a, b} {
			if _, err := s.path(c, dst); err != nil {
				return err
			}
		}
		return nil
	})
	for range 10 {
		s := tn.snapshot()
		if r, ok := s.routes[a][core.NodeID(b+1)]; ok {
			t.Fatalf("A has a route to B through the non-router: %+v", r)
		}
		if r, ok := s.routes[b][core.NodeID(a+1)]; ok {
			t.Fatalf("B has a route to A through the non-router: %+v", r)
		}
		time.Sleep(testInterval)
	}
}

// TestLifecycle checks that Routing refuses bad options and a second Start,
// and publishes nothing after Close.
func TestLifecycle(t *testing.T) {
	_, err := core.New(core.Options{Config: core.DefaultConfig(), Routing: New(Options{Interval: time.Millisecond})})
	if err == nil {
		t.Fatal("core.New accepted a 1ms routing interval")
	}

	r := New(Options{Interval: testInterval})
	node, err := core.New(core.Options{Config: core.DefaultConfig(), Routing: r})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(node, func([]core.Route) {}); err == nil {
		t.Error("second Start succeeded")
	}
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Events after Close are ignored.
	r.LinkUp(core.LinkInfo{ID: 1, Peer: 2, Caps: wire.CapRouter})
	r.HandleControl(core.LinkInfo{ID: 1, Peer: 2}, appendUpdates([]entry{{Dst: 2}}, time.Second, DefaultMaxMessage)[0])
	r.LinkDown(core.LinkInfo{ID: 1, Peer: 2})
}

// TestSmallFramePeer checks that an update too large for a peer that
// announces the smallest frames reaches it split into messages that fit.
func TestSmallFramePeer(t *testing.T) {
	tn := newTestNet(t, 1, nil) // a
	small := core.DefaultConfig()
	small.MaxFrame = wire.MinFramePayload
	b := tn.add(small, true)
	c := tn.add(core.DefaultConfig(), false) // a neighbour without routing, to speak for
	const a = 0
	tn.link(a, b)
	tn.link(a, c)
	var fromC core.LinkInfo
	waitFor(t, 5*time.Second, "a links to c", func() error {
		for _, l := range tn.nodes[a].Links() {
			if l.Peer == core.NodeID(c+1) {
				fromC = l
				return nil
			}
		}
		return fmt.Errorf("no link")
	})
	// Have c tell a about more nodes than one 4 KiB message can list.
	const far = 1000
	entries := make([]entry, 400)
	for i := range entries {
		entries[i] = entry{Dst: core.NodeID(far + i), Seqno: 1, Metric: HopCost}
	}
	msgs := appendUpdates(entries, maxLifetime, DefaultMaxMessage)
	if len(msgs) != 1 || len(msgs[0]) < wire.MinFramePayload {
		t.Fatalf("setup: %d messages", len(msgs))
	}
	tn.routing[a].HandleControl(fromC, msgs[0])

	waitFor(t, 5*time.Second, "b learns every node a reaches", func() error {
		s := tn.snapshot()
		for _, e := range entries {
			r, ok := s.routes[b][e.Dst]
			if !ok {
				return fmt.Errorf("b has no route to %v", e.Dst)
			}
			if r.NextHop != core.NodeID(a+1) || r.Metric < 3*HopCost {
				return fmt.Errorf("b's route to %v: %+v", e.Dst, r)
			}
		}
		return nil
	})
}

// linkTo waits for node i's link to node j and returns it.
func (tn *testNet) linkTo(i, j int) core.LinkInfo {
	tn.t.Helper()
	var info core.LinkInfo
	waitFor(tn.t, 5*time.Second, "link up", func() error {
		for _, l := range tn.nodes[i].Links() {
			if l.Peer == core.NodeID(j+1) {
				info = l
				return nil
			}
		}
		return fmt.Errorf("node %d has no link to %d", i, j)
	})
	return info
}

// TestExpiry checks that a route nobody refreshes expires, and that its
// retraction reaches the neighbours.
func TestExpiry(t *testing.T) {
	const a, b = 0, 1
	tn := newTestNet(t, 2, nil)
	c := tn.add(core.DefaultConfig(), false) // speaks no routing: we speak for it
	tn.link(a, b)
	tn.link(a, c)
	fromC := tn.linkTo(a, c)
	const lost = core.NodeID(77)
	lifetime := 3 * testInterval
	injected := time.Now()
	tn.routing[a].HandleControl(fromC, appendUpdates([]entry{{Dst: lost, Seqno: 1, Metric: HopCost}}, lifetime, DefaultMaxMessage)[0])
	has := func(i int) bool { _, ok := tn.snapshot().routes[i][lost]; return ok }
	waitFor(t, 5*time.Second, "b learns the route", func() error {
		if !has(a) || !has(b) {
			return fmt.Errorf("a: %v, b: %v", has(a), has(b))
		}
		return nil
	})
	waitFor(t, 5*time.Second, "the route expires everywhere", func() error {
		if has(a) || has(b) {
			return fmt.Errorf("a: %v, b: %v", has(a), has(b))
		}
		return nil
	})
	took := time.Since(injected)
	if took < lifetime {
		t.Errorf("gone %v after it was heard, before its lifetime %v", took, lifetime)
	}
	t.Logf("gone everywhere %v after it was heard (lifetime %v, interval %v)", took, lifetime, testInterval)
}

// TestNonRouterTransitIgnored checks that routes a node without CapRouter
// offers through itself are refused, while its route to itself is taken.
func TestNonRouterTransitIgnored(t *testing.T) {
	tn := newTestNet(t, 1, nil)
	cfg := core.DefaultConfig()
	cfg.Caps = noRouter
	c := tn.add(cfg, false)
	tn.link(0, c)
	fromC := tn.linkTo(0, c)
	msg := appendUpdates([]entry{{Dst: core.NodeID(c + 1), Seqno: 1}, {Dst: 77, Seqno: 1, Metric: HopCost}}, time.Minute, DefaultMaxMessage)[0]
	tn.routing[0].HandleControl(fromC, msg)
	waitFor(t, 5*time.Second, "route to the non-router", func() error {
		if _, ok := tn.snapshot().routes[0][core.NodeID(c+1)]; !ok {
			return fmt.Errorf("no route to %d", c)
		}
		return nil
	})
	time.Sleep(2 * testInterval)
	if r, ok := tn.snapshot().routes[0][77]; ok {
		t.Fatalf("took a transit route through a non-router: %+v", r)
	}
}

// TestRestartSameID restarts a node with the same id several times: its
// fresh sequence number starts anywhere, half the time behind what the
// others remember, and seqno requests must bring it up to date.
func TestRestartSameID(t *testing.T) {
	const n = 4
	tn := newTestNet(t, n, nil)
	for i := 0; i+1 < n; i++ {
		tn.link(i, i+1)
	}
	waitFor(t, 5*time.Second, "line converges", func() error { return tn.snapshot().allPairs() })
	for range 4 {
		tn.cut(2, 3)
		tn.restart(3)
		tn.link(2, 3)
		took := waitFor(t, 5*time.Second, "converges after restart", func() error { return tn.snapshot().allPairs() })
		t.Logf("node 3 restarted with the same id: converged in %v", took)
	}
}

// TestMaxDestinations checks that a peer cannot grow the route table past
// its bound.
func TestMaxDestinations(t *testing.T) {
	tn := &testNet{t: t, pipes: make(map[[2]int]net.Conn), opts: Options{MaxDestinations: 10}}
	t.Cleanup(tn.close)
	a := tn.add(core.DefaultConfig(), true)
	c := tn.add(core.DefaultConfig(), false)
	tn.link(a, c)
	fromC := tn.linkTo(a, c)
	entries := make([]entry, 100)
	for i := range entries {
		entries[i] = entry{Dst: core.NodeID(1000 + i), Seqno: 1, Metric: HopCost}
	}
	tn.routing[a].HandleControl(fromC, appendUpdates(entries, time.Minute, DefaultMaxMessage)[0])
	waitFor(t, 5*time.Second, "routes", func() error {
		if n := len(tn.nodes[a].Routes()); n != 10 {
			return fmt.Errorf("%d routes, want 10", n)
		}
		return nil
	})
	time.Sleep(2 * testInterval)
	if n := len(tn.nodes[a].Routes()); n != 10 {
		t.Fatalf("%d routes, want 10", n)
	}
}

// TestMalformedMessagesKeepRouting feeds garbage through a real link's
// control path: it is dropped, and routing carries on.
func TestMalformedMessagesKeepRouting(t *testing.T) {
	tn := newTestNet(t, 2, nil)
	tn.link(0, 1)
	waitFor(t, 5*time.Second, "converge", func() error { return tn.snapshot().allPairs() })
	to := tn.linkTo(1, 0)
	for _, garbage := range [][]byte{{}, {1}, {9, 9, 9}, update(1, 5), appendRequest(nil, request{Dst: 1, Seqno: 1})} {
		if err := tn.nodes[1].Send(to.ID, wire.KindRouting, garbage); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * testInterval)
	if err := tn.snapshot().allPairs(); err != nil {
		t.Fatal(err)
	}
	if len(tn.nodes[0].Links()) != 1 {
		t.Fatal("a malformed routing message closed the link")
	}
}

// TestGarbageCollection checks that what is known of a node that went away
// is collected: first its route, then, after HoldDown, its retraction, and
// after SourceGC its feasibility distance.
func TestGarbageCollection(t *testing.T) {
	tn := lineNet(t, Options{HoldDown: 2 * testInterval, SourceGC: 4 * testInterval})
	tn.cut(1, 2)
	dests := func() int {
		r := tn.routing[0]
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.dests)
	}
	took := waitFor(t, 5*time.Second, "node 2 forgotten", func() error {
		if n := dests(); n != 1 {
			return fmt.Errorf("node 0 keeps state on %d nodes, want 1", n)
		}
		return nil
	})
	if took < 4*testInterval {
		t.Errorf("forgotten after %v, before SourceGC", took)
	}
	if _, ok := tn.snapshot().routes[0][2]; !ok {
		t.Error("node 0 lost its route to node 1")
	}
}

// TestWithdraw: a router that withdraws (a node beginning to drain) retracts
// the routes through it at once: in a diamond, its neighbours switch to the
// other router well before the withdrawn routes would expire, and it still
// reaches every node itself.
func TestWithdraw(t *testing.T) {
	const a, r1, r2, b = 0, 1, 2, 3
	// A long interval: routes that are not retracted stay for 3.5 × 10 s.
	tn := optsNet(t, Options{Interval: 10 * time.Second}, 4, [2]int{a, r1}, [2]int{a, r2}, [2]int{r1, b}, [2]int{r2, b})
	var via int
	waitFor(t, 5*time.Second, "converge", func() error {
		s := tn.snapshot()
		if err := s.allPairs(); err != nil {
			return err
		}
		p, _ := s.path(a, b)
		via = p[1]
		return nil
	})
	other := r1 + r2 - via

	tn.routing[via].Withdraw()
	took := waitFor(t, 3*time.Second, "routes around the withdrawn router", func() error {
		s := tn.snapshot()
		for _, pair := range [][2]int{{a, b}, {b, a}} {
			p, err := s.path(pair[0], pair[1])
			if err != nil {
				return err
			}
			if len(p) != 3 || p[1] != other {
				return fmt.Errorf("path %v, want through %d", p, other)
			}
		}
		for _, dst := range []int{a, b} {
			if _, err := s.path(via, dst); err != nil {
				return fmt.Errorf("the withdrawn router lost its own route: %w", err)
			}
		}
		return nil
	})
	t.Logf("routes moved off the withdrawn router in %v", took)
	// And they stay off it: it no longer advertises them, not even in its
	// periodic full update (forced here: the interval is long).
	tn.routing[via].tick()
	time.Sleep(200 * time.Millisecond)
	s := tn.snapshot()
	if p, err := s.path(a, b); err != nil || p[1] != other {
		t.Fatalf("path from a to b after the withdrawal: %v, %v", p, err)
	}
	for _, i := range []int{a, b} {
		if dst, ok := tn.routing[i].heardVia(core.NodeID(via + 1)); ok {
			t.Errorf("node %d holds a route to %v through the withdrawn router", i, dst)
		}
	}
}

// heardVia reports a destination other than peer to which r holds a route
// (selected or not) that peer advertised.
func (r *Routing) heardVia(peer core.NodeID) (core.NodeID, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, d := range r.dests {
		for _, rt := range d.routes {
			if id != peer && rt.peer == peer {
				return id, true
			}
		}
	}
	return 0, false
}

// TestWithdrawPendingTriggered: a triggered update that was waiting for
// TriggeredDelay when the router withdrew must not advertise its routes
// again once it goes out: its neighbours would route through the draining
// router (which refuses transit) until those routes expire. A retraction
// that was waiting in it must still go out.
func TestWithdrawPendingTriggered(t *testing.T) {
	// a-w-b is the short way, a-r-x-b the long one; y hangs off w.
	const a, w, b, r, x, y = 0, 1, 2, 3, 4, 5
	// A long interval: no periodic update within the test, and a triggered
	// delay of 500 ms.
	opts := Options{Interval: 10 * time.Second}
	delay := opts.Interval / 20
	tn := optsNet(t, opts, 6, [2]int{a, w}, [2]int{w, b}, [2]int{a, r}, [2]int{r, x}, [2]int{x, b}, [2]int{w, y})
	waitFor(t, 5*time.Second, "converge", func() error {
		s := tn.snapshot()
		if err := s.allPairs(); err != nil {
			return err
		}
		for _, pair := range [][2]int{{a, b}, {b, a}} {
			if p, _ := s.path(pair[0], pair[1]); len(p) != 3 || p[1] != w {
				return fmt.Errorf("path %v, want through %d", p, w)
			}
		}
		return nil
	})

	// Changes just before the withdrawal, whose triggered update waits: w
	// loses y, and its other routes are marked changed.
	rw := tn.routing[w]
	rw.mu.Lock()
	rw.lastTriggered = time.Now()
	rw.mu.Unlock()
	tn.cut(w, y)
	waitFor(t, time.Second, "w loses y", func() error {
		rw.mu.Lock()
		defer rw.mu.Unlock()
		if d := rw.dests[core.NodeID(y+1)]; d != nil && d.selected != nil {
			return errors.New("w still has a route to y")
		}
		return nil
	})
	rw.mu.Lock()
	for id, d := range rw.dests {
		if d.selected != nil {
			rw.markDirty(id)
		}
	}
	rw.mu.Unlock()
	rw.Withdraw()

	around := func(s snapshot) error {
		for _, pair := range [][2]int{{a, b}, {b, a}} {
			p, err := s.path(pair[0], pair[1])
			if err != nil {
				return err
			}
			if len(p) != 4 || p[1] == w {
				return fmt.Errorf("path %v, want around %d", p, w)
			}
		}
		return nil
	}
	waitFor(t, 5*time.Second, "routes around the withdrawn router", func() error {
		return around(tn.snapshot())
	})
	// Past the pending triggered update, the routes stay off the router.
	for end := time.Now().Add(2 * delay); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if err := around(tn.snapshot()); err != nil {
			t.Fatalf("after the withdrawal: %v", err)
		}
	}
	if rt, ok := tn.snapshot().routes[a][core.NodeID(y+1)]; ok {
		t.Fatalf("a still routes to the lost node y: %+v", rt)
	}
}
