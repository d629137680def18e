package core

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core/wire"
)

// PROTOCOL.md section 5: a router forwards an OPEN with its hop limit
// decreased by one and refuses one that arrives with 0. So a hop limit of
// n crosses n routers: with 1, a dial through one router works and one
// through two is refused. forward used to refuse an OPEN arriving with 1.
func TestHopLimit(t *testing.T) {
	for _, tc := range []struct {
		limit   uint8
		routers int
		ok      bool
	}{{1, 1, true}, {1, 2, false}, {2, 2, true}} {
		cfg := testConfig()
		cfg.HopLimit = tc.limit
		var a, b *Node
		if tc.routers == 1 {
			a, _, b = line(t, cfg)
		} else {
			ra, r1r, r2r, rb := &staticRouting{}, &staticRouting{}, &staticRouting{}, &staticRouting{}
			a = newNode(t, cfg, func(o *Options) { o.Routing = ra })
			r1 := newNode(t, cfg, func(o *Options) { o.Routing = r1r })
			r2 := newNode(t, cfg, func(o *Options) { o.Routing = r2r })
			b = newNode(t, cfg, func(o *Options) { o.Routing = rb })
			ra.via = map[NodeID]NodeID{b.ID(): r1.ID()}
			r1r.via = map[NodeID]NodeID{b.ID(): r2.ID()}
			r2r.via = map[NodeID]NodeID{a.ID(): r1.ID()}
			rb.via = map[NodeID]NodeID{a.ID(): r2.ID()}
			connect(t, a, r1)
			connect(t, r1, r2)
			connect(t, r2, b)
			waitFor(t, 5*time.Second, "routes", func() bool { return len(a.Routes()) == 1 && len(r1.Routes()) == 1 })
		}
		ln, err := b.Bind(7, "")
		if err != nil {
			t.Fatal(err)
		}
		echo(t, ln)
		s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
		switch {
		case tc.ok && err != nil:
			t.Fatalf("hop limit %d, %d router(s): %v", tc.limit, tc.routers, err)
		case !tc.ok && !errors.Is(err, ErrNoRoute):
			t.Fatalf("hop limit %d, %d routers: %v, want %v", tc.limit, tc.routers, err, ErrNoRoute)
		}
		if s != nil {
			s.Close()
		}
	}
}

// The link an OPEN came in on ends (terminate from another goroutine: Close,
// a write error, a control overrun) while forward is between its two
// halves. forward used to install the upstream half first: terminate then
// aborted the downstream half before it had a circuit id, and the RESET on
// circuit 0 it sent was a protocol error at the next hop, which ended the
// router's healthy link to it, with every stream on it (and a data race on
// the id).
func TestForwardInLinkEndsMidForward(t *testing.T) {
	const far = NodeID(0x42) // beyond b: r reaches it through its routing table
	b := newNode(t, testConfig())
	rr := &staticRouting{via: map[NodeID]NodeID{far: b.ID()}}
	r := newNode(t, testConfig(), func(o *Options) { o.Routing = rr })
	connect(t, r, b)
	waitFor(t, 5*time.Second, "route to far", func() bool { return len(r.Routes()) == 1 })
	lnb, _ := b.Bind(7, "")
	victim, vpeer := openPair(t, r, b.ID(), lnb)
	go func() { // the forwarded stream, if it gets there
		for {
			s, err := lnb.AcceptStream()
			if err != nil {
				return
			}
			s.Close()
		}
	}()

	bl := onlyLink(t, b)
	r.mu.Lock()
	out := r.peers[b.ID()][0]
	r.mu.Unlock()
	outID := out.id

	// A raw upstream peer with id 1: lower than r's, so it opens odd circuits.
	c1, c2 := net.Pipe()
	go r.Attach(c1)
	go c2.Write(wire.AppendGreeting(nil, wire.Greeting{Node: 1, Caps: wire.CapClient | wire.CapRouter, MaxFrame: 64 << 10, LinkWindow: 1 << 20, StreamWindow: 256 << 10}))
	if _, err := wire.ReadGreeting(c2); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, c2)
	var in *link
	waitFor(t, 5*time.Second, "raw link up", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if ls := r.peers[1]; len(ls) > 0 {
			in = ls[0]
		}
		return in != nil
	})

	// Hold r's link to b while the OPEN comes in, so that forward stops at
	// it, and end the in link from another goroutine meanwhile.
	before := len(out.streams)
	out.mu.Lock()
	open, _ := wire.AppendOpen(nil, &wire.Open{SrcNode: 1, SrcPort: 1 << 24, DstNode: uint64(far), DstPort: 7, Window: 1 << 20, Hops: 4})
	go c2.Write(append(wire.AppendHeader(nil, wire.Header{Length: uint32(len(open)), Type: wire.TypeOpen, Circuit: 1}), open...))
	time.Sleep(100 * time.Millisecond) // forward is waiting for out
	ended := make(chan struct{})
	go func() { in.terminate(errors.New("the in link ends"), false); close(ended) }()
	time.Sleep(50 * time.Millisecond) // terminate has done what it can without out
	out.mu.Unlock()
	<-ended
	waitFor(t, 5*time.Second, "the forwarded circuit gone from r's link to b", func() bool {
		out.mu.Lock()
		defer out.mu.Unlock()
		return len(out.streams) == before
	})

	time.Sleep(500 * time.Millisecond)
	out.mu.Lock()
	closed, lerr := out.closed, out.err
	out.mu.Unlock()
	if closed {
		bl.mu.Lock()
		berr := bl.err
		bl.mu.Unlock()
		t.Fatalf("r's link %d to b died because a different link ended: r: %v; b: %v", outID, lerr, berr)
	}
	carries(t, victim, vpeer, "an unrelated stream on the r-b link")
}
