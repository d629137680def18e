package sdktest

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
)

// Routing runs the conformance suite on the routing implementations newImpl
// makes: start and close, bad input, a link that goes down takes its routes
// with it, routes learnt through a neighbour (on a line of three nodes whose
// messages a Net carries), and no table published after Close.
func Routing(t *testing.T, newImpl func() core.Routing) {
	t.Helper()
	t.Run("StartClose", func(t *testing.T) {
		n := NewNet()
		defer n.Close()
		n.Add(t, newImpl())
	})
	t.Run("BadInputDoesNotPanic", func(t *testing.T) {
		n := NewNet()
		defer n.Close()
		a := n.Add(t, newImpl())
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic on bad input: %v", r)
				}
			}()
			a.Impl.LinkDown(core.LinkInfo{ID: 4242})
			a.Impl.HandleControl(core.LinkInfo{}, nil)
			a.Impl.HandleControl(core.LinkInfo{ID: 99, Peer: 5}, []byte{1, 2, 3})
			rng := rand.New(rand.NewPCG(3, 4))
			for range 200 {
				b := make([]byte, rng.IntN(600))
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				a.Impl.HandleControl(core.LinkInfo{ID: 99, Peer: 5}, b)
			}
		}()
	})
	t.Run("LinkDownWithdraws", func(t *testing.T) {
		n := NewNet()
		defer n.Close()
		a, b := n.Add(t, newImpl()), n.Add(t, newImpl())
		la, _ := n.Connect(a, b)
		time.Sleep(100 * time.Millisecond)
		n.Disconnect(a, b)
		a.waitFor(t, "no route through the link that went down", func(rs []core.Route) bool {
			for _, r := range rs {
				if r.Link == la {
					return false
				}
			}
			return true
		})
	})
	t.Run("LearnsThroughANeighbour", func(t *testing.T) {
		n := NewNet()
		defer n.Close()
		a, b, c := n.Add(t, newImpl()), n.Add(t, newImpl()), n.Add(t, newImpl())
		ab, _ := n.Connect(a, b)
		n.Connect(b, c)
		a.waitFor(t, "a route to c through b", func(rs []core.Route) bool {
			for _, r := range rs {
				if r.Dst == c.Mesh.ID() && r.Link == ab && r.NextHop == b.Mesh.ID() {
					return true
				}
			}
			return false
		})
	})
	t.Run("NoPublishAfterClose", func(t *testing.T) {
		n := NewNet()
		defer n.Close()
		a, b := n.Add(t, newImpl()), n.Add(t, newImpl())
		n.Connect(a, b)
		time.Sleep(100 * time.Millisecond)
		a.close(t)
		calls := a.calls()
		time.Sleep(200 * time.Millisecond)
		if got := a.calls(); got != calls {
			t.Errorf("publish called %d times after Close returned", got-calls)
		}
	})
}

// Net is a set of routing implementations, each on its own Mesh, whose
// control messages it carries between the links it makes.
type Net struct {
	mu     sync.Mutex
	nextID uint64
	links  map[*NetNode]map[*NetNode]uint64
	wg     sync.WaitGroup
	done   chan struct{}
}

// NetNode is one implementation on a Net and the tables it published.
type NetNode struct {
	Mesh  *Mesh
	Impl  core.Routing
	net   *Net
	inbox chan delivery

	mu      sync.Mutex
	last    []core.Route
	n       int
	changed chan struct{}
	closed  bool
}

type delivery struct {
	from core.LinkInfo
	body []byte
}

// NewNet returns an empty Net.
func NewNet() *Net { return &Net{links: map[*NetNode]map[*NetNode]uint64{}, done: make(chan struct{})} }

// Add starts impl on a new Mesh of the Net; Close closes it.
func (n *Net) Add(t *testing.T, impl core.Routing) *NetNode {
	t.Helper()
	nn := &NetNode{Mesh: NewMesh(), Impl: impl, net: n, inbox: make(chan delivery, 1024), changed: make(chan struct{})}
	n.mu.Lock()
	n.links[nn] = map[*NetNode]uint64{}
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			select {
			case <-n.done:
				return
			case d := <-nn.inbox:
				nn.Impl.HandleControl(d.from, d.body)
			}
		}
	}()
	if err := impl.Start(nn.Mesh, nn.publish); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { nn.close(t) })
	return nn
}

// Connect links a and b and tells both; it returns each side's link id.
func (n *Net) Connect(a, b *NetNode) (uint64, uint64) {
	n.mu.Lock()
	n.nextID += 2
	la, lb := n.nextID-1, n.nextID
	n.links[a][b], n.links[b][a] = la, lb
	n.mu.Unlock()
	ia := core.LinkInfo{ID: la, Peer: b.Mesh.ID(), Network: "pipe", Caps: b.Mesh.Caps()}
	ib := core.LinkInfo{ID: lb, Peer: a.Mesh.ID(), Network: "pipe", Caps: a.Mesh.Caps()}
	a.Mesh.AddLink(ia)
	b.Mesh.AddLink(ib)
	a.Mesh.mu.Lock()
	a.Mesh.deliver = n.deliverFrom(a)
	a.Mesh.mu.Unlock()
	b.Mesh.mu.Lock()
	b.Mesh.deliver = n.deliverFrom(b)
	b.Mesh.mu.Unlock()
	a.Impl.LinkUp(ia)
	b.Impl.LinkUp(ib)
	return la, lb
}

// Disconnect takes the link between a and b down on both sides.
func (n *Net) Disconnect(a, b *NetNode) {
	n.mu.Lock()
	la, lb := n.links[a][b], n.links[b][a]
	delete(n.links[a], b)
	delete(n.links[b], a)
	n.mu.Unlock()
	a.Mesh.RemoveLink(la)
	b.Mesh.RemoveLink(lb)
	a.Impl.LinkDown(core.LinkInfo{ID: la, Peer: b.Mesh.ID(), Network: "pipe"})
	b.Impl.LinkDown(core.LinkInfo{ID: lb, Peer: a.Mesh.ID(), Network: "pipe"})
}

// deliverFrom carries a routing message sent by src to the peer on its link;
// a full inbox drops it, as a congested link might.
func (n *Net) deliverFrom(src *NetNode) func(Sent) {
	return func(s Sent) {
		if s.Kind != wire.KindRouting {
			return
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		for dst, id := range n.links[src] {
			if id != s.Link {
				continue
			}
			from := core.LinkInfo{ID: n.links[dst][src], Peer: src.Mesh.ID(), Network: "pipe", Caps: src.Mesh.Caps()}
			select {
			case dst.inbox <- delivery{from, s.Body}:
			default:
			}
		}
	}
}

// Close stops carrying messages. The nodes are closed by their tests'
// cleanups.
func (n *Net) Close() {
	close(n.done)
	n.wg.Wait()
}

func (nn *NetNode) publish(rs []core.Route) {
	nn.mu.Lock()
	nn.last, nn.n = rs, nn.n+1
	close(nn.changed)
	nn.changed = make(chan struct{})
	nn.mu.Unlock()
}

func (nn *NetNode) calls() int {
	nn.mu.Lock()
	defer nn.mu.Unlock()
	return nn.n
}

func (nn *NetNode) waitFor(t *testing.T, what string, ok func([]core.Route) bool) {
	t.Helper()
	deadline := time.NewTimer(PublishTimeout)
	defer deadline.Stop()
	for {
		nn.mu.Lock()
		last, ch := nn.last, nn.changed
		nn.mu.Unlock()
		if ok(last) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("no table with %s within %v; last: %v", what, PublishTimeout, last)
		}
	}
}

func (nn *NetNode) close(t *testing.T) {
	nn.mu.Lock()
	if nn.closed {
		nn.mu.Unlock()
		return
	}
	nn.closed = true
	nn.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- nn.Impl.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(CloseTimeout):
		t.Errorf("Close did not return within %v", CloseTimeout)
	}
}
