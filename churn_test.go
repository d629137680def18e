package astranet

import (
	"fmt"
	"net"
	"slices"
	"testing"
	"time"
)

// acceptAll closes every stream l accepts, until l closes.
func acceptAll(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// A node that joins a mesh and dials a service by name at once learns the
// service and the route to its node from the same neighbour, in no set
// order. The dial used to take the name as soon as discovery had it and fail
// with ErrNoRoute if routing had not published the route yet.
func TestDialByNameRightAfterJoin(t *testing.T) {
	hub := New()
	t.Cleanup(func() { hub.Close() })
	addr := fmt.Sprintf("join-dial-%d", pipeSeq.Add(1))
	if _, err := hub.(*node).ListenAddr("pipe", addr); err != nil {
		t.Fatal(err)
	}
	b := New()
	t.Cleanup(func() { b.Close() })
	if err := b.Join("pipe", addr); err != nil {
		t.Fatal(err)
	}
	l, err := b.Bind("", "echo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go acceptAll(l)
	for i := range 10 {
		a := New()
		if err := a.Join("pipe", addr); err != nil {
			t.Fatal(err)
		}
		c, err := a.DialTimeout("", "echo", 5*time.Second)
		a.Close()
		if err != nil {
			t.Fatalf("dial %d right after joining: %v", i, err)
		}
		c.Close()
	}
}

// A - H - B1, H - B2, both B serving "echo". When B1's link dies, routing
// withdraws the route to B1 at once, but A's discovery keeps B1's instance
// until it expires (3.5 intervals). A dial by name must take the instance it
// can reach rather than fail with ErrNoRoute on the one it cannot.
func TestDialByNameSkipsUnreachableInstance(t *testing.T) {
	m := newMesh(t, 4) // A, H, B1, B2
	a, b1 := m.nodes[0], m.nodes[2]
	m.link(0, 1, "attach")
	m.link(1, 2, "attach")
	m.link(1, 3, "attach")
	m.converge(5 * time.Second)
	for i := 2; i <= 3; i++ {
		l, err := m.nodes[i].Bind("", "echo")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go acceptAll(l)
	}
	instances := func() int { return len(a.ServiceMap().Lookup("echo")) }
	deadline := time.Now().Add(5 * time.Second)
	for instances() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("A sees %d instances of echo, want 2", instances())
		}
		time.Sleep(5 * time.Millisecond)
	}

	m.cuts[[2]int{1, 2}]()
	routed := func() bool {
		return slices.ContainsFunc(a.Routes(), func(r ServiceId) bool { return r.Host == b1.ID() })
	}
	for routed() {
		if time.Now().After(deadline) {
			t.Fatal("A keeps its route to the cut node")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if instances() != 2 {
		t.Skip("discovery dropped the cut node's instance already; nothing to check")
	}
	for i := range 20 {
		c, err := a.DialTimeout("", "echo", 2*time.Second)
		if err != nil {
			t.Fatalf("dial %d with the cut node's instance still listed: %v", i, err)
		}
		c.Close()
	}
}
