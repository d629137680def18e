package core

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// smallSendBuffer is TCP with a small socket send buffer, so that a link's
// socket fills after a few KiB when the path stalls.
type smallSendBuffer struct{ tcpTransport }

func (t smallSendBuffer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := t.tcpTransport.Dial(ctx, network, addr)
	if err == nil {
		err = c.(*net.TCPConn).SetWriteBuffer(4 << 10)
	}
	return c, err
}

// TestSendNowFullSocket: while the link is idle, a stream's goroutine hands
// its writes to the kernel itself (sendNow for an interactive stream's short
// writes, writeDirect for large ones), never waiting for the socket. When
// the socket is full, the writer must send the rest of that write, then the
// frames queued behind it, so the bytes arrive complete and in order, and a
// Write with a deadline still returns at its deadline.
func TestSendNowFullSocket(t *testing.T) {
	t.Run("short interactive writes", func(t *testing.T) { testFullSocket(t, 100, true) })
	t.Run("large writes", func(t *testing.T) { testFullSocket(t, 32<<10, false) })
}

// heldPath links a to b over TCP with a 4 KiB socket send buffer on a's side,
// through a relay the test can pause, so that a's socket fills after a few
// KiB; b listens on port 7. It returns a's link, which must have a raw
// socket writer.
func heldPath(t *testing.T) (a, b *Node, r *relay, ln *Listener, l *link) {
	t.Helper()
	a = newNode(t, testConfig(), func(o *Options) { o.Transports["tcp"] = smallSendBuffer{} })
	b = newNode(t, testConfig())
	r = joinViaRelay(t, a, b)
	ln, err := b.Bind(7, "")
	if err != nil {
		t.Fatal(err)
	}
	l = onlyLink(t, a)
	if l.raw == nil {
		t.Fatal("the link has no raw socket writer")
	}
	return a, b, r, ln, l
}

func testFullSocket(t *testing.T, msg int, interactive bool) {
	a, b, r, ln, l := heldPath(t)
	s, peer := openPair(t, a, b.ID(), ln)
	if interactive {
		makeInteractive(t, s, peer)
	}
	// A second stream, to write on with a deadline while the path is held.
	other, otherPeer := openPair(t, a, b.ID(), ln)
	makeInteractive(t, other, otherPeer)

	// About 1 MB in writes of msg bytes while the relay holds the path for a
	// while.
	total := (1 << 20) / msg * msg
	want := make([]byte, total)
	for i := range want {
		want[i] = byte(i*131 + i>>9)
	}
	r.pause()
	wrote := make(chan error, 1)
	go func() {
		// One buffer, reused as applications do: the link must not keep a
		// reference to it once Write returns.
		buf := make([]byte, msg)
		for off := 0; off < total; off += msg {
			copy(buf, want[off:off+msg])
			if _, err := s.Write(buf); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	waitFor(t, 5*time.Second, "a write left to the writer", func() bool { return l.handoffs.Load() > 0 })

	// The socket is full and the path held: Writes with a deadline return at
	// the deadline, not when the socket drains.
	other.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	var err error
	for i := 0; i < 10000 && time.Since(start) < 2*time.Second; i++ {
		if _, err = other.Write(make([]byte, 100)); err != nil {
			break
		}
	}
	if elapsed := time.Since(start); !errors.Is(err, os.ErrDeadlineExceeded) || elapsed > time.Second {
		t.Fatalf("writes with a 50 ms deadline on a held path: %v after %v", err, elapsed)
	}

	r.resume()
	got := make([]byte, total)
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatalf("reading: %v", err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("writing: %v", err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for got[i] == want[i] {
			i++
		}
		t.Fatalf("bytes differ from offset %d", i)
	}
	t.Logf("%d partial writes left to the writer", l.handoffs.Load())
}

// makeInteractive makes s interactive (its small writes may go out through
// sendNow): a request, and a reply that comes late enough that s's Read
// waits for it.
func makeInteractive(t *testing.T, s, peer *Stream) {
	t.Helper()
	go func() {
		b := make([]byte, 5)
		if _, err := io.ReadFull(peer, b); err == nil {
			time.Sleep(20 * time.Millisecond)
			peer.Write(b)
		}
	}()
	if err := roundTrip(s, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	interactive := s.state&stInteractive != 0
	s.mu.Unlock()
	if !interactive {
		t.Fatal("a stream that waited for a reply is not interactive")
	}
}

// TestSendNowBrokenSocket: when the connection under an idle link breaks,
// an interactive stream's small writes (which go out through sendNow) soon
// report the lost link rather than queueing for ever, whichever goroutine
// notices first: the reader at EOF or the writing goroutine at a failed
// write.
func TestSendNowBrokenSocket(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	r := joinViaRelay(t, a, b)
	ln, err := b.Bind(7, "")
	if err != nil {
		t.Fatal(err)
	}
	s, peer := openPair(t, a, b.ID(), ln)
	makeInteractive(t, s, peer)
	r.cut()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Write([]byte("ping"))
		if err != nil {
			if !errors.Is(err, ErrLinkLost) {
				t.Fatalf("Write on a broken link: %v, want ErrLinkLost", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes on a broken link still succeed after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSendNowWriteError: a write error on the writing goroutine ends the link
// as one on the writer does. The link's non-blocking writer is pointed at a
// closed socket, so only sendNow can fail while the link's reader stays
// healthy.
func TestSendNowWriteError(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	ln, err := b.Bind(7, "")
	if err != nil {
		t.Fatal(err)
	}
	s, peer := openPair(t, a, b.ID(), ln)
	makeInteractive(t, s, peer)

	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	other, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	l := onlyLink(t, a)
	l.raw = newRawWriter(other)

	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := s.Write([]byte("ping"))
		if err != nil {
			if !errors.Is(err, ErrLinkLost) || !strings.Contains(err.Error(), "writing to link") {
				t.Fatalf("Write after a failed inline write: %v, want ErrLinkLost from writing to link", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("writes still succeed 5 s after the inline write failed")
		}
		time.Sleep(time.Millisecond)
	}
}
