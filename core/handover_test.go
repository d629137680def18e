package core

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// leading reports whether s's Read holds its link's socket, and whether it
// is reading now.
func leading(s *Stream) (holds, active bool) {
	l := s.link
	l.rmu.Lock()
	defer l.rmu.Unlock()
	return l.leader == s, l.leader == s && l.lactive
}

// takeSocket has peer send small frames that s reads, one at a time, until
// s's Read holds the socket (handover.go). It fails the test if that does
// not happen within 200 exchanges.
func takeSocket(t *testing.T, s, peer *Stream) {
	t.Helper()
	buf := make([]byte, 64)
	for i := range 200 {
		if _, err := peer.Write(buf[:16]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf[:16]); err != nil {
			t.Fatal(err)
		}
		if holds, _ := leading(s); holds && i >= handOverStreak {
			return
		}
	}
	t.Fatalf("no hand-over after 200 frames (%d hand-overs on the link)", s.link.handOvers.Load())
}

// readInBackground starts a Read of s and waits until it reads the socket
// itself; the Read's result arrives on the channel.
func readInBackground(t *testing.T, s *Stream) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 64))
		done <- err
	}()
	waitFor(t, 5*time.Second, "the Read reading the socket", func() bool {
		_, active := leading(s)
		return active
	})
	return done
}

func wantWithin(t *testing.T, done <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s: the Read holding the socket did not return within %v", what, d)
		return nil
	}
}

// Bytes arrive whole and in order while the socket goes back and forth
// between the link's reader and a Read: a bulk stream, with an echo on a
// second stream breaking in.
func TestHandOverBytesExact(t *testing.T) {
	a, b, ln := linkedPair(t)
	s, peer := openPair(t, a, b.ID(), ln)
	s2, peer2 := openPair(t, a, b.ID(), ln)
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	go func() {
		for p := want; len(p) > 0; {
			k := min(len(p), 1+rng.IntN(40<<10))
			if _, err := peer.Write(p[:k]); err != nil {
				return
			}
			p = p[k:]
		}
		peer.CloseWrite()
	}()
	echoDone := make(chan error, 1)
	go func() {
		// The echo breaks in once the socket has been handed over: from the
		// start, its frames could break every streak of the bulk stream's
		// (as they did, now and then, without -race).
		for limit := time.Now().Add(5 * time.Second); s.link.handOvers.Load() == 0 && time.Now().Before(limit); {
			time.Sleep(100 * time.Microsecond)
		}
		msg := make([]byte, 100)
		for i := range 200 {
			msg[0] = byte(i)
			if _, err := peer2.Write(msg); err != nil {
				echoDone <- err
				return
			}
			if _, err := io.ReadFull(s2, msg); err != nil || msg[0] != byte(i) {
				echoDone <- errors.Join(err, errors.New("second stream: wrong bytes"))
				return
			}
		}
		echoDone <- nil
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
	if err := <-echoDone; err != nil {
		t.Fatal(err)
	}
	if s.link.handOvers.Load() == 0 {
		t.Fatal("the socket was never handed to a Read")
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// A Read holding the socket honours its deadline, and reads on after it.
func TestHandOverReadDeadline(t *testing.T) {
	a, b, ln := linkedPair(t)
	s, peer := openPair(t, a, b.ID(), ln)
	takeSocket(t, s, peer)
	s.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	start := time.Now()
	_, err := s.Read(make([]byte, 64))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want a deadline error", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > 2*time.Second {
		t.Fatalf("the deadline 100 ms away ended the Read after %v", d)
	}
	s.SetReadDeadline(time.Time{})
	peer.Write([]byte("after"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "after" {
		t.Fatalf("after the deadline: %q, %v", buf, err)
	}
}

// blockedLeader links two nodes, opens a stream from a to b, and starts a
// Read of it that holds the socket and waits for bytes; its result arrives
// on done.
func blockedLeader(t *testing.T) (a, b *Node, s, peer *Stream, done <-chan error) {
	t.Helper()
	a, b, ln := linkedPair(t)
	s, peer = openPair(t, a, b.ID(), ln)
	takeSocket(t, s, peer)
	return a, b, s, peer, readInBackground(t, s)
}

// Close, a new read deadline, a RESET from the peer and the link's end each
// end a Read blocked on the socket it holds.
func TestHandOverInterrupts(t *testing.T) {
	t.Run("Close", func(t *testing.T) {
		_, _, s, _, done := blockedLeader(t)
		s.Close()
		if err := wantWithin(t, done, 2*time.Second, "Close"); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
		}
	})
	t.Run("SetReadDeadline", func(t *testing.T) {
		_, _, s, _, done := blockedLeader(t)
		s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if err := wantWithin(t, done, 2*time.Second, "SetReadDeadline"); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read after a deadline set while it waits: %v, want a deadline error", err)
		}
	})
	t.Run("peer reset", func(t *testing.T) {
		_, _, _, peer, done := blockedLeader(t)
		peer.abort(net.ErrClosed) // a RESET, cancelled
		if err := wantWithin(t, done, 2*time.Second, "the peer's RESET"); !errors.Is(err, ErrReset) {
			t.Fatalf("Read after the peer's RESET: %v, want ErrReset", err)
		}
	})
	t.Run("link lost", func(t *testing.T) {
		a, b, _, _, done := blockedLeader(t)
		b.Close()
		if err := wantWithin(t, done, 3*time.Second, "the peer's Close"); !errors.Is(err, ErrLinkLost) {
			t.Fatalf("Read after the link ended: %v, want ErrLinkLost", err)
		}
		waitFor(t, 3*time.Second, "the link gone", func() bool { return !hasLinkTo(a, b.ID()) })
	})
	t.Run("node closing", func(t *testing.T) {
		a, _, _, _, done := blockedLeader(t)
		closed := make(chan struct{})
		go func() { a.Close(); close(closed) }()
		if err := wantWithin(t, done, 3*time.Second, "Node.Close"); err == nil {
			t.Fatal("Read returned no error when its node closed")
		}
		select {
		case <-closed:
		case <-time.After(3 * time.Second):
			t.Fatal("Node.Close did not return within 3 s while a Read held a link's socket")
		}
	})
}

// While one stream's Read holds the socket, blocked or with its application
// busy elsewhere, other streams' bytes and new streams still get through.
func TestHandOverOthersNotStarved(t *testing.T) {
	for _, blocked := range []bool{true, false} {
		name := "application away"
		if blocked {
			name = "Read blocked"
		}
		t.Run(name, func(t *testing.T) {
			a, b, ln := linkedPair(t)
			s, peer := openPair(t, a, b.ID(), ln)
			s2, peer2 := openPair(t, a, b.ID(), ln)
			takeSocket(t, s, peer)
			if blocked {
				readInBackground(t, s)
			}
			for i := range 20 {
				start := time.Now()
				if _, err := peer2.Write([]byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
				s2.SetReadDeadline(time.Now().Add(time.Second))
				buf := make([]byte, 1)
				if _, err := s2.Read(buf); err != nil || buf[0] != byte(i) {
					t.Fatalf("second stream, message %d: %v %v", i, buf, err)
				}
				if d := time.Since(start); d > 500*time.Millisecond {
					t.Fatalf("second stream, message %d took %v", i, d)
				}
			}
			// A stream opened the other way, from b: its OPEN is a frame for
			// the link's reader too.
			la, err := a.Bind(9, "")
			if err != nil {
				t.Fatal(err)
			}
			defer la.Close()
			c, err := b.Dial(ctxTimeout(t, 2*time.Second), Target{Node: a.ID(), Port: 9})
			if err != nil {
				t.Fatalf("a dial to the node whose Read holds the socket: %v", err)
			}
			c.Close()
		})
	}
}

// makeHot has peer send more than handOverStreak frames for s, one at a
// time, that s does not read until all have arrived: the link's reader then
// counts s hot but finds no Read to hand the socket to, and blocks on it.
// s has been read from (a waiting Read lends its buffer).
func makeHot(t *testing.T, s, peer *Stream) {
	t.Helper()
	buf := make([]byte, 16*(handOverStreak+8))
	if _, err := peer.Write(buf[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, buf[:1]); err != nil {
		t.Fatal(err)
	}
	for i := range handOverStreak + 8 {
		if _, err := peer.Write(buf[:16]); err != nil {
			t.Fatal(err)
		}
		for start := time.Now(); ; runtime.Gosched() {
			s.mu.Lock()
			n := s.recvLen()
			s.mu.Unlock()
			if n == 16*(i+1) {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("frame %d not queued: %d bytes", i, n)
			}
		}
	}
	if _, err := io.ReadFull(s, buf); err != nil {
		t.Fatal(err)
	}
	l := s.link
	waitFor(t, 2*time.Second, "the link's reader blocked, s hot", func() bool {
		return l.hot.Load() == s && l.rblocked.Load()
	})
}

// A Read whose deadline passes while the link's reader hands it the socket
// returns the deadline error without reading the socket: the socket must
// still go back to the link's reader, or every other stream on the link
// waits for ever (until the keep-alive kills the link).
func TestHandOverToReadPastItsDeadline(t *testing.T) {
	a, b, ln := linkedPair(t)
	s, peer := openPair(t, a, b.ID(), ln)
	s2, peer2 := openPair(t, a, b.ID(), ln)
	for attempt := 0; ; attempt++ {
		if attempt == 20 {
			t.Skip("never caught the Read waiting before it led")
		}
		makeHot(t, s, peer)
		s.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		done := make(chan error, 1)
		go func() {
			_, err := s.Read(make([]byte, 64))
			done <- err
		}()
		// Catch the Read waiting (it asked for the socket, want), and keep
		// it from running while its deadline passes: the link's reader, woken
		// by the want, hands it the socket meanwhile or just after.
		caught := false
		for limit := time.Now().Add(2 * time.Second); !caught && len(done) == 0 && time.Now().Before(limit); {
			if s.mu.TryLock() {
				if caught = s.x != nil && s.x.rbuf != nil; !caught {
					s.mu.Unlock()
				}
			}
		}
		if !caught {
			// The Read returned (its deadline passed on a loaded machine)
			// or never came to wait within the limit: try again.
			wantWithin(t, done, 2*time.Second, "deadline")
			s.SetReadDeadline(time.Time{})
			continue
		}
		_, active := leading(s)
		time.Sleep(50 * time.Millisecond)
		s.mu.Unlock()
		err := wantWithin(t, done, 2*time.Second, "deadline")
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read: %v, want a deadline error", err)
		}
		if !active {
			break
		}
		s.SetReadDeadline(time.Time{}) // it read the socket before it was caught: try again
	}
	// The other stream is served within the hand-over's bound.
	peer2.Write([]byte("x"))
	s2.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := io.ReadFull(s2, make([]byte, 1)); err != nil {
		holds, _ := leading(s)
		t.Fatalf("second stream: %v (the first stream's Read, returned, holds the socket: %v)", err, holds)
	}
}

// Once the socket is back with the link's reader, the streak starts again:
// a Read of the stream that had it does not interrupt the blocked reader to
// ask for it (want) before the stream is hot again, for nothing (the reader
// hands over only after handOverStreak frames).
func TestHandOverNoWantWhileCold(t *testing.T) {
	if handOverStreak <= 10 {
		t.Skip("the 10 exchanges would make the stream hot again")
	}
	a, b, ln := linkedPair(t)
	s, peer := openPair(t, a, b.ID(), ln)
	takeSocket(t, s, peer)
	l := s.link
	waitFor(t, 2*time.Second, "the socket back with the link's reader (idle)", func() bool {
		holds, _ := leading(s)
		return !holds && l.rblocked.Load()
	})
	wants := l.wants.Load()
	buf := make([]byte, 16)
	for range 10 {
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(s, buf)
			done <- err
		}()
		waitFor(t, 2*time.Second, "the Read waiting", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.x != nil && s.x.rbuf != nil
		})
		if _, err := peer.Write(make([]byte, 16)); err != nil {
			t.Fatal(err)
		}
		if err := wantWithin(t, done, 2*time.Second, "exchange"); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.wants.Load() - wants; n != 0 {
		t.Fatalf("%d Reads woke the link's reader to ask for the socket, with the stream's streak started afresh", n)
	}
}

// A Read that holds the socket gives it back as soon as its stream's FIN
// has been read: there is nothing more for it, and other frames should not
// wait for the idle reclaim.
func TestHandOverGivesBackAtEOF(t *testing.T) {
	a, b, ln := linkedPair(t)
	s, peer := openPair(t, a, b.ID(), ln)
	takeSocket(t, s, peer)
	peer.CloseWrite()
	if _, err := s.Read(make([]byte, 64)); err != io.EOF {
		t.Fatalf("Read after the peer's CloseWrite: %v, want io.EOF", err)
	}
	if holds, _ := leading(s); holds {
		t.Fatal("the Read that returned io.EOF still holds the socket")
	}
}
