package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core/wire"
)

// Both ends write and neither reads, so each side's Write blocks once the
// windows and buffers are full. One end gives up and Closes, with bytes
// unread: as TCP, it resets at once (its unsent bytes wait for credit the
// peer will never grant), and the peer's blocked Write fails with ErrReset.
// It used to stay blocked: the RESET waited behind those bytes.
func TestCloseUnblocksPeerWriter(t *testing.T) {
	a, b, ln := linkedPair(t)
	s, peer := openPair(t, a, b.ID(), ln)
	chunk := make([]byte, 1<<10) // small writes: the ordinary copy path
	writeAll := func(c *Stream, res chan error) {
		deadline := time.Now().Add(10 * time.Second)
		c.SetWriteDeadline(deadline)
		for i := 0; i < 1<<16; i++ {
			if _, err := c.Write(chunk); err != nil {
				res <- err
				return
			}
		}
		res <- nil
	}
	sRes, pRes := make(chan error, 1), make(chan error, 1)
	go writeAll(s, sRes)
	go writeAll(peer, pRes)
	// Wait until both writers are blocked: windows used up both ways.
	waitFor(t, 5*time.Second, "both writers blocked", func() bool {
		s.mu.Lock()
		sb := s.sendCredit == 0 && s.sendLen() > 0
		s.mu.Unlock()
		peer.mu.Lock()
		pb := peer.sendCredit == 0 && peer.sendLen() > 0
		peer.mu.Unlock()
		return sb && pb
	})
	start := time.Now()
	s.Close()
	if err := <-sRes; err == nil {
		t.Fatal("writer on the closed stream returned nil")
	}
	select {
	case err := <-pRes:
		t.Logf("peer's Write returned after %v: %v", time.Since(start), err)
		if !errors.Is(err, ErrReset) {
			t.Fatalf("peer's Write: %v, want %v", err, ErrReset)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("3 s after Close, the peer's Write is still blocked: the RESET waits behind the closed end's unsent data, which needs credit the peer never grants")
	}
}

// The other way into the same deadlock: the closing end has read all it
// was sent, so Close is graceful (its queued bytes, then FIN), but those
// bytes wait for credit from a peer that does not read. When the peer then
// writes, its bytes arrive after Close: the stream resets at once, and the
// peer's writes fail instead of filling a window nobody empties. A bare FIN
// from the peer is no reason to reset: the closing end's bytes still go.
func TestDataAfterCloseResets(t *testing.T) {
	a, b, ln := linkedPair(t)
	for _, finOnly := range []bool{false, true} {
		s, peer := openPair(t, a, b.ID(), ln)
		wres := make(chan writeResult, 1)
		go func() {
			s.SetWriteDeadline(time.Now().Add(10 * time.Second))
			total := 0
			for range 1 << 12 { // far more than the peer's window
				n, err := s.Write(make([]byte, 1<<10))
				total += n
				if err != nil {
					wres <- writeResult{total, err}
					return
				}
			}
			wres <- writeResult{total, nil}
		}()
		waitFor(t, 5*time.Second, "the writer out of credit", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.sendCredit == 0 && s.sendLen() > 0
		})
		s.Close()
		w := <-wres
		if w.err == nil {
			t.Fatal("the blocked Write on the closed stream returned nil")
		}
		if finOnly {
			peer.CloseWrite()
			// The FIN reaches a, which must not reset: everything a wrote
			// before Close still arrives, then EOF.
			peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, err := io.Copy(io.Discard, peer)
			if err != nil || n != int64(w.n) {
				t.Fatalf("after a bare FIN the peer read %d bytes, then %v; want the %d written, then EOF", n, err, w.n)
			}
			continue
		}
		peer.SetWriteDeadline(time.Now().Add(5 * time.Second))
		var err error
		for range 1 << 12 {
			if _, err = peer.Write(make([]byte, 1<<10)); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrReset) {
			t.Fatalf("the peer's Writes to a closed stream ended with %v, want %v", err, ErrReset)
		}
	}
}

// A reply written just before Close goes out whole when the peer's credit
// covers it, even if Close leaves a request unread: only bytes that wait for
// credit are dropped (TestCloseUnblocksPeerWriter). Over a pipe every Write
// is queued for the writer, so the reply is still queued at Close.
func TestCloseDeliversCoveredReply(t *testing.T) {
	a, b, ln := pipePair(t)
	s, peer := openPair(t, a, b.ID(), ln)
	if _, err := s.Write([]byte("request, never read")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the request at the peer", func() bool {
		peer.mu.Lock()
		defer peer.mu.Unlock()
		return peer.recvLen() > 0
	})
	reply := make([]byte, 100<<10) // within the 256 KiB window
	for i := range reply {
		reply[i] = byte(i)
	}
	if _, err := peer.Write(reply); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("read %d of the %d-byte reply, then %v; want all of it, then EOF", len(got), len(reply), err)
	}
}

// A router holds bytes for a circuit whose far end does not read. When the
// far end closes, the router drops them, and must give their link credit
// back to the sender's link. It used to keep it: after a few such circuits
// the sender's link to the router had no credit left, and no stream at all
// could send on it.
func TestRelayedCircuitDeathReturnsCredit(t *testing.T) {
	cfg := testConfig()
	cfg.StreamWindow, cfg.MaxStreamWindow, cfg.LinkWindow = 16<<10, 16<<10, 64<<10
	a, r, b := line(t, cfg)
	_ = r
	ln, _ := b.Bind(7, "")
	al := onlyLink(t, a)
	credit := func() int64 { al.mu.Lock(); defer al.mu.Unlock(); return al.sendCredit }
	t.Logf("a's link credit toward r at start: %d", credit())
	for i := 0; i < 6; i++ {
		s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
		if err != nil {
			t.Fatalf("cycle %d: dial: %v", i, err)
		}
		peer, err := ln.AcceptStream()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.SetWriteDeadline(time.Now().Add(5 * time.Second))
			for k := 0; k < 64; k++ {
				if _, err := s.Write(make([]byte, 1<<10)); err != nil {
					return
				}
			}
		}()
		// Let the far end's window and the router's queue fill.
		time.Sleep(100 * time.Millisecond)
		peer.Close()
		<-done
		s.Close()
		time.Sleep(50 * time.Millisecond)
		t.Logf("cycle %d: a's link credit toward r: %d", i, credit())
	}
	s, peer := openPair(t, a, b.ID(), ln)
	carries(t, s, peer, fmt.Sprintf("a fresh stream through the router (a's link credit toward r: %d)", credit()))
}

// terminate gives the writer drainTimeout (1 s) to flush its last control
// frames (the GOAWAY). flush used to replace that deadline with
// WriteTimeout, so a Node.Close whose peer had stopped reading waited the
// whole WriteTimeout.
func TestCloseDrainTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.WriteTimeout = 4 * time.Second
	n, err := New(Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := net.Pipe()
	defer c2.Close()
	attached := make(chan error, 1)
	go func() { attached <- n.Attach(c1) }()
	go c2.Write(wire.AppendGreeting(nil, wire.Greeting{Node: 1, Caps: wire.CapClient, MaxFrame: 64 << 10, LinkWindow: 1 << 20, StreamWindow: 256 << 10}))
	if _, err := wire.ReadGreeting(c2); err != nil {
		t.Fatal(err)
	}
	// Read the node's first PING, then stop reading, like a hung peer.
	if _, err := io.ReadFull(c2, make([]byte, wire.HeaderSize+8)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	n.Close()
	d := time.Since(start)
	t.Logf("Node.Close took %v (drainTimeout %v, WriteTimeout %v)", d, drainTimeout, cfg.WriteTimeout)
	<-attached
	if d > drainTimeout+500*time.Millisecond {
		t.Fatalf("Node.Close took %v, want about drainTimeout (%v)", d, drainTimeout)
	}
}

// Read(nil) with nothing buffered returns (0, nil) at once, as
// net.TCPConn's does; it used to wait for data.
func TestZeroLengthRead(t *testing.T) {
	a, b, ln := linkedPair(t)
	s, _ := openPair(t, a, b.ID(), ln)
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		s.Close()
		t.Fatalf("Read of 0 bytes still blocked after 1 s (returned after Close: %v)", <-done)
	}
}

// After Close, the calls that change a stream fail with net.ErrClosed, as on
// a net.TCPConn, rather than succeed silently. CloseWrite twice is fine.
func TestCallsAfterCloseFail(t *testing.T) {
	a, b, ln := linkedPair(t)
	s, _ := openPair(t, a, b.ID(), ln)
	if err := s.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatalf("second CloseWrite: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	deadline := time.Now().Add(time.Minute)
	for name, call := range map[string]func() error{
		"Close":            s.Close,
		"CloseWrite":       s.CloseWrite,
		"SetDeadline":      func() error { return s.SetDeadline(deadline) },
		"SetReadDeadline":  func() error { return s.SetReadDeadline(deadline) },
		"SetWriteDeadline": func() error { return s.SetWriteDeadline(deadline) },
	} {
		err := call()
		var op *net.OpError
		if !errors.Is(err, net.ErrClosed) || !errors.As(err, &op) {
			t.Errorf("%s after Close: %v, want a *net.OpError wrapping net.ErrClosed", name, err)
		}
	}
}

// A second Listener.Close fails with net.ErrClosed, as on a net.TCPListener.
func TestListenerCloseTwice(t *testing.T) {
	n := newNode(t, testConfig())
	ln, err := n.Bind(7, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var op *net.OpError
	if err := ln.Close(); !errors.Is(err, net.ErrClosed) || !errors.As(err, &op) {
		t.Fatalf("second Close: %v, want a *net.OpError wrapping net.ErrClosed", err)
	}
}

// Join and Connect on a closed node fail with ErrClosed, as Bind and
// ListenAndServe do, not with the transport's "operation was canceled".
func TestJoinAfterCloseFailsWithErrClosed(t *testing.T) {
	a := newNode(t, testConfig())
	addr, err := a.ListenAndServe("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := newNode(t, testConfig())
	b.Close()
	if err := b.Join(context.Background(), "tcp", addr.String()); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close: %v, want ErrClosed", err)
	}
	if err := b.Connect(context.Background(), "tcp", addr.String()); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Close: %v, want ErrClosed", err)
	}
}

// Attach on a closed node fails with ErrClosed, and closes its connection
// as a failed Attach does, without greeting the peer first.
func TestAttachAfterCloseFailsWithErrClosed(t *testing.T) {
	n := newNode(t, testConfig())
	n.Close()
	c1, c2 := net.Pipe()
	defer c2.Close()
	if err := n.Attach(c1); !errors.Is(err, ErrClosed) {
		t.Errorf("Attach after Close: %v, want ErrClosed", err)
	}
	if _, err := c1.Write([]byte{0}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Attach after Close left its connection open: Write %v", err)
	}
}
