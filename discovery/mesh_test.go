package discovery

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/routing"
	"github.com/astranet-go/astranet/core/wire"
	"github.com/hashicorp/go-hclog"
)

// expiryBound is how long a silent origin may linger: 3.5 intervals, plus
// slack for a loaded machine running the race detector.
const expiryBound = time.Duration(expiry*float64(testInterval)) + 250*time.Millisecond

func TestLineRelaysAndWithdraws(t *testing.T) {
	tn := newNet(t)
	a, _ := tn.add(MeshOptions{})
	b, _ := tn.add(MeshOptions{})
	c, _ := tn.add(MeshOptions{})
	tn.link(a, b)
	tn.link(b, c)

	start := time.Now()
	ln := bind(t, c, "svc")
	waitFor(t, 2*time.Second, "svc at A", func() bool { return has(a, "svc", c.ID()) })
	t.Logf("bind on C seen at A (2 hops) after %v", time.Since(start))
	if !has(b, "svc", c.ID()) || !has(c, "svc", c.ID()) {
		t.Fatalf("B or C lacks svc: B %v, C %v", b.Services(), c.Services())
	}

	start = time.Now()
	ln.Close()
	waitFor(t, 2*time.Second, "svc gone everywhere", func() bool {
		return len(a.Services())+len(b.Services())+len(c.Services()) == 0
	})
	t.Logf("unbind on C gone everywhere after %v", time.Since(start))
}

func TestTwentyNodesSeeEachOther(t *testing.T) {
	const size = 20
	for _, shape := range []string{"line", "tree"} {
		t.Run(shape, func(t *testing.T) {
			tn := newNet(t)
			for i := range size {
				n, _ := tn.add(MeshOptions{})
				if i > 0 {
					peer := i - 1
					if shape == "tree" {
						peer = rand.N(i)
					}
					tn.link(tn.nodes[peer], n)
				}
			}

			// One service from the far end of the line (or a tree leaf).
			last := tn.nodes[size-1]
			start := time.Now()
			ln := bind(t, last, "far")
			waitFor(t, 5*time.Second, "far everywhere", func() bool {
				for _, n := range tn.nodes {
					if !has(n, "far", last.ID()) {
						return false
					}
				}
				return true
			})
			t.Logf("%s of %d: one bind seen by every node after %v", shape, size, time.Since(start))
			ln.Close()

			start = time.Now()
			var want []core.Service
			for i, n := range tn.nodes {
				ln := bind(t, n, fmt.Sprintf("svc-%d", i))
				want = append(want, core.Service{Name: ln.Addr().(core.Addr).Service, Node: n.ID(), Port: ln.Addr().(core.Addr).Port})
			}
			want = canonical(want)
			waitFor(t, 5*time.Second, "every node sees every service", func() bool {
				for _, n := range tn.nodes {
					if !same(view(n), want) {
						return false
					}
				}
				return true
			})
			t.Logf("%s of %d: all %d services seen by every node after %v", shape, size, size, time.Since(start))

			// Relayed refreshes keep them alive over every hop.
			time.Sleep(2 * expiryBound)
			for i, n := range tn.nodes {
				if got := view(n); !same(got, want) {
					t.Errorf("node %d lost services after %v: has %d of %d", i, 2*expiryBound, len(got), len(want))
				}
			}
		})
	}
}

func TestRingWithChords(t *testing.T) {
	// Loops: every announcement reaches each node over several paths and
	// must still settle, and refreshes must not multiply.
	const size = 8
	tn := newNet(t)
	for range size {
		tn.add(MeshOptions{})
	}
	for i := range size {
		tn.link(tn.nodes[i], tn.nodes[(i+1)%size])
	}
	tn.link(tn.nodes[0], tn.nodes[size/2])
	tn.link(tn.nodes[2], tn.nodes[6])
	var lns []*core.Listener
	for i, n := range tn.nodes {
		lns = append(lns, bind(t, n, fmt.Sprint("ring-", i)))
	}
	waitFor(t, 5*time.Second, "every node sees all", func() bool {
		for _, n := range tn.nodes {
			if len(n.Services()) != size {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * expiryBound) // through many refreshes
	for i, ln := range lns {
		if i%2 == 0 {
			ln.Close()
		}
	}
	waitFor(t, 2*time.Second, "half withdrawn everywhere", func() bool {
		for _, n := range tn.nodes {
			if len(n.Services()) != size/2 {
				return false
			}
		}
		return true
	})
}

func TestChurnSettles(t *testing.T) {
	const (
		size       = 6
		churners   = 3
		operations = 2000 // binds and unbinds, about half each
	)
	tn := newNet(t)
	for i := range size {
		n, _ := tn.add(MeshOptions{})
		if i > 0 {
			tn.link(tn.nodes[rand.N(i)], n)
		}
	}
	var wg sync.WaitGroup
	var binds, unbinds atomic.Int32
	for c := range churners {
		n := tn.nodes[c*2]
		wg.Go(func() {
			bound := map[string]*core.Listener{}
			for i := range operations / churners {
				name := fmt.Sprintf("churn-%d-%d", c, rand.N(8))
				if ln := bound[name]; ln != nil {
					ln.Close()
					delete(bound, name)
					unbinds.Add(1)
					continue
				}
				ln, err := n.Bind(0, name)
				if err != nil {
					t.Errorf("bind %d: %v", i, err)
					return
				}
				bound[name] = ln
				binds.Add(1)
			}
		})
	}
	wg.Wait()

	truth := func() []core.Service {
		var ss []core.Service
		for _, n := range tn.nodes {
			ss = append(ss, n.Bound()...)
		}
		return canonical(ss)
	}
	want := truth()
	d := waitFor(t, 5*time.Second, "every view equals the bound set", func() bool {
		for _, n := range tn.nodes {
			if !same(view(n), want) {
				return false
			}
		}
		return true
	})
	t.Logf("after %d binds and %d unbinds on %d nodes: settled %v after the last, %d services bound",
		binds.Load(), unbinds.Load(), churners, d, len(want))
	// And it stays settled through refreshes.
	time.Sleep(3 * testInterval)
	for i, n := range tn.nodes {
		if got := view(n); !same(got, want) {
			t.Errorf("node %d drifted: %v, want %v", i, got, want)
		}
	}
}

func TestNewNeighbourCatchesUp(t *testing.T) {
	// Eight nodes with about 55 KiB of services each: a new neighbour needs
	// several of the announcer's rounds (sendBudget) to catch up.
	tn := newNet(t)
	md := map[string]string{}
	for i := range maxMetadata {
		md[fmt.Sprintf("%064d", i)] = strings.Repeat("v", maxValueLen)
	}
	var want []core.Service
	for i := range 8 {
		n, m := tn.add(MeshOptions{})
		if i > 0 {
			tn.link(tn.nodes[i-1], n)
		}
		for p := range uint32(10) {
			svc := core.Service{Name: fmt.Sprintf("big-%d-%d", i, p), Node: n.ID(), Port: p + 1, Metadata: md}
			if err := m.Register(svc); err != nil {
				t.Fatal(err)
			}
			want = append(want, svc)
		}
	}
	want = canonical(want)
	waitFor(t, 5*time.Second, "the first node sees all", func() bool { return same(view(tn.nodes[0]), want) })
	late, _ := tn.add(MeshOptions{})
	start := time.Now()
	tn.link(tn.nodes[0], late)
	waitFor(t, 5*time.Second, "the late node sees all", func() bool { return same(view(late), want) })
	t.Logf("a new neighbour caught up on %d services (%d KiB) after %v", len(want), 8*10*5, time.Since(start))
}

func TestEnvIsolation(t *testing.T) {
	tn := newNet(t)
	a, _ := tn.add(MeshOptions{})
	prod, _ := tn.add(MeshOptions{})
	staging, _ := tn.add(MeshOptions{})
	tn.link(a, prod)
	tn.link(a, staging)
	lnProd := bind(t, prod, "svc.prod")
	lnStaging := bind(t, staging, "svc.staging")
	waitFor(t, 2*time.Second, "both envs at A", func() bool {
		return has(a, "svc.prod", prod.ID()) && has(a, "svc.staging", staging.ID())
	})

	var wg sync.WaitGroup
	defer wg.Wait()
	defer lnProd.Close()
	defer lnStaging.Close()
	var prodStreams atomic.Int32
	for _, ln := range []*core.Listener{lnProd, lnStaging} {
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				if ln == lnStaging {
					t.Errorf("staging got a stream from %v", c.RemoteAddr())
				} else {
					prodStreams.Add(1)
				}
				wg.Go(func() {
					// Drain, not close at once: core fails a dial whose
					// stream is reset before the dialler sees ACCEPT.
					io.Copy(io.Discard, c)
					c.Close()
				})
			}
		})
	}
	pick := func(ss []core.Service) core.Service {
		for _, s := range ss {
			if s.Name != "svc.prod" {
				t.Errorf("lookup of svc.prod offered %v", s)
			}
		}
		return Random(ss)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 20 {
		s, err := a.Dial(ctx, core.Target{Service: "svc.prod", Pick: pick})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.RemoteAddr().(core.Addr).Node; got != prod.ID() {
			t.Errorf("svc.prod dial reached %v, want %v", got, prod.ID())
		}
		s.Close()
	}
	waitFor(t, 2*time.Second, "20 streams at prod", func() bool { return prodStreams.Load() == 20 })
}

func TestKilledNodeExpires(t *testing.T) {
	// A - B - C - D; D's link dies without D unbinding. C loses its direct
	// neighbour with no route left and drops D at once; A and B let it expire.
	tn := newNet(t)
	a, _ := tn.add(MeshOptions{})
	b, _ := tn.add(MeshOptions{})
	c, _ := tn.add(MeshOptions{})
	d, _ := tn.add(MeshOptions{})
	tn.link(a, b)
	tn.link(b, c)
	_, endD := tn.link(c, d)
	bind(t, d, "doomed")
	keep := bind(t, c, "keeper")
	waitFor(t, 2*time.Second, "doomed at A", func() bool { return has(a, "doomed", d.ID()) && has(a, "keeper", c.ID()) })

	start := time.Now()
	endD.Close()
	gone := make([]time.Duration, 3)
	waitFor(t, 2*expiryBound, "doomed gone from A, B and C", func() bool {
		all := true
		for i, n := range []*core.Node{a, b, c} {
			if has(n, "doomed", d.ID()) {
				all = false
			} else if gone[i] == 0 {
				gone[i] = time.Since(start)
			}
		}
		return all
	})
	t.Logf("killed D gone from C (neighbour) after %v, B after %v, A after %v (expiry %v)",
		gone[2], gone[1], gone[0], time.Duration(expiry*float64(testInterval)))
	for i, g := range gone {
		if g > expiryBound {
			t.Errorf("node %d kept the dead node's service %v, more than %v", i, g, expiryBound)
		}
	}
	if gone[2] > 2*testInterval {
		t.Errorf("the direct neighbour took %v to drop the dead node", gone[2])
	}
	if !has(a, "keeper", c.ID()) {
		t.Errorf("a live service went with the dead one: %v", a.Services())
	}
	keep.Close()
}

func TestClosedNodeWithdraws(t *testing.T) {
	// A node that closes withdraws its services before its links go: every
	// node drops them well before they would expire.
	tn := newNet(t)
	a, _ := tn.add(MeshOptions{})
	b, _ := tn.add(MeshOptions{})
	c, _ := tn.add(MeshOptions{})
	tn.link(a, b)
	tn.link(b, c)
	bind(t, c, "leaving")
	waitFor(t, 2*time.Second, "leaving at A", func() bool { return has(a, "leaving", c.ID()) })
	start := time.Now()
	c.Close()
	d := waitFor(t, 2*time.Second, "leaving gone", func() bool { return !has(a, "leaving", c.ID()) && !has(b, "leaving", c.ID()) })
	t.Logf("closed node's service gone 2 hops away after %v", d)
	if d > time.Duration(expiry*float64(testInterval))/2 {
		t.Errorf("took %v: left to expire rather than withdrawn", time.Since(start))
	}
}

func TestClientAdvertisesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts MeshOptions
		cfg  func(*core.Config)
	}{
		{"option", MeshOptions{Client: true}, func(*core.Config) {}},
		{"caps", MeshOptions{}, func(c *core.Config) { c.Caps = wire.CapClient }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := newNet(t)
			srv, _ := tn.add(MeshOptions{})
			cli, _ := tn.add(tc.opts, tc.cfg)
			far, _ := tn.add(MeshOptions{})
			tn.link(srv, cli)
			tn.link(cli, far) // the client relays between srv and far
			bind(t, cli, "from-client")
			bind(t, srv, "from-server")
			bind(t, far, "from-far")
			waitFor(t, 2*time.Second, "client and far learn", func() bool {
				return has(cli, "from-server", srv.ID()) && has(cli, "from-far", far.ID()) && has(far, "from-server", srv.ID())
			})
			time.Sleep(3 * testInterval)
			for _, n := range []*core.Node{srv, cli, far} {
				if has(n, "from-client", cli.ID()) {
					t.Errorf("%v sees the client's service", n.ID())
				}
			}
		})
	}
}

func TestDialNeighbourByName(t *testing.T) {
	tn := newNet(t)
	a, _ := tn.add(MeshOptions{})
	b, _ := tn.add(MeshOptions{})
	tn.link(a, b)
	ln := bind(t, b, "echo")
	waitFor(t, 2*time.Second, "echo at A", func() bool { return has(a, "echo", b.ID()) })
	var served sync.WaitGroup
	served.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		io.Copy(c, c)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := a.Dial(ctx, core.Target{Service: "echo"})
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "hello" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	s.Close()
	served.Wait()
}

func TestMetadataTravels(t *testing.T) {
	tn := newNet(t)
	a, _ := tn.add(MeshOptions{})
	b, mb := tn.add(MeshOptions{})
	tn.link(a, b)
	md := map[string]string{"version": "1.2.3", "zone": "eu-1", "empty": ""}
	if err := mb.Register(core.Service{Name: "meta", Node: b.ID(), Port: 7, Metadata: md}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "meta at A", func() bool { return has(a, "meta", b.ID()) })
	for _, s := range a.Services() {
		if s.Name == "meta" && (s.Port != 7 || fmt.Sprint(s.Metadata) != fmt.Sprint(md)) {
			t.Errorf("got %+v, want port 7 and %v", s, md)
		}
	}
}

func TestRegisterRefuses(t *testing.T) {
	tn := newNet(t)
	n, m := tn.add(MeshOptions{})
	long := strings.Repeat("v", maxValueLen)
	tooMany := map[string]string{}
	for i := range maxMetadata + 1 {
		tooMany[fmt.Sprint("k", i)] = "v"
	}
	for _, tc := range []struct {
		name string
		svc  core.Service
		want error
	}{
		{"bad name", core.Service{Name: "a b", Node: n.ID(), Port: 1}, ErrBadService},
		{"other node", core.Service{Name: "x", Node: n.ID() + 1, Port: 1}, ErrBadService},
		{"too many keys", core.Service{Name: "x", Node: n.ID(), Port: 1, Metadata: tooMany}, ErrBadService},
		{"long key", core.Service{Name: "x", Node: n.ID(), Port: 1, Metadata: map[string]string{strings.Repeat("k", maxKeyLen+1): ""}}, ErrBadService},
		{"long value", core.Service{Name: "x", Node: n.ID(), Port: 1, Metadata: map[string]string{"k": long + "v"}}, ErrBadService},
		{"not utf-8", core.Service{Name: "x", Node: n.ID(), Port: 1, Metadata: map[string]string{"k": "\xff"}}, ErrBadService},
	} {
		if err := m.Register(tc.svc); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// Fill the node's snapshot until it no longer fits one message.
	big := map[string]string{}
	for i := range maxMetadata {
		big[fmt.Sprintf("%064d", i)] = long
	}
	var err error
	port := uint32(1)
	for ; err == nil && port < 100; port++ {
		err = m.Register(core.Service{Name: fmt.Sprint("big", port), Node: n.ID(), Port: port, Metadata: big})
	}
	if !errors.Is(err, ErrTooManyServices) {
		t.Fatalf("after %d services: %v, want ErrTooManyServices", port-1, err)
	}
	if got := len(n.Services()); got != int(port-2) {
		t.Errorf("published %d services, want the %d that fitted", got, port-2)
	}

	// Through core, a refused Register fails the Bind and binds nothing.
	tn2 := newNet(t)
	n2, _ := tn2.add(MeshOptions{})
	var bound int
	for ; bound < 1000; bound++ {
		if _, err = n2.Bind(0, fmt.Sprintf("%0255d", bound)); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrTooManyServices) {
		t.Fatalf("bind %d: %v, want ErrTooManyServices", bound, err)
	}
	if got := len(n2.Bound()); got != bound {
		t.Errorf("%d listeners after a refused bind, want %d", got, bound)
	}
	t.Logf("a node announces up to %d services with 255-byte names", bound)
}

func TestMalformedMessagesDropped(t *testing.T) {
	var logs syncBuffer
	tn := newNet(t)
	a, _ := tn.add(MeshOptions{})
	b, _ := tn.add(MeshOptions{Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})})
	tn.link(a, b)
	link := a.Links()[0].ID
	valid, err := appendSnapshot(nil, &snapshot{origin: 42, seq: 1, interval: time.Second,
		services: []core.Service{{Name: "x", Node: 42, Port: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, junk := range [][]byte{
		{},
		{9},
		{msgVersion, 7},
		valid[:len(valid)-1],
		append(slices.Clone(valid), 0),
	} {
		if err := a.Send(link, wire.KindDiscovery, junk); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Send(link, wire.KindDiscovery, valid); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "the valid message after the junk", func() bool { return has(b, "x", 42) })
	if got := strings.Count(logs.String(), "dropping discovery message"); got != 5 {
		t.Errorf("logged %d dropped messages, want 5:\n%s", got, logs.String())
	}
	if len(b.Links()) != 1 {
		t.Error("junk discovery messages cost the link")
	}
}

func TestRestartedNodeIsBelieved(t *testing.T) {
	// A node that comes back with the same id must not be ignored for
	// announcing sequence numbers below its earlier life's.
	tn := newNet(t)
	a, _ := tn.add(MeshOptions{})
	m1 := NewMesh(MeshOptions{Interval: testInterval})
	b1, err := core.New(core.Options{Config: core.DefaultConfig(), Discovery: m1, ID: 0xb})
	if err != nil {
		t.Fatal(err)
	}
	tn.nodes = append(tn.nodes, b1)
	ea, _ := tn.link(a, b1)
	for i := range 5 {
		bind(t, b1, fmt.Sprint("old-", i)) // push its sequence number up
	}
	waitFor(t, 2*time.Second, "old services at A", func() bool { return has(a, "old-4", 0xb) })
	ea.Close()
	b1.Close()
	// link counts the links before it attaches: let A see the old one go.
	waitFor(t, 2*time.Second, "A to drop the old link", func() bool { return len(a.Links()) == 0 })

	b2, err := core.New(core.Options{Config: core.DefaultConfig(), Discovery: NewMesh(MeshOptions{Interval: testInterval}), ID: 0xb})
	if err != nil {
		t.Fatal(err)
	}
	tn.nodes = append(tn.nodes, b2)
	tn.link(a, b2)
	bind(t, b2, "new")
	waitFor(t, 2*time.Second, "the restarted node's service at A", func() bool { return has(a, "new", 0xb) })
}

func TestLifecycle(t *testing.T) {
	m := NewMesh(MeshOptions{})
	if err := m.Register(core.Service{Name: "x", Node: 1, Port: 1}); err == nil {
		t.Error("Register before Start succeeded")
	}
	m.LinkUp(core.LinkInfo{ID: 1, Peer: 2})
	m.HandleControl(core.LinkInfo{ID: 1, Peer: 2}, []byte{1})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Error("second Close:", err)
	}
	if _, ok := <-m.Watch(context.Background()); ok {
		t.Error("Watch on a closed mesh delivered")
	}

	tn := newNet(t)
	n2, m2 := tn.add(MeshOptions{})
	if err := m2.Start(n2, func([]core.Service) {}); !errors.Is(err, errStarted) {
		t.Errorf("second Start: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSnapshotTooBigForPeerWarnsOnce(t *testing.T) {
	var logs syncBuffer
	tn := newNet(t)
	a, ma := tn.add(MeshOptions{Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})})
	small, _ := tn.add(MeshOptions{}, func(c *core.Config) { c.MaxFrame = 4096 })
	tn.link(a, small)
	md := map[string]string{}
	for i := range maxMetadata {
		md[fmt.Sprint("k", i)] = strings.Repeat("v", maxValueLen)
	}
	if err := ma.Register(core.Service{Name: "big", Node: a.ID(), Port: 1, Metadata: md}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * testInterval) // several refreshes
	if got := strings.Count(logs.String(), "cannot send discovery message"); got != 1 {
		t.Errorf("warned %d times, want once:\n%s", got, logs.String())
	}
	if has(small, "big", a.ID()) {
		t.Error("the small-frame peer got a snapshot larger than its frames")
	}
	if len(small.Links()) != 1 {
		t.Error("the link went down")
	}
}

// TestFailedNodeClosesDiscovery: when core.New fails (here, routing refuses
// to start), it closes the discovery it was given, so that a plugin process
// behind it does not outlive the attempt.
func TestFailedNodeClosesDiscovery(t *testing.T) {
	m := NewMesh(MeshOptions{})
	r := routing.New(routing.Options{HoldDown: -time.Second})
	if _, err := core.New(core.Options{Config: core.DefaultConfig(), Routing: r, Discovery: m}); err == nil {
		t.Fatal("core.New with routing that cannot start succeeded")
	}
	n, err := core.New(core.Options{Config: core.DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := m.Start(n, func([]core.Service) {}); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("the discovery given to a failed core.New: Start says %v, want it closed", err)
	}
}

// TestMaxOrigins: a neighbour that invents origins fills this node's table
// only up to MaxOrigins (its own origin and its neighbour's count too);
// snapshots from further new origins are dropped.
func TestMaxOrigins(t *testing.T) {
	const max = 5
	tn := newNet(t)
	a, _ := tn.add(MeshOptions{})
	b, mb := tn.add(MeshOptions{MaxOrigins: max})
	tn.link(a, b)
	link := a.Links()[0].ID
	for origin := range core.NodeID(6) {
		msg, err := appendSnapshot(nil, &snapshot{origin: 100 + origin, seq: 1, interval: time.Hour,
			services: []core.Service{{Name: fmt.Sprint("s", int(origin)), Node: 100 + origin, Port: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Send(link, wire.KindDiscovery, msg); err != nil {
			t.Fatal(err)
		}
	}
	held := func() int {
		mb.mu.Lock()
		defer mb.mu.Unlock()
		return len(mb.origins)
	}
	waitFor(t, 2*time.Second, "a full table at B", func() bool { return held() == max })
	// The later snapshots follow on the same link, in order: give them time
	// to be refused.
	time.Sleep(50 * time.Millisecond)
	if n := held(); n != max {
		t.Fatalf("B holds %d origins, want %d", n, max)
	}
	if !has(b, "s0", 100) || has(b, "s5", 105) {
		t.Errorf("first invented origin held %v (want true), last %v (want false)", has(b, "s0", 100), has(b, "s5", 105))
	}
}

// TestOriginFlood: a neighbour inventing origins, each with the largest legal
// snapshot, costs this node in proportion to what it sends. Taking a snapshot
// neither rebuilds nor publishes the union on the link's reader, so what it
// allocates does not grow with the origins held; a burst is published once;
// and the memory held is what MaxServiceBytes counts, a small multiple of the
// bytes received. (Before, batches of 15 origins took ever longer — 1.2 s,
// 3.8 s, 6.4 s, 9.5 s under -race — and the heap grew 7.5 times the bytes.)
func TestOriginFlood(t *testing.T) {
	const batches, per = 4, 15
	gate := make(chan struct{})
	release := sync.OnceFunc(func() { close(gate) })
	var mu sync.Mutex
	var published []int // the size of every view published
	publish := func(ss []core.Service) {
		mu.Lock()
		published = append(published, len(ss))
		first := len(published) == 1
		mu.Unlock()
		if first {
			<-gate
		}
	}
	publishes := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(published)
	}

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0 := ms.HeapAlloc
	m := NewMesh(MeshOptions{Interval: testInterval})
	if err := m.Start(fakeMesh{}, publish); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer release()

	// The first origin wakes the announcer, whose publish then waits at the
	// gate: from there on, what allocates is this test's HandleControl alone.
	first := bigSnapshot(t, 1000, 1)
	received := len(first)
	m.HandleControl(fakeLink, first)
	waitFor(t, 5*time.Second, "the first publish", func() bool { return len(publishes()) == 1 })
	msgs := make([][]byte, batches*per)
	for i := range msgs {
		msgs[i] = bigSnapshot(t, core.NodeID(1001+i), 1)
		received += len(msgs[i])
	}

	allocs := make([]uint64, batches)
	times := make([]time.Duration, batches)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		var ms runtime.MemStats
		for b := range batches {
			runtime.ReadMemStats(&ms)
			a0, start := ms.TotalAlloc, time.Now()
			for _, msg := range msgs[b*per : (b+1)*per] {
				m.HandleControl(fakeLink, msg)
			}
			times[b] = time.Since(start)
			runtime.ReadMemStats(&ms)
			allocs[b] = ms.TotalAlloc - a0
		}
	}()
	select {
	case <-fed:
	case <-time.After(time.Minute):
		release()
		<-fed
		t.Fatal("HandleControl waited for a publish: the link's reader stalls behind it")
	}
	msgs = nil
	t.Logf("batches of %d origins took %v and allocated %v bytes", per, times, allocs)
	for b, a := range allocs {
		if a > allocs[0]+allocs[0]/2 {
			t.Errorf("batch %d allocated %d bytes, the first %d: taking a snapshot costs more with more held", b, a, allocs[0])
		}
	}

	release()
	total := (batches*per + 1) * bigCount
	waitFor(t, 5*time.Second, "the whole flood published", func() bool { return slices.Contains(publishes(), total) })
	if p := publishes(); len(p) != 2 {
		t.Errorf("published %d views of sizes %v, want 2: the one held at the gate, then the rest of the burst at once", len(p), p)
	}

	runtime.GC()
	runtime.ReadMemStats(&ms)
	held := int(ms.HeapAlloc) - int(heap0)
	m.mu.Lock()
	counted := m.held
	m.mu.Unlock()
	t.Logf("received %d KiB; the heap grew %d KiB (x%.1f); MaxServiceBytes counts %d KiB",
		received>>10, held>>10, float64(held)/float64(received), counted>>10)
	// The allowance covers the mesh's fixed parts, this test's and noise.
	const fixed = 256 << 10
	if held > counted+fixed {
		t.Errorf("the heap grew %d KiB, more than the %d KiB MaxServiceBytes counts", held>>10, counted>>10)
	}
	if held > 4*received {
		t.Errorf("the heap grew %d KiB, %.1f times the %d KiB received", held>>10, float64(held)/float64(received), received>>10)
	}
}

// TestMaxServiceBytes: snapshots that would take the memory held for other
// nodes past MaxServiceBytes are dropped, logged and counted, and the link
// stays up; an origin refused a larger snapshot keeps the one it had, and a
// refused origin gets in once there is room.
func TestMaxServiceBytes(t *testing.T) {
	var logs syncBuffer
	tn := newNet(t)
	a, _ := tn.add(MeshOptions{})
	b, mb := tn.add(MeshOptions{MaxServiceBytes: 1, // raised to minServiceBytes
		Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})})
	tn.link(a, b)
	link := a.Links()[0].ID
	send := func(msg []byte) {
		t.Helper()
		if err := a.Send(link, wire.KindDiscovery, msg); err != nil {
			t.Fatal(err)
		}
	}
	state := func() (held int, refused uint64, seq map[core.NodeID]uint64) {
		mb.mu.Lock()
		defer mb.mu.Unlock()
		seq = map[core.NodeID]uint64{}
		for id, o := range mb.origins {
			seq[id] = o.seq
		}
		return mb.held, mb.tooBig.count, seq
	}
	big := footprint(string(bigSnapshot(t, 100, 1)), make([]core.Service, bigCount))
	fit := minServiceBytes / big // origins with the largest snapshots that fit

	for i := range fit + 2 {
		send(bigSnapshot(t, core.NodeID(100+i), 1))
	}
	waitFor(t, 5*time.Second, "two snapshots refused", func() bool { _, r, _ := state(); return r == 2 })
	waitFor(t, 2*time.Second, "the ones that fit published", func() bool { return has(b, "s000000001", core.NodeID(100+fit-1)) })
	held, _, seq := state()
	if len(seq) != fit || held > minServiceBytes {
		t.Fatalf("B holds %d origins, %d bytes; want %d origins within %d bytes", len(seq), held, fit, minServiceBytes)
	}
	if has(b, "s000000001", core.NodeID(100+fit)) {
		t.Error("a refused origin's services were published")
	}
	if got := strings.Count(logs.String(), "would take more memory than allowed"); got != 1 {
		t.Errorf("logged the refusal %d times, want once a minute:\n%s", got, logs.String())
	}

	// Origin 100 withdraws its services: room for a refused origin, which gets
	// in with its next snapshot.
	empty, err := appendSnapshot(nil, &snapshot{origin: 100, seq: 2, interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	send(empty)
	send(bigSnapshot(t, core.NodeID(100+fit), 2))
	waitFor(t, 2*time.Second, "the refused origin admitted", func() bool { return has(b, "s000000001", core.NodeID(100+fit)) })
	// Origin 100 grows back, which no longer fits: B keeps what it had.
	send(bigSnapshot(t, 100, 3))
	waitFor(t, 2*time.Second, "the third refusal", func() bool { _, r, _ := state(); return r == 3 })
	if _, _, seq := state(); seq[100] != 2 {
		t.Errorf("B holds seq %d of origin 100, want 2, the one before the refused 3", seq[100])
	}
	if len(a.Links()) != 1 || len(b.Links()) != 1 {
		t.Error("refusing snapshots cost the link")
	}
}

// TestFootprint: what footprint counts for a snapshot is at least what
// holding it takes, and not far above.
func TestFootprint(t *testing.T) {
	pairs := func(n, keyLen, valueLen int) map[string]string {
		md := map[string]string{}
		for i := range n {
			md[fmt.Sprintf("%0*d", keyLen, i)] = strings.Repeat("v", valueLen)
		}
		return md
	}
	// fill is the most services named by name with metadata md that fit a
	// message, found by bisection.
	fill := func(name func(int) string, md map[string]string) []core.Service {
		make := func(n int) []core.Service {
			ss := make([]core.Service, n)
			for i := range ss {
				ss[i] = core.Service{Name: name(i + 1), Node: 5, Port: uint32(i + 1), Metadata: md}
			}
			return ss
		}
		lo, hi := 0, maxMessage/7 // lo fits, hi+1 does not
		for lo < hi {
			mid := (lo + hi + 1) / 2
			if _, err := appendSnapshot(nil, &snapshot{origin: 5, seq: 1, interval: time.Second, services: make(mid)}); err == nil {
				lo = mid
			} else {
				hi = mid - 1
			}
		}
		return make(lo)
	}
	short := func(i int) string { return fmt.Sprintf("s%09d", i) }
	long := func(i int) string { return fmt.Sprintf("%0255d", i) }
	for _, tc := range []struct {
		name     string
		services []core.Service
	}{
		{"empty", nil},
		{"one service", []core.Service{{Name: "x", Node: 5, Port: 1}}},
		{"short names", fill(short, nil)},
		{"long names", fill(long, nil)},
		{"one small pair each", fill(short, pairs(1, 1, 0))},
		{"nine small pairs each", fill(short, pairs(9, 1, 0))},
		{"sixteen small pairs each", fill(short, pairs(maxMetadata, 1, 0))},
		{"sixteen largest pairs each", fill(short, pairs(maxMetadata, maxKeyLen, maxValueLen))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := appendSnapshot(nil, &snapshot{origin: 5, seq: 1, interval: time.Second, services: tc.services})
			if err != nil {
				t.Fatal(err)
			}
			copies := 20 + (2<<20)/len(msg) // enough that a few KiB of noise does not matter
			type kept struct {
				msg      string
				services []core.Service
			}
			// The heap is shared with whatever else the process runs, so
			// measure three times and keep the median.
			measure := func() int {
				held := make([]kept, copies)
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				heap0 := ms.HeapAlloc
				for i := range held {
					s, err := decodeSnapshot(msg)
					if err != nil {
						t.Fatal(err)
					}
					held[i] = kept{s.msg, s.services}
				}
				runtime.GC()
				runtime.ReadMemStats(&ms)
				runtime.KeepAlive(held)
				return int(ms.HeapAlloc) - int(heap0)
			}
			tries := []int{measure(), measure(), measure()}
			slices.Sort(tries)
			took := tries[1]
			// The origin record is not held here; the rest is.
			counted := copies * (footprint(string(msg), tc.services) - originBytes)
			t.Logf("%d services in %d bytes take %d bytes each, counted %d", len(tc.services), len(msg), took/copies, counted/copies)
			const noise = 64 << 10
			if took > counted+noise || counted > 2*took+noise {
				t.Errorf("%d copies of %d services in %d bytes take %d bytes, counted %d: want at least that (less %d of noise), and at most twice",
					copies, len(tc.services), len(msg), took, counted, noise)
			}
		})
	}
}

// BenchmarkTakeWhileHolding takes a changed snapshot of one origin while the
// node holds many others: its cost should not depend on how many.
func BenchmarkTakeWhileHolding(b *testing.B) {
	for _, held := range []int{10, 10000} {
		b.Run(fmt.Sprint(held, "origins"), func(b *testing.B) {
			m := NewMesh(MeshOptions{})
			if err := m.Start(fakeMesh{}, func([]core.Service) {}); err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			encode := func(origin core.NodeID, seq uint64, name string) []byte {
				ss := make([]core.Service, 20)
				for i := range ss {
					ss[i] = core.Service{Name: fmt.Sprint(name, i), Node: origin, Port: uint32(i + 1)}
				}
				msg, err := appendSnapshot(nil, &snapshot{origin: origin, seq: seq, interval: time.Hour, services: ss})
				if err != nil {
					b.Fatal(err)
				}
				return msg
			}
			for i := range held {
				m.HandleControl(fakeLink, encode(core.NodeID(100+i), 1, "held"))
			}
			// Two versions of origin 100 taking turns; each take bumps the seq.
			versions := [2][]byte{encode(100, 2, "even"), encode(100, 2, "odd")}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				msg := versions[i%2]
				binary.BigEndian.PutUint64(msg[14:], uint64(i+2))
				m.HandleControl(fakeLink, msg)
			}
		})
	}
}
