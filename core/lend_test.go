package core

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// streamPair returns a dialled stream from a to b and b's end of it, which
// has read one byte already (a Read lends its buffer only on a stream that
// has been read from).
func streamPair(t *testing.T) (a, b *Node, s, peer *Stream) {
	t.Helper()
	a, b, ln := linkedPair(t)
	s, peer = openPair(t, a, b.ID(), ln)
	if _, err := s.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(peer, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return a, b, s, peer
}

// waitLent waits until a Read on s has lent its buffer to the link's reader.
func waitLent(t *testing.T, s *Stream) {
	t.Helper()
	waitFor(t, 5*time.Second, "a Read lending its buffer", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.x != nil && s.x.rbusy && s.x.rbuf != nil
	})
}

// TestFirstReadDoesNotLend: a stream's first Read does not lend its buffer,
// which is likely fresh: the link's reader should not take its page faults.
func TestFirstReadDoesNotLend(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	ln, _ := b.Bind(7, "")
	s, peer := openPair(t, a, b.ID(), ln)
	got := make(chan error, 1)
	go func() { _, err := io.ReadFull(peer, make([]byte, 3)); got <- err }()
	waitFor(t, 5*time.Second, "the Read waiting", func() bool {
		peer.mu.Lock()
		defer peer.mu.Unlock()
		return peer.x != nil
	})
	peer.mu.Lock()
	lent := peer.x.rbusy
	peer.mu.Unlock()
	if lent {
		t.Fatal("a stream's first Read lent its buffer")
	}
	s.Write([]byte("abc"))
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// TestReadLendsBuffer: a waiting Read gets the next bytes copied straight
// into its buffer; what does not fit is queued, in order, and every byte's
// credit comes back.
func TestReadLendsBuffer(t *testing.T) {
	_, b, s, peer := streamPair(t)
	msg := make([]byte, 1000)
	for i := range msg {
		msg[i] = byte(i)
	}
	type result struct {
		n   int
		err error
	}
	buf := make([]byte, 100)
	got := make(chan result, 1)
	go func() { n, err := peer.Read(buf); got <- result{n, err} }()
	waitLent(t, peer)
	if _, err := s.Write(msg); err != nil { // one frame: 100 bytes to buf, 900 queued
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil || r.n != 100 || !bytes.Equal(buf, msg[:100]) {
		t.Fatalf("first Read: %d bytes, %v; equal %v", r.n, r.err, bytes.Equal(buf[:r.n], msg[:r.n]))
	}
	rest := make([]byte, 900)
	if _, err := io.ReadFull(peer, rest); err != nil || !bytes.Equal(rest, msg[100:]) {
		t.Fatalf("the rest: %v, equal %v", err, bytes.Equal(rest, msg[100:]))
	}
	peer.mu.Lock()
	lent := peer.x.rbusy || peer.x.rbuf != nil || peer.x.rn != 0
	peer.mu.Unlock()
	if lent {
		t.Fatal("the buffer is still lent after the Read returned")
	}
	l := onlyLink(t, b)
	if n := l.buffered.Load(); n != 0 {
		t.Fatalf("%d bytes still counted as buffered", n)
	}
	// All 1000 bytes were read, so the link credit they used is back (or
	// waiting below the threshold in recvUnacked).
	if avail, unacked := l.recvAvail.Load(), l.recvUnacked.Load(); avail+unacked != int64(b.cfg.LinkWindow) {
		t.Fatalf("link credit: %d available + %d unacked, want %d", avail, unacked, b.cfg.LinkWindow)
	}
}

// TestLentBufferReturnedOnDeadline: a Read that times out takes its buffer
// back; later bytes go to the next Read, never into the old buffer.
func TestLentBufferReturnedOnDeadline(t *testing.T) {
	_, _, s, peer := streamPair(t)
	old := make([]byte, 10)
	peer.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := peer.Read(old); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want a deadline error", err)
	}
	peer.SetReadDeadline(time.Time{})
	if _, err := s.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "0123456789" {
		t.Fatalf("next Read: %q, %v", buf, err)
	}
	if !bytes.Equal(old, make([]byte, 10)) {
		t.Fatalf("bytes landed in a timed-out Read's buffer: %q", old)
	}
}

// TestConcurrentReadsOneLender: of two Reads waiting at once, one lends its
// buffer; between them they get every byte once, in order within each Read.
func TestConcurrentReadsOneLender(t *testing.T) {
	_, _, s, peer := streamPair(t)
	type result struct {
		b   []byte
		err error
	}
	got := make(chan result, 2)
	for range 2 {
		go func() {
			buf := make([]byte, 64)
			n, err := peer.Read(buf)
			got <- result{buf[:n], err}
		}()
	}
	waitLent(t, peer)
	msg := []byte("abcdefghijklmnopqrstuvwxyz")
	if _, err := s.Write(msg); err != nil {
		t.Fatal(err)
	}
	first := <-got
	if first.err != nil || !bytes.Equal(first.b, msg) {
		t.Fatalf("first Read: %q, %v", first.b, first.err)
	}
	if _, err := s.Write([]byte("!")); err != nil {
		t.Fatal(err)
	}
	second := <-got
	if second.err != nil || string(second.b) != "!" {
		t.Fatalf("second Read: %q, %v", second.b, second.err)
	}
}
