package discovery

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testInterval is the announce interval of test meshes; expiry is 3.5 of it.
const testInterval = 50 * time.Millisecond

// testNet is a set of real nodes linked by in-memory pipes.
type testNet struct {
	t      *testing.T
	nodes  []*core.Node
	meshes []*Mesh
	wg     sync.WaitGroup // Attach goroutines
}

func newNet(t *testing.T) *testNet {
	tn := &testNet{t: t}
	t.Cleanup(tn.close)
	return tn
}

// add starts a node with mesh discovery; opts.Interval defaults to testInterval.
func (tn *testNet) add(opts MeshOptions, cfg ...func(*core.Config)) (*core.Node, *Mesh) {
	tn.t.Helper()
	if opts.Interval == 0 {
		opts.Interval = testInterval
	}
	c := core.DefaultConfig()
	for _, f := range cfg {
		f(&c)
	}
	m := NewMesh(opts)
	n, err := core.New(core.Options{Config: c, Discovery: m})
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.nodes = append(tn.nodes, n)
	tn.meshes = append(tn.meshes, m)
	return n, m
}

// link joins a and b over a pipe, waits until both see the link, and returns
// the two ends (closing either kills the link).
func (tn *testNet) link(a, b *core.Node) (net.Conn, net.Conn) {
	tn.t.Helper()
	ea, eb := net.Pipe()
	ia, ib := len(a.Links()), len(b.Links())
	tn.wg.Add(2)
	go func() { defer tn.wg.Done(); a.Attach(ea) }()
	go func() { defer tn.wg.Done(); b.Attach(eb) }()
	waitFor(tn.t, 5*time.Second, "link up", func() bool { return len(a.Links()) > ia && len(b.Links()) > ib })
	return ea, eb
}

func (tn *testNet) close() {
	for _, n := range tn.nodes {
		n.Close()
	}
	tn.wg.Wait()
}

// bind binds name on n at a free port.
func bind(t *testing.T, n *core.Node, name string) *core.Listener {
	t.Helper()
	ln, err := n.Bind(0, name)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Microsecond)
	}
	return time.Since(start)
}

// has reports whether n's published view holds name on node at.
func has(n *core.Node, name string, at core.NodeID) bool {
	return slices.ContainsFunc(n.Services(), func(s core.Service) bool { return s.Name == name && s.Node == at })
}

// view is n's published view in canonical order, without metadata.
func view(n *core.Node) []core.Service {
	return canonical(n.Services())
}

func canonical(ss []core.Service) []core.Service {
	out := make([]core.Service, 0, len(ss))
	for _, s := range ss {
		if s.Name != "" {
			out = append(out, core.Service{Name: s.Name, Node: s.Node, Port: s.Port})
		}
	}
	slices.SortFunc(out, compareServices)
	return out
}

// same reports whether two canonical views hold the same services.
func same(a, b []core.Service) bool {
	return slices.EqualFunc(a, b, func(x, y core.Service) bool { return compareServices(x, y) == 0 })
}

// compareServices orders services by name, then node, then port.
func compareServices(a, b core.Service) int {
	return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Node, b.Node), cmp.Compare(a.Port, b.Port))
}

// fakeMesh is a core.Mesh with one link, to node 2, that drops what is sent.
type fakeMesh struct{}

func (fakeMesh) ID() core.NodeID                      { return 1 }
func (fakeMesh) Links() []core.LinkInfo               { return []core.LinkInfo{{ID: 7, Peer: 2}} }
func (fakeMesh) Caps() uint32                         { return wire.CapServer | wire.CapRouter | wire.CapClient }
func (fakeMesh) Routes() []core.Route                 { return nil }
func (fakeMesh) Send(uint64, wire.Kind, []byte) error { return nil }

// fakeLink is fakeMesh's link, as discovery sees it.
var fakeLink = core.LinkInfo{ID: 7, Peer: 2}

// bigCount is how many services with 10-byte names and no metadata fill a
// message.
const bigCount = (maxMessage - headerLen) / (4 + 1 + 10 + 1)

// bigSnapshot is the largest legal snapshot of origin at seq: bigCount
// services named s000000001 and on.
func bigSnapshot(t testing.TB, origin core.NodeID, seq uint64) []byte {
	t.Helper()
	ss := make([]core.Service, bigCount)
	for i := range ss {
		ss[i] = core.Service{Name: fmt.Sprintf("s%09d", i+1), Node: origin, Port: uint32(i + 1)}
	}
	msg, err := appendSnapshot(nil, &snapshot{origin: origin, seq: seq, interval: time.Hour, services: ss})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
