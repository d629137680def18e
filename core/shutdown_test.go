package core

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Shutdown delivers what a closed stream still had waiting for the peer's
// credit: Close alone would drop it with the link.
func TestShutdownDeliversQueuedBytes(t *testing.T) {
	a, b, ln := linkedPair(t)
	s, peer := openPair(t, a, b.ID(), ln)

	// Four stream windows: most of it waits for credit until the peer reads.
	msg := bytes.Repeat([]byte("0123456789abcdef"), int(4*a.cfg.StreamWindow)/16)
	wrote := make(chan error, 1)
	go func() {
		_, err := s.Write(msg)
		if err == nil {
			err = s.Close()
		}
		wrote <- err
	}()

	// The reader starts late, so the bytes are still queued when Shutdown
	// begins.
	shut := make(chan error, 1)
	go func() { shut <- a.Shutdown(ctxTimeout(t, 10*time.Second)) }()
	waitFor(t, 5*time.Second, "shutdown under way", a.isDraining)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a stream still had bytes to send", err)
	case <-time.After(50 * time.Millisecond):
	}

	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatalf("peer read after %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("peer got %d bytes, want %d (equal: %v)", len(got), len(msg), bytes.Equal(got, msg[:min(len(got), len(msg))]))
	}
	if err := <-wrote; err != nil {
		t.Fatalf("write and close: %v", err)
	}
	peer.Close()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-a.Done():
	default:
		t.Fatal("node not closed after Shutdown")
	}
}

// While it drains, a node refuses new work (its listeners, new links, new
// binds, transit streams) and its open streams carry on both ways.
func TestShutdownRefusesNewWork(t *testing.T) {
	a, r, b := line(t, testConfig()) // r routes between a and b
	lnR, err := r.Bind(7, "")
	if err != nil {
		t.Fatal(err)
	}
	lnB, err := b.Bind(7, "")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, lnR)
	echo(t, lnB)

	s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: r.ID(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	shut := make(chan error, 1)
	go func() { shut <- r.Shutdown(ctxTimeout(t, 10*time.Second)) }()
	waitFor(t, 5*time.Second, "shutdown under way", r.isDraining)

	// The stream opened before carries on.
	if err := roundTrip(s, []byte("still here")); err != nil {
		t.Fatalf("round trip on an open stream during Shutdown: %v", err)
	}
	// r's listener is closed: a new stream to it is refused.
	if _, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: r.ID(), Port: 7}); !errors.Is(err, ErrRefused) {
		t.Fatalf("dial to a draining node's port: %v, want ErrRefused", err)
	}
	if _, err := lnR.AcceptStream(); err == nil {
		t.Fatal("Accept on a draining node's listener succeeded")
	}
	// r no longer routes new streams.
	if _, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7}); !errors.Is(err, ErrReset) || !strings.Contains(err.Error(), "shutdown") {
		t.Fatalf("dial through a draining router: %v, want ErrReset saying shutdown", err)
	}
	if _, err := r.Bind(8, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Bind while draining: %v, want ErrClosed", err)
	}
	if _, err := r.ListenAndServe("tcp", "127.0.0.1:0"); !errors.Is(err, ErrClosed) {
		t.Fatalf("ListenAndServe while draining: %v, want ErrClosed", err)
	}
	addrA, err := a.ListenAndServe("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Join(ctxTimeout(t, 5*time.Second), "tcp", addrA.String()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Join while draining: %v, want ErrClosed", err)
	}
	// r's own dials still work: a handler may need one to finish.
	out, err := r.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
	if err != nil {
		t.Fatalf("dial from a draining node: %v", err)
	}
	if err := roundTrip(out, []byte("outbound")); err != nil {
		t.Fatalf("round trip on a stream a draining node opened: %v", err)
	}
	out.Close()

	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a stream open", err)
	default:
	}
	s.Close()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A stream nobody closes holds Shutdown until its context ends; then the node
// closes anyway and the stream fails.
func TestShutdownContextEnds(t *testing.T) {
	a, b, ln := linkedPair(t)
	s, peer := openPair(t, a, b.ID(), ln)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := a.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(began); d < 100*time.Millisecond {
		t.Fatalf("Shutdown returned after %v, before its context ended", d)
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Fatal("Write on a stream of a closed node succeeded")
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(peer); !errors.Is(err, ErrLinkLost) {
		t.Fatalf("peer read: %v, want ErrLinkLost", err)
	}
}

// Shutdown after Close, Close after Shutdown, and two Shutdowns at once all
// end quietly.
func TestShutdownRepeated(t *testing.T) {
	a := newNode(t, testConfig())
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown after Close: %v", err)
	}

	b, c, _ := linkedPair(t)
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- b.Shutdown(ctxTimeout(t, 5*time.Second)) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Shutdown: %v", err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
	waitFor(t, 5*time.Second, "peer sees the link go", func() bool { return !hasLinkTo(c, b.ID()) })
}

// A Joined link that drops while the node drains is not dialled again; nor
// is one that dropped just before Shutdown, whose re-dial was waiting out
// its backoff.
func TestShutdownStopsRejoin(t *testing.T) {
	for _, dropFirst := range []bool{false, true} {
		name := "drop while draining"
		if dropFirst {
			name = "drop before Shutdown"
		}
		t.Run(name, func(t *testing.T) {
			a, b, c := newNode(t, testConfig()), newNode(t, testConfig()), newNode(t, testConfig())
			r := joinViaRelay(t, a, b)
			waitFor(t, 5*time.Second, "link a-b", func() bool { return hasLinkTo(a, b.ID()) })
			connect(t, c, a)
			lnC, err := c.Bind(7, "")
			if err != nil {
				t.Fatal(err)
			}
			s, _ := openPair(t, a, c.ID(), lnC) // holds a's Shutdown

			drop := func() {
				r.cut()
				// Both ends: b may see the cut after a does.
				waitFor(t, 5*time.Second, "link a-b gone", func() bool { return !hasLinkTo(a, b.ID()) && !hasLinkTo(b, a.ID()) })
			}
			if dropFirst {
				drop() // keepJoined now waits at least 80 ms before it dials again
			}
			shut := make(chan error, 1)
			go func() { shut <- a.Shutdown(ctxTimeout(t, 10*time.Second)) }()
			waitFor(t, 5*time.Second, "shutdown under way", a.isDraining)
			if !dropFirst {
				drop()
			}
			// The first re-dial comes within 240 ms of the drop.
			for range 30 {
				if hasLinkTo(a, b.ID()) || hasLinkTo(b, a.ID()) {
					t.Fatal("a draining node joined its peer again")
				}
				time.Sleep(20 * time.Millisecond)
			}
			s.Close()
			if err := <-shut; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		})
	}
}

// Attach, like Join, adds no link to a draining node.
func TestShutdownRefusesAttach(t *testing.T) {
	a, b, ln := linkedPair(t)
	s, _ := openPair(t, a, b.ID(), ln) // holds a's Shutdown
	c := newNode(t, testConfig())

	shut := make(chan error, 1)
	go func() { shut <- a.Shutdown(ctxTimeout(t, 10*time.Second)) }()
	waitFor(t, 5*time.Second, "shutdown under way", a.isDraining)

	c1, c2 := net.Pipe()
	attached, other := make(chan error, 1), make(chan error, 1)
	go func() { attached <- a.Attach(c1) }()
	go func() { other <- c.Attach(c2) }()
	select {
	case err := <-attached:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Attach to a draining node: %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("Attach to a draining node was not refused (links to c: %v)", hasLinkTo(a, c.ID()))
	}
	<-other
	s.Close()
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A stream whose FIN the link's writer has taken, but not yet written, may
// leave link.streams (at once after Close, or when the peer's FIN comes after
// CloseWrite): Shutdown still waits for that write, rather than give it only
// the second a closing link has to drain.
func TestShutdownWaitsForTheWriter(t *testing.T) {
	for _, closeWrite := range []bool{false, true} {
		t.Run(map[bool]string{false: "Close", true: "CloseWrite then the peer's FIN"}[closeWrite], func(t *testing.T) {
			a, b := newNode(t, testConfig()), newNode(t, testConfig())
			c1, c2 := tcpConnPair(t)
			g := &gatedConn{Conn: c1, changed: make(chan struct{}), tokens: make(chan struct{}, 1)}
			attached := make(chan error, 2)
			go func() { attached <- a.Attach(g) }()
			go func() { attached <- b.Attach(c2) }()
			t.Cleanup(func() { a.Close(); b.Close(); <-attached; <-attached })
			waitFor(t, 5*time.Second, "link a-b", func() bool { return hasLinkTo(a, b.ID()) && hasLinkTo(b, a.ID()) })
			ln, err := b.Bind(7, "")
			if err != nil {
				t.Fatal(err)
			}
			s, peer := openPair(t, a, b.ID(), ln)

			// a's writer takes the bytes and blocks writing them; the FIN
			// queues behind. Then that write goes through, and the writer
			// takes the FIN and blocks writing it.
			g.stall()
			msg := []byte("the last words")
			if _, err := s.Write(msg); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "a's writer blocked", func() bool { return g.blocked() == 1 })
			if closeWrite {
				s.CloseWrite()
			} else {
				s.Close()
			}
			g.passOne()
			waitFor(t, 5*time.Second, "a's writer blocked on the FIN", func() bool { return g.passed() == 1 && g.blocked() == 1 })
			if closeWrite {
				peer.CloseWrite()
			}
			waitFor(t, 5*time.Second, "the stream gone from a's link", func() bool { return len(onlyLink(t, a).streamsNow()) == 0 })

			shut := make(chan error, 1)
			go func() { shut <- a.Shutdown(ctxTimeout(t, 20*time.Second)) }()
			time.Sleep(1500 * time.Millisecond) // longer than a closing link drains
			g.open()

			peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(peer)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("peer got %q: %v", got, err)
			}
			if err := <-shut; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		})
	}
}

func (l *link) streamsNow() map[uint32]*Stream {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.streams)
}

// tcpConnPair returns the two ends of a TCP connection on loopback.
func tcpConnPair(t testing.TB) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ln.Accept()
	if err != nil {
		c1.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c1.Close(); c2.Close() })
	return c1, c2
}

// gatedConn is a net.Conn whose Writes, while it is stalled, wait for a
// token (passOne) or for it to open, and honour the write deadline meanwhile.
// It hides the TCP connection's raw socket: every write goes through Write.
type gatedConn struct {
	net.Conn
	tokens chan struct{}

	mu       sync.Mutex
	gate     chan struct{} // non-nil while stalled; closed by open
	deadline time.Time
	changed  chan struct{} // closed and replaced when the deadline changes
	waiting  int
	through  int // writes let through by a token
}

func (c *gatedConn) stall() {
	c.mu.Lock()
	c.gate = make(chan struct{})
	c.mu.Unlock()
}

func (c *gatedConn) open() {
	c.mu.Lock()
	close(c.gate)
	c.gate = nil
	c.mu.Unlock()
}

func (c *gatedConn) passOne() { c.tokens <- struct{}{} }

func (c *gatedConn) blocked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waiting
}

func (c *gatedConn) passed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.through
}

func (c *gatedConn) Write(p []byte) (int, error) {
	for {
		c.mu.Lock()
		gate, dl, changed := c.gate, c.deadline, c.changed
		if gate == nil {
			c.mu.Unlock()
			return c.Conn.Write(p)
		}
		c.waiting++
		c.mu.Unlock()
		var timeout <-chan time.Time
		var timer *time.Timer
		if !dl.IsZero() {
			timer = time.NewTimer(time.Until(dl))
			timeout = timer.C
		}
		var err error
		token := false
		select {
		case <-gate:
		case <-changed:
		case <-c.tokens:
			token = true
		case <-timeout:
			err = os.ErrDeadlineExceeded
		}
		if timer != nil {
			timer.Stop()
		}
		c.mu.Lock()
		c.waiting--
		if token {
			c.through++
		}
		c.mu.Unlock()
		switch {
		case token:
			return c.Conn.Write(p)
		case err != nil:
			return 0, err
		}
	}
}

func (c *gatedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

func (c *gatedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}
