package core

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// TestLentWritesFullSocket: large Writes on a busy link lend their buffers
// to the send queue instead of copying them (writeLent). Each writer reuses
// one buffer, as applications do, and the socket (4 KiB send buffer, and a
// relay that holds the path for a while) takes only part of each batch: the
// link must copy what it did not send before the Write returns, so every
// stream's bytes arrive whole and in order.
func TestLentWritesFullSocket(t *testing.T) {
	a, b, r, ln, l := heldPath(t)
	const streams, size, write = 6, 384 << 10, 32 << 10
	pattern := func(stream, off int) byte { return byte(stream*37 + off*131 + off>>10) }

	pairs := make([][2]*Stream, streams)
	for i := range pairs {
		pairs[i][0], pairs[i][1] = openPair(t, a, b.ID(), ln)
	}
	r.pause()
	var wg sync.WaitGroup
	errs := make(chan error, 2*streams)
	for i, pair := range pairs {
		s, peer := pair[0], pair[1]
		wg.Add(2)
		go func() {
			defer wg.Done()
			buf := make([]byte, write)
			for off := 0; off < size; off += write {
				for j := range buf {
					buf[j] = pattern(i, off+j)
				}
				if _, err := s.Write(buf); err != nil {
					errs <- fmt.Errorf("stream %d: write: %w", i, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			peer.SetReadDeadline(time.Now().Add(20 * time.Second))
			got := make([]byte, size)
			if _, err := io.ReadFull(peer, got); err != nil {
				errs <- fmt.Errorf("stream %d: read: %w", i, err)
				return
			}
			for off := range got {
				if got[off] != pattern(i, off) {
					errs <- fmt.Errorf("stream %d: bytes differ from offset %d", i, off)
					return
				}
			}
		}()
	}
	waitFor(t, 5*time.Second, "a Write lending its buffer", func() bool { return l.lends.Load() > 0 })
	time.Sleep(20 * time.Millisecond)
	r.resume()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d Writes lent their buffers", l.lends.Load())
}

// stalledLentWrite opens a stream whose peer never reads, fills the peer's
// window, and starts a large Write that must lend its buffer and wait. It
// returns the stream, its peer, the bytes written before the waiting Write,
// and the waiting Write's result.
func stalledLentWrite(t *testing.T, a, b *Node, ln *Listener) (s, peer *Stream, before []byte, res chan writeResult) {
	t.Helper()
	s, peer = openPair(t, a, b.ID(), ln)
	l := onlyLink(t, a)
	window := int(b.cfg.StreamWindow)
	before = bytes.Repeat([]byte("0123456789abcdef"), window/16)
	if _, err := s.Write(before); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the window used up", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.sendCredit == 0 && s.sendLen() == 0
	})
	lends := l.lends.Load()
	res = make(chan writeResult, 1)
	go func() {
		n, err := s.Write(bytes.Repeat([]byte{'x'}, 64<<10))
		res <- writeResult{n, err}
	}()
	waitFor(t, 5*time.Second, "the Write lending its buffer", func() bool { return l.lends.Load() > lends })
	return s, peer, before, res
}

type writeResult struct {
	n   int
	err error
}

// TestLentWriteDeadline: a Write whose lent buffer the link cannot send (the
// peer's window is full) returns at its deadline, having sent nothing of it,
// and the stream goes on: the peer reads exactly what was written before,
// then what is written after.
func TestLentWriteDeadline(t *testing.T) {
	a, b, ln := linkedPair(t)
	s, peer, before, res := stalledLentWrite(t, a, b, ln)
	start := time.Now()
	s.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	var r writeResult
	select {
	case r = <-res:
	case <-time.After(5 * time.Second):
		t.Fatal("a lent Write did not return at its deadline")
	}
	if !errors.Is(r.err, os.ErrDeadlineExceeded) || r.n != 0 {
		t.Fatalf("lent Write at its deadline: n=%d, %v; want 0, deadline exceeded", r.n, r.err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("the Write returned %v after its 50 ms deadline", d)
	}
	s.SetWriteDeadline(time.Time{})
	after := bytes.Repeat([]byte("after"), 20<<10/5)
	go s.Write(after)
	want := append(append([]byte(nil), before...), after...)
	got := make([]byte, len(want))
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatalf("reading: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the peer read other bytes than those written before and after the timed-out Write")
	}
}

// TestLentWriteClose: Close, or the loss of the link, ends a Write that is
// waiting with its buffer lent.
func TestLentWriteClose(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		a, b, ln := linkedPair(t)
		s, _, _, res := stalledLentWrite(t, a, b, ln)
		s.Close()
		r := waitResult(t, res)
		if !errors.Is(r.err, net.ErrClosed) || r.n != 0 {
			t.Fatalf("lent Write after Close: n=%d, %v; want 0, %v", r.n, r.err, net.ErrClosed)
		}
		// What the Write took back is not sent, so FIN and RESET can go at
		// once, though the peer grants no credit, and the link is done with
		// the stream.
		l := onlyLink(t, a)
		waitFor(t, 5*time.Second, "the closed stream forgotten", func() bool { return l.lookup(s.id) == nil })
	})
	t.Run("link lost", func(t *testing.T) {
		a, b := newNode(t, testConfig()), newNode(t, testConfig())
		rl := joinViaRelay(t, a, b)
		ln, _ := b.Bind(7, "")
		_, _, _, res := stalledLentWrite(t, a, b, ln)
		rl.cut()
		r := waitResult(t, res)
		if !errors.Is(r.err, ErrLinkLost) {
			t.Fatalf("lent Write on a lost link: n=%d, %v; want %v", r.n, r.err, ErrLinkLost)
		}
	})
}

func waitResult(t *testing.T, res chan writeResult) writeResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("a Write waiting with its buffer lent did not return")
		return writeResult{}
	}
}

// TestConcurrentLentWrites: two goroutines write large buffers to one
// stream at once while other streams keep the link busy. The Writes take
// turns: each one's bytes arrive whole, none twice.
func TestConcurrentLentWrites(t *testing.T) {
	a, b, ln := linkedPair(t)
	l := onlyLink(t, a)
	const write, each = 48 << 10, 48 * 48 << 10
	stop := make(chan struct{})
	var busy sync.WaitGroup
	for range 4 { // keep the link busy, so that large Writes lend
		s, peer := openPair(t, a, b.ID(), ln)
		busy.Add(2)
		go func() { defer busy.Done(); io.Copy(io.Discard, peer) }()
		go func() {
			defer busy.Done()
			buf := make([]byte, 32<<10)
			for i := 0; i < 1<<14; i++ {
				select {
				case <-stop:
					s.Close()
					return
				default:
				}
				if _, err := s.Write(buf); err != nil {
					return
				}
			}
			s.Close()
		}()
	}
	defer func() { close(stop); busy.Wait() }()

	s, peer := openPair(t, a, b.ID(), ln)
	lends := l.lends.Load()
	var wg sync.WaitGroup
	for _, c := range []byte{'A', 'B'} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := bytes.Repeat([]byte{c}, write)
			for range each / write {
				if _, err := s.Write(buf); err != nil {
					t.Errorf("write %c: %v", c, err)
					return
				}
			}
		}()
	}
	got := make([]byte, 2*each)
	peer.SetReadDeadline(time.Now().Add(20 * time.Second))
	if k, err := io.ReadFull(peer, got); err != nil {
		t.Fatalf("reading: %v after %d bytes", err, k)
	}
	wg.Wait()
	if na, nb := bytes.Count(got, []byte{'A'}), bytes.Count(got, []byte{'B'}); na != each || nb != each {
		t.Fatalf("read %d A and %d B, want %d of each", na, nb, each)
	}
	for off := 0; off < len(got); off += write {
		if block := got[off : off+write]; bytes.Count(block, block[:1]) != write {
			t.Fatalf("the Write at offset %d is mixed with another", off)
		}
	}
	if l.lends.Load() == lends {
		t.Fatal("no Write lent its buffer")
	}
}

// TestLentWriteAmongManyFrames: a batch may hold hundreds of small frames
// from other streams besides a lent Write's frame. The non-blocking write
// that settles the lent bytes must stay within the kernel's limit on
// buffers per writev (1024), or the link fails.
func TestLentWriteAmongManyFrames(t *testing.T) {
	a, b, r, ln, l := heldPath(t)
	const small = 700
	type pair struct{ s, peer *Stream }
	smalls := make([]pair, small)
	for i := range smalls {
		smalls[i].s, smalls[i].peer = openPair(t, a, b.ID(), ln)
	}
	bulk, bulkPeer := openPair(t, a, b.ID(), ln)
	lent, lentPeer := openPair(t, a, b.ID(), ln)

	r.pause()
	// Fill the socket, so that the writer waits on it while the small
	// writes and the lent one queue up behind. Whether the bulk Write goes
	// direct (and leaves its rest to the writer) or lends, it then waits on
	// the full socket.
	const bulkSize = 1 << 20
	lends0 := l.lends.Load()
	bulkDone := make(chan error, 1)
	go func() {
		_, err := bulk.Write(make([]byte, bulkSize))
		bulkDone <- err
	}()
	waitFor(t, 5*time.Second, "the writer waiting on a full socket", func() bool {
		return l.handoffs.Load() > 0 || l.lends.Load() > lends0
	})
	time.Sleep(20 * time.Millisecond)
	for i, p := range smalls {
		if _, err := p.s.Write(bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
			t.Fatal(err)
		}
	}
	lends := l.lends.Load()
	lentDone := make(chan error, 1)
	go func() {
		_, err := lent.Write(bytes.Repeat([]byte{'L'}, 32<<10))
		lentDone <- err
	}()
	waitFor(t, 5*time.Second, "the Write lending its buffer", func() bool { return l.lends.Load() > lends })
	r.resume()

	read := func(peer *Stream, n int) []byte {
		t.Helper()
		got := make([]byte, n)
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(peer, got); err != nil {
			t.Fatalf("reading %d bytes: %v", n, err)
		}
		return got
	}
	read(bulkPeer, bulkSize)
	if got := read(lentPeer, 32<<10); !bytes.Equal(got, bytes.Repeat([]byte{'L'}, 32<<10)) {
		t.Fatal("the lent Write's bytes differ")
	}
	for i, p := range smalls {
		if got := read(p.peer, 100); !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, 100)) {
			t.Fatalf("small stream %d: bytes differ", i)
		}
	}
	for _, ch := range []chan error{bulkDone, lentDone} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
}
