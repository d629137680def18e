package core

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

// staticRouting routes each destination through a fixed neighbour: the
// smallest real Routing, enough to test forwarding without a routing protocol.
type staticRouting struct {
	via     map[NodeID]NodeID // destination -> neighbour
	mu      sync.Mutex
	m       Mesh
	publish func([]Route)
}

func (r *staticRouting) Start(m Mesh, publish func([]Route)) error {
	r.m, r.publish = m, publish
	return nil
}

func (r *staticRouting) update() {
	r.mu.Lock()
	defer r.mu.Unlock()
	var rs []Route
	for _, l := range r.m.Links() {
		for dst, hop := range r.via {
			if l.Peer == hop {
				rs = append(rs, Route{Dst: dst, Link: l.ID, NextHop: hop, Metric: 2})
			}
		}
	}
	r.publish(rs)
}

func (r *staticRouting) LinkUp(LinkInfo)                { go r.update() }
func (r *staticRouting) LinkDown(LinkInfo)              { go r.update() }
func (r *staticRouting) HandleControl(LinkInfo, []byte) {}
func (r *staticRouting) Close() error                   { return nil }

// line builds a - r - b with a and b routed through r.
func line(t *testing.T, cfg Config) (a, r, b *Node) {
	ra, rb := &staticRouting{}, &staticRouting{}
	a = newNode(t, cfg, func(o *Options) { o.Routing = ra })
	b = newNode(t, cfg, func(o *Options) { o.Routing = rb })
	r = newNode(t, cfg)
	ra.via = map[NodeID]NodeID{b.ID(): r.ID()}
	rb.via = map[NodeID]NodeID{a.ID(): r.ID()}
	connect(t, r, a)
	connect(t, r, b)
	waitFor(t, 5*time.Second, "routes", func() bool { return len(a.Routes()) == 1 && len(b.Routes()) == 1 })
	return a, r, b
}

func TestForwardedEcho(t *testing.T) {
	a, r, b := line(t, testConfig())
	ln, _ := b.Bind(7, "echo")
	echo(t, ln)
	s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.RemoteAddr().(Addr); got.Node != b.ID() || got.Port != 7 {
		t.Fatalf("remote address %v, want %v:7", got, b.ID())
	}
	msg := make([]byte, 8<<20)
	rand.Read(msg)
	go func() { s.Write(msg); s.CloseWrite() }()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through a router: %d of %d bytes, err %v", len(got), len(msg), err)
	}
	s.Close()
	waitFor(t, 2*time.Second, "router frees its circuits", func() bool {
		for _, l := range r.Links() {
			if l.Streams != 0 {
				return false
			}
		}
		return true
	})
}

// TestForwardBackpressure: a far end that does not read pushes back through
// the router: the router holds at most one window per circuit, and the sender
// blocks.
func TestForwardBackpressure(t *testing.T) {
	a, r, b := line(t, testConfig())
	ln, _ := b.Bind(7, "")
	s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	ln.AcceptStream() // never read
	s.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
	n, err := s.Write(make([]byte, 64<<20))
	if !errors.Is(err, errDeadline()) {
		t.Fatalf("write to a stalled far end: n=%d err=%v, want a deadline", n, err)
	}
	cfg := testConfig()
	var held int64
	for _, l := range r.Links() {
		held += l.Buffered
	}
	// What may be in flight: the far end's window (it never read, so it never
	// grew), the router's window for the circuit (which auto-tunes, up to
	// MaxStreamWindow, while bytes leave it quickly) and the sender's buffer.
	// Nothing like the 64 MiB written.
	limit := int64(cfg.StreamWindow) + int64(cfg.MaxStreamWindow) + int64(cfg.SendBuffer)
	t.Logf("wrote %d bytes before blocking; the router holds %d", n, held)
	if int64(n) > limit || held > int64(cfg.MaxStreamWindow) {
		t.Fatalf("wrote %d (limit %d), router holds %d (limit %d)", n, limit, held, cfg.MaxStreamWindow)
	}
	s.Close()
}

// TestForwardRouterLinkDies: when a link on the path dies, both ends fail.
func TestForwardRouterLinkDies(t *testing.T) {
	a, r, b := line(t, testConfig())
	ln, _ := b.Bind(7, "")
	s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	far, _ := ln.AcceptStream()
	errs := make(chan error, 2)
	go func() { _, err := s.Read(make([]byte, 1)); errs <- err }()
	go func() { _, err := far.Read(make([]byte, 1)); errs <- err }()
	r.Close()
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrLinkLost) {
				t.Fatalf("read on a broken path: %v, want ErrLinkLost", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("an end of the circuit still blocked 3 s after the router died")
		}
	}
}

func TestForwardRefusals(t *testing.T) {
	cfg := testConfig()
	a, _, b := line(t, cfg)
	ctx := ctxTimeout(t, 5*time.Second)
	if _, err := a.Dial(ctx, Target{Node: b.ID(), Port: 9}); !errors.Is(err, ErrRefused) {
		t.Fatalf("unbound port through a router: %v, want ErrRefused", err)
	}

	// A client-only node in the middle does not forward.
	client := cfg
	client.Caps = 0
	ra := &staticRouting{}
	x := newNode(t, cfg, func(o *Options) { o.Routing = ra })
	c := newNode(t, client)
	y := newNode(t, cfg)
	ra.via = map[NodeID]NodeID{y.ID(): c.ID()}
	connect(t, c, x)
	connect(t, c, y)
	waitFor(t, 5*time.Second, "route", func() bool { return len(x.Routes()) == 1 })
	y.Bind(7, "")
	if _, err := x.Dial(ctx, Target{Node: y.ID(), Port: 7}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("dial through a client: %v, want ErrNotAllowed", err)
	}
}

// TestForwardCloseRightAfterWrite: the sender writes and closes at once (FIN,
// then RESET); the router delivers every byte before the reset.
func TestForwardCloseRightAfterWrite(t *testing.T) {
	a, _, b := line(t, testConfig())
	ln, _ := b.Bind(7, "")
	for i := range 20 {
		s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			got []byte
			err error
		}
		read := make(chan result, 1)
		go func() {
			far, err := ln.AcceptStream()
			if err != nil {
				read <- result{nil, err}
				return
			}
			got, err := io.ReadAll(far)
			far.Close()
			read <- result{got, err}
		}()
		msg := make([]byte, 1<<20)
		rand.Read(msg)
		s.Write(msg)
		s.Close()
		r := <-read
		if r.err != nil || !bytes.Equal(r.got, msg) {
			t.Fatalf("round %d: far end read %d of %d bytes, err %v", i, len(r.got), len(msg), r.err)
		}
	}
}
