package core

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestEchoLarge(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	ln, _ := b.Bind(7, "echo")
	echo(t, ln)
	s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 8<<20)
	rand.Read(msg)
	go func() {
		s.Write(msg)
		s.CloseWrite()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes: got %d bytes, equal=%v, err %v", len(msg), len(got), bytes.Equal(got, msg), err)
	}
	s.Close()
}

func TestHalfClose(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	ln, _ := b.Bind(7, "")
	ctx := ctxTimeout(t, 5*time.Second)
	s, err := a.Dial(ctx, Target{Node: b.ID(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("question"))
	s.CloseWrite()
	got, err := io.ReadAll(peer)
	if err != nil || string(got) != "question" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	// The other direction still works after the half-close.
	if _, err := peer.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	got, err = io.ReadAll(s)
	if err != nil || string(got) != "answer" {
		t.Fatalf("dialler read %q, %v", got, err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, ErrWriteClosed) {
		t.Fatalf("write after CloseWrite: %v, want ErrWriteClosed", err)
	}
	s.Close()
	waitFor(t, time.Second, "circuits freed", func() bool { return a.Links()[0].Streams == 0 && b.Links()[0].Streams == 0 })
}

// TestCloseResetsWriter: closing a stream whose peer still writes makes the
// peer's writes fail instead of filling a buffer nobody reads.
func TestCloseResetsWriter(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	ln, _ := b.Bind(7, "")
	s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := ln.AcceptStream()
	s.Close()
	peer.SetWriteDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64<<10)
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		_, werr = peer.Write(buf)
	}
	if !errors.Is(werr, ErrReset) {
		t.Fatalf("peer write after our Close: %v, want ErrReset", werr)
	}
	if _, err := io.ReadAll(peer); err != nil {
		t.Fatalf("peer read after our Close: %v, want EOF", err)
	}
	peer.Close()
}

func TestDeadlines(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	ln, _ := b.Bind(7, "")
	s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	ln.AcceptStream()
	s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err = s.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want deadline exceeded", err)
	}
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read error %v is not a net.Error with Timeout()", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("deadline fired after %v", d)
	}
	// The peer never reads: the write fills the window, then times out.
	s.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	big := make([]byte, 8<<20)
	n, err := s.Write(big)
	if !errors.Is(err, os.ErrDeadlineExceeded) || n == len(big) {
		t.Fatalf("write: n=%d err=%v, want a short write and deadline exceeded", n, err)
	}
	s.Close()
}

// TestSlowReadersIsolated is issue 2's isolation test: 100 streams whose
// readers never read, writers pushing 8 MiB each; a fresh stream still echoes
// within a second and the receiver's buffered bytes stay under its link window.
func TestSlowReadersIsolated(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	sink, _ := b.Bind(7, "")
	ln, _ := b.Bind(8, "")
	echo(t, ln)
	ctx := ctxTimeout(t, 10*time.Second)

	const slow = 100
	var wg sync.WaitGroup
	var streams []*Stream
	for range slow {
		s, err := a.Dial(ctx, Target{Node: b.ID(), Port: 7})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.AcceptStream(); err != nil { // accepted, never read
			t.Fatal(err)
		}
		streams = append(streams, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Write(make([]byte, 8<<20)) // blocks once the window is full; Close ends it
		}()
	}
	cfg := b.Config()
	full := int64(slow) * int64(cfg.StreamWindow)
	waitFor(t, 10*time.Second, "slow streams fill their windows", func() bool { return b.Links()[0].Buffered >= full })

	start := time.Now()
	s, err := a.Dial(ctx, Target{Node: b.ID(), Port: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(s, []byte("still here?")); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	buffered := b.Links()[0].Buffered
	t.Logf("fresh echo beside %d stalled streams: %v; receiver buffers %d bytes (link window %d)", slow, elapsed, buffered, cfg.LinkWindow)
	if elapsed > time.Second {
		t.Errorf("fresh echo took %v, want under 1 s", elapsed)
	}
	if buffered > int64(cfg.LinkWindow) || buffered > full {
		t.Errorf("buffered %d bytes: over the link window %d or the %d stalled windows", buffered, cfg.LinkWindow, full)
	}
	s.Close()
	for _, s := range streams {
		s.Close()
	}
	wg.Wait()
}

// TestNoGoroutinePerStream opens 10,000 streams and checks the goroutine count
// does not grow with them.
func TestNoGoroutinePerStream(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	ln, _ := b.Bind(7, "")
	before := runtime.NumGoroutine()
	const n = 10000
	ctx := ctxTimeout(t, 20*time.Second)
	var out, in []*Stream
	for range n {
		s, err := a.Dial(ctx, Target{Node: b.ID(), Port: 7})
		if err != nil {
			t.Fatal(err)
		}
		p, err := ln.AcceptStream()
		if err != nil {
			t.Fatal(err)
		}
		out, in = append(out, s), append(in, p)
	}
	for i := range out {
		out[i].Write([]byte{1})
		in[i].SetReadDeadline(time.Now().Add(time.Hour)) // a timer, but no goroutine
	}
	after := runtime.NumGoroutine()
	t.Logf("goroutines: %d before, %d with %d open streams", before, after, n)
	if after-before > 10 {
		t.Fatalf("goroutines grew by %d for %d streams", after-before, n)
	}
	if got := a.Links()[0].Streams; got != n {
		t.Fatalf("link reports %d streams, want %d", got, n)
	}
	for i := range out {
		out[i].Close()
		in[i].Close()
	}
	waitFor(t, 5*time.Second, "circuits freed", func() bool { return a.Links()[0].Streams == 0 && b.Links()[0].Streams == 0 })
}

// TestDialSurvivesQuickClose: a listener that writes and closes at once (so
// its FIN and RESET may land before the dialler wakes) still yields a stream
// whose data is readable.
func TestDialSurvivesQuickClose(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	ln, _ := b.Bind(7, "greet")
	go func() {
		for {
			s, err := ln.AcceptStream()
			if err != nil {
				return
			}
			s.Write([]byte("hello"))
			s.Close()
		}
	}()
	for i := range 300 {
		s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		got, err := io.ReadAll(s)
		if err != nil || string(got) != "hello" {
			t.Fatalf("dial %d: read %q, %v", i, got, err)
		}
		s.Close()
	}
}

// Concurrent Writes on one stream take turns, as on a net.TCPConn: each
// arrives whole, never interleaved with another's bytes. On a TCP link large
// Writes lend their buffers; on a pipe they are copied, and a Write larger
// than SendBuffer waits for room part-way through.
func TestConcurrentWritesDoNotInterleave(t *testing.T) {
	for _, network := range []string{"tcp", "pipe"} {
		t.Run(network, func(t *testing.T) {
			a, b, ln := linkedPair(t)
			if network == "pipe" {
				a, b, ln = pipePair(t)
			}
			s, peer := openPair(t, a, b.ID(), ln)
			const writers, writes, size = 3, 8, 300 << 10
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := bytes.Repeat([]byte{byte('A' + w)}, size)
					for range writes {
						if _, err := s.Write(buf); err != nil {
							t.Errorf("writer %d: %v", w, err)
							return
						}
					}
				}()
			}
			got := make([]byte, writers*writes*size)
			peer.SetReadDeadline(time.Now().Add(20 * time.Second))
			if k, err := io.ReadFull(peer, got); err != nil {
				t.Fatalf("reading: %v after %d bytes", err, k)
			}
			wg.Wait()
			for off := 0; off < len(got); off += size {
				block := got[off : off+size]
				if n := bytes.Count(block, block[:1]); n != size {
					t.Fatalf("the Write at offset %d is mixed: %d of %d bytes are %q", off, n, size, block[:1])
				}
			}
		})
	}
}
