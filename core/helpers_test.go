package core

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

func testConfig() Config {
	c := DefaultConfig()
	return c
}

func newNode(t testing.TB, cfg Config, opts ...func(*Options)) *Node {
	t.Helper()
	o := Options{Config: cfg, Transports: map[string]Transport{"tcp": tcpTransport{}}}
	for _, f := range opts {
		f(&o)
	}
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// tcpTransport is the smallest Transport: plain TCP on loopback.
type tcpTransport struct{}

func (tcpTransport) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func (tcpTransport) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, network, addr)
}

// connect joins b to a over TCP on loopback and waits until both see the link.
func connect(t testing.TB, a, b *Node) {
	t.Helper()
	addr, err := a.ListenAndServe("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Join(context.Background(), "tcp", addr.String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "link up", func() bool { return hasLinkTo(a, b.ID()) && hasLinkTo(b, a.ID()) })
}

// linkedPair links two nodes over TCP; b listens on port 7.
func linkedPair(t testing.TB) (a, b *Node, ln *Listener) {
	t.Helper()
	a, b = newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	ln, err := b.Bind(7, "")
	if err != nil {
		t.Fatal(err)
	}
	return a, b, ln
}

// hasLinkTo reports whether n has a link to peer. (A node that already has
// other links must not count as linked to a new peer before it is.)
func hasLinkTo(n *Node, peer NodeID) bool {
	for _, l := range n.Links() {
		if l.Peer == peer {
			return true
		}
	}
	return false
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// echo accepts streams on ln and echoes each until EOF, in a goroutine per
// stream (the test's, not the library's). It stops when ln closes.
func echo(t testing.TB, ln *Listener) {
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s, err := ln.AcceptStream()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(s, s)
				s.Close()
			}()
		}
	}()
}

// openPair dials port 7 of node to from a and accepts the stream on ln. Both
// ends close when the test ends.
func openPair(t testing.TB, a *Node, to NodeID, ln *Listener) (s, peer *Stream) {
	t.Helper()
	s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: to, Port: ln.addr.Port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	peer, err = ln.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return s, peer
}

// pipePair is linkedPair over a net.Pipe: a link with no raw socket, so
// every Write is copied into the send queue and sent by the writer.
func pipePair(t testing.TB) (a, b *Node, ln *Listener) {
	t.Helper()
	a, b = newNode(t, testConfig()), newNode(t, testConfig())
	c1, c2 := net.Pipe()
	go a.Attach(c1)
	go b.Attach(c2)
	waitFor(t, 5*time.Second, "the pipe link", func() bool { return hasLinkTo(a, b.ID()) })
	ln, err := b.Bind(7, "")
	if err != nil {
		t.Fatal(err)
	}
	return a, b, ln
}

// carries fails the test unless a few bytes written on s reach peer.
func carries(t testing.TB, s, peer net.Conn, what string) {
	t.Helper()
	msg := []byte("carried")
	if _, err := s.Write(msg); err != nil {
		t.Fatalf("%s: write: %v", what, err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer peer.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(peer, make([]byte, len(msg))); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// onlyLink returns n's link when it has exactly one.
func onlyLink(t testing.TB, n *Node) *link {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.links) != 1 {
		t.Fatalf("%d links, want 1", len(n.links))
	}
	for _, l := range n.links {
		return l
	}
	return nil
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip writes msg on s and reads it back.
func roundTrip(s net.Conn, msg []byte) error {
	if _, err := s.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(s, buf)
	return err
}

// relay forwards bytes between two TCP connections until told to go silent
// (it then swallows everything, like a dead network path) or to cut.
type relay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	silent bool
	gate   chan struct{} // non-nil: the forward direction waits for it to close
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newRelay(t testing.TB, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() { ln.Close(); r.cut(); r.wg.Wait() })
	return r
}

// joinViaRelay makes b listen and a join it through a relay, which it returns.
func joinViaRelay(t testing.TB, a, b *Node) *relay {
	t.Helper()
	addr, err := b.ListenAndServe("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := newRelay(t, addr.String())
	if err := a.Join(context.Background(), "tcp", r.addr()); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		d, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, d)
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pump(c, d, false)
		go r.pump(d, c, true)
	}
}

// pump copies src to dst. In the forward direction (towards the target) it
// stops reading while the relay is paused.
func (r *relay) pump(dst, src net.Conn, forward bool) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		if forward {
			r.mu.Lock()
			gate := r.gate
			r.mu.Unlock()
			if gate != nil {
				<-gate
			}
		}
		n, err := src.Read(buf)
		if err != nil {
			dst.Close()
			return
		}
		r.mu.Lock()
		silent := r.silent
		r.mu.Unlock()
		if !silent {
			if _, err := dst.Write(buf[:n]); err != nil {
				src.Close()
				return
			}
		}
	}
}

func (r *relay) goSilent() {
	r.mu.Lock()
	r.silent = true
	r.mu.Unlock()
}

// pause stops reading towards the target, so that the dialler's socket
// fills; resume reads on.
func (r *relay) pause() {
	r.mu.Lock()
	if r.gate == nil {
		r.gate = make(chan struct{})
	}
	r.mu.Unlock()
}

func (r *relay) resume() {
	r.mu.Lock()
	if r.gate != nil {
		close(r.gate)
		r.gate = nil
	}
	r.mu.Unlock()
}

// cut closes every connection the relay carries.
func (r *relay) cut() {
	r.resume()
	r.mu.Lock()
	cs := r.conns
	r.conns = nil
	r.silent = false
	r.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

func errDeadline() error { return os.ErrDeadlineExceeded }
