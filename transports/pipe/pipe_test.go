package pipe

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// waitLimit bounds every wait in these tests, so a bug fails a test rather
// than hanging it.
const waitLimit = 10 * time.Second

func TestPipeNettest(t *testing.T) {
	for _, size := range []int{DefaultBufferSize, 7} { // 7: tiny and odd, so the ring wraps all the time
		t.Run(sizeName(size), func(t *testing.T) {
			nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
				a, b := newPipe(size, "a", "b")
				return a, b, func() { a.Close(); b.Close() }, nil
			})
		})
	}
}

func sizeName(size int) string {
	if size == DefaultBufferSize {
		return "default"
	}
	return "small"
}

// TestPipeThroughput sends 64 MiB in writes of varying size and checks what
// arrives by its hash.
func TestPipeThroughput(t *testing.T) {
	const total = 64 << 20
	a, b := Pipe()
	defer a.Close()
	defer b.Close()
	deadline := time.Now().Add(30 * time.Second)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)

	block := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	written := make(chan []byte, 1)
	go func() {
		h := sha256.New()
		sent := 0
		for sent < total {
			n := min(1+rng.IntN(100<<10), total-sent)
			off := sent % len(block)
			chunk := block[off:min(off+n, len(block))]
			if _, err := a.Write(chunk); err != nil {
				t.Errorf("Write: %v", err)
				break
			}
			h.Write(chunk)
			sent += len(chunk)
		}
		a.Close()
		written <- h.Sum(nil)
	}()

	h := sha256.New()
	n, err := io.CopyBuffer(h, b, make([]byte, 48<<10))
	if err != nil {
		t.Fatalf("reading: %v after %d bytes", err, n)
	}
	if n != total {
		t.Fatalf("read %d bytes, want %d", n, total)
	}
	if want := <-written; !bytes.Equal(h.Sum(nil), want) {
		t.Fatal("data read differs from data written")
	}
}

func TestPipeClose(t *testing.T) {
	t.Run("local calls fail with net.ErrClosed", func(t *testing.T) {
		a, b := Pipe()
		defer b.Close()
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close: %v, want net.ErrClosed", err)
		}
		if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after Close: %v, want net.ErrClosed", err)
		}
		if err := a.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close: %v, want net.ErrClosed", err)
		}
		if err := a.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
			t.Errorf("SetDeadline after Close: %v, want net.ErrClosed", err)
		}
	})
	t.Run("remote drains then reads EOF, and cannot write", func(t *testing.T) {
		a, b := Pipe()
		defer b.Close()
		if _, err := a.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		a.Close()
		got, err := io.ReadAll(b)
		if err != nil || string(got) != "hello" {
			t.Errorf("ReadAll = %q, %v; want \"hello\", nil", got, err)
		}
		if _, err := b.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("Write to closed peer: %v, want io.ErrClosedPipe", err)
		}
	})
	t.Run("Close unblocks pending calls on both ends", func(t *testing.T) {
		a, b := newPipe(16, "a", "b")
		defer b.Close()
		// Fill both directions, so that writes on either end block.
		for _, c := range []net.Conn{a, b} {
			if _, err := c.Write(make([]byte, 16)); err != nil {
				t.Fatal(err)
			}
		}
		type result struct {
			what string
			err  error
		}
		results := make(chan result, 3)
		call := func(what string, f func() error) { go func() { results <- result{what, f()} }() }
		call("local Write", func() error { _, err := a.Write([]byte("x")); return err })
		call("remote Write", func() error { _, err := b.Write([]byte("x")); return err })
		empty, _ := newPipe(16, "c", "d")
		call("local Read", func() error { _, err := empty.Read(make([]byte, 1)); return err })
		time.Sleep(20 * time.Millisecond) // let them block
		a.Close()
		empty.Close()
		want := map[string]error{"local Write": net.ErrClosed, "remote Write": io.ErrClosedPipe, "local Read": net.ErrClosed}
		for range 3 {
			select {
			case r := <-results:
				if !errors.Is(r.err, want[r.what]) {
					t.Errorf("%s: %v, want %v", r.what, r.err, want[r.what])
				}
			case <-time.After(waitLimit):
				t.Fatal("Close left a call blocked")
			}
		}
		// The remote end still reads what a wrote before closing, then EOF.
		got, err := io.ReadAll(b)
		if err != nil || len(got) != 16 {
			t.Errorf("remote ReadAll = %d bytes, %v; want 16, nil", len(got), err)
		}
	})
	t.Run("CloseWrite half-closes", func(t *testing.T) {
		a, b := Pipe()
		defer a.Close()
		defer b.Close()
		a.Write([]byte("ping"))
		if err := a.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
			t.Fatalf("CloseWrite: %v", err)
		}
		if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after CloseWrite: %v, want net.ErrClosed", err)
		}
		if got, err := io.ReadAll(b); err != nil || string(got) != "ping" {
			t.Errorf("ReadAll = %q, %v; want \"ping\", nil", got, err)
		}
		if _, err := b.Write([]byte("pong")); err != nil {
			t.Fatalf("Write back: %v", err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "pong" {
			t.Errorf("read back %q, %v; want \"pong\", nil", buf, err)
		}
	})
}

func TestPipeDeadlines(t *testing.T) {
	isTimeout := func(t *testing.T, err error) {
		t.Helper()
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("got %v, want a timeout net.Error wrapping os.ErrDeadlineExceeded", err)
		}
	}
	t.Run("past", func(t *testing.T) {
		a, b := newPipe(4, "a", "b")
		defer a.Close()
		defer b.Close()
		a.SetDeadline(time.Now().Add(-time.Second))
		_, err := a.Read(make([]byte, 1))
		isTimeout(t, err)
		n, err := a.Write([]byte("x"))
		isTimeout(t, err)
		if n != 0 {
			t.Errorf("Write wrote %d bytes past its deadline", n)
		}
	})
	t.Run("future read", func(t *testing.T) {
		a, b := Pipe()
		defer a.Close()
		defer b.Close()
		start := time.Now()
		a.SetReadDeadline(start.Add(50 * time.Millisecond))
		_, err := a.Read(make([]byte, 1))
		isTimeout(t, err)
		if waited := time.Since(start); waited < 40*time.Millisecond || waited > waitLimit {
			t.Errorf("Read timed out after %v, want about 50ms", waited)
		}
	})
	t.Run("future write reports partial progress", func(t *testing.T) {
		a, b := newPipe(4, "a", "b")
		defer a.Close()
		defer b.Close()
		a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := a.Write([]byte("0123456789"))
		isTimeout(t, err)
		if n != 4 {
			t.Errorf("Write wrote %d bytes, want 4 (the buffer's size)", n)
		}
	})
	t.Run("extended before it fires", func(t *testing.T) {
		a, b := Pipe()
		defer a.Close()
		defer b.Close()
		a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		a.SetReadDeadline(time.Now().Add(waitLimit))
		time.AfterFunc(100*time.Millisecond, func() { b.Write([]byte("x")) })
		if _, err := a.Read(make([]byte, 1)); err != nil {
			t.Errorf("Read: %v, want data after the deadline was extended", err)
		}
	})
	t.Run("cleared after expiry", func(t *testing.T) {
		a, b := Pipe()
		defer a.Close()
		defer b.Close()
		a.SetReadDeadline(time.Now().Add(-time.Second))
		a.SetReadDeadline(time.Time{})
		b.Write([]byte("x"))
		if _, err := a.Read(make([]byte, 1)); err != nil {
			t.Errorf("Read: %v, want data once the deadline is cleared", err)
		}
	})
	t.Run("read deadline does not affect writes", func(t *testing.T) {
		a, b := Pipe()
		defer a.Close()
		defer b.Close()
		a.SetReadDeadline(time.Now().Add(-time.Second))
		if _, err := a.Write([]byte("x")); err != nil {
			t.Errorf("Write: %v", err)
		}
	})
}

func TestPipeAddrs(t *testing.T) {
	a, b := Pipe()
	defer a.Close()
	defer b.Close()
	for _, addr := range []net.Addr{a.LocalAddr(), a.RemoteAddr(), b.LocalAddr(), b.RemoteAddr()} {
		if addr.Network() != "pipe" || addr.String() != "pipe" {
			t.Errorf("addr = %s/%s, want pipe/pipe", addr.Network(), addr)
		}
	}
}

// TestPipeGrowth checks that the ring buffer keeps data in order while it
// grows and wraps: it keeps data buffered across writes and reads of uneven
// sizes.
func TestPipeGrowth(t *testing.T) {
	const size = 64 << 10
	a, b := newPipe(size, "a", "b")
	defer a.Close()
	defer b.Close()
	var want, got bytes.Buffer
	buf := make([]byte, size)
	next := byte(0)
	for i := range 200 {
		chunk := make([]byte, (i*997)%(20<<10)+1)
		for j := range chunk {
			chunk[j] = next
			next++
		}
		if _, err := a.Write(chunk); err != nil {
			t.Fatal(err)
		}
		want.Write(chunk)
		// Read back only part, so that data stays buffered, and never let
		// the next write find the buffer full.
		for want.Len()-got.Len() > size/2 {
			n, err := b.Read(buf[:(i*31)%(12<<10)+1])
			if err != nil {
				t.Fatal(err)
			}
			got.Write(buf[:n])
		}
	}
	a.Close()
	rest, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	got.Write(rest)
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatal("data read differs from data written")
	}
}

// BenchmarkPipeThroughput compares this package's buffered pipe with the
// unbuffered net.Pipe, moving data in 32 KiB writes. The reader reads 32 KiB
// at a time, then 4 KiB at a time, as a link's reader parsing frames might;
// net.Pipe makes each Write wait for as many Reads as it takes to drain it.
func BenchmarkPipeThroughput(b *testing.B) {
	const writeSize = 32 << 10
	pipes := []struct {
		name string
		make func() (net.Conn, net.Conn)
	}{
		{"pipe.Pipe", Pipe},
		{"net.Pipe", net.Pipe},
	}
	for _, readSize := range []int{32 << 10, 4 << 10} {
		for _, p := range pipes {
			b.Run(fmt.Sprintf("%s/read=%dKiB", p.name, readSize>>10), func(b *testing.B) {
				w, r := p.make()
				defer r.Close()
				done := make(chan error, 1)
				go func() {
					buf := make([]byte, readSize)
					for {
						if _, err := r.Read(buf); err != nil {
							if err == io.EOF {
								err = nil
							}
							done <- err
							return
						}
					}
				}()
				buf := make([]byte, writeSize)
				b.SetBytes(writeSize)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := w.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				w.Close()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// A half-closed pipe is still open: setting its deadlines after CloseWrite
// succeeds, as on a *net.TCPConn (it used to fail with net.ErrClosed). After
// Close it fails.
func TestDeadlineAfterCloseWrite(t *testing.T) {
	a, b := Pipe()
	defer b.Close()
	if err := a.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := a.SetDeadline(time.Now().Add(time.Second)); err != nil {
		t.Errorf("SetDeadline after CloseWrite: %v", err)
	}
	if err := a.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		t.Errorf("SetWriteDeadline after CloseWrite: %v", err)
	}
	a.Close()
	if err := a.SetWriteDeadline(time.Now().Add(time.Second)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetWriteDeadline after Close: %v, want net.ErrClosed", err)
	}
}
