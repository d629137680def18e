package quic

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

func TestNetTestConn(t *testing.T) {
	tr := New()
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		ln, err := tr.Listen(context.Background(), "quic", "127.0.0.1:0")
		if err != nil {
			return nil, nil, nil, err
		}
		l1, l2, err := pair(t, tr, ln)
		if err != nil {
			ln.Close()
			return nil, nil, nil, err
		}
		stop = func() {
			l1.Close()
			l2.Close()
			ln.Close()
		}
		return l1, l2, stop, nil
	})
}

// TestPeerVanishes checks that when one end disappears without closing
// anything (its UDP socket or QUIC transport closed under it), the other
// end's Read fails within about MaxIdleTimeout.
func TestPeerVanishes(t *testing.T) {
	const idle = 300 * time.Millisecond
	tests := []struct {
		name   string
		vanish func(ln net.Listener, dialUDP *net.UDPConn)
		// survivor picks the end that must notice.
		survivorIsDialer bool
	}{
		{"dialer vanishes", func(_ net.Listener, udp *net.UDPConn) { udp.Close() }, false},
		{"listener vanishes", func(ln net.Listener, _ *net.UDPConn) { ln.(*listener).sock.tr.Close() }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Transport{MaxIdleTimeout: idle, KeepAlivePeriod: idle / 3}
			ln := listen(t, tr)

			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			dialed, udp, err := tr.dial(ctx, "quic", ln.Addr().String())
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer dialed.Close()
			if _, err := dialed.Write([]byte{1}); err != nil {
				t.Fatalf("Write: %v", err)
			}
			c, ok := <-accepted
			if !ok {
				t.Fatal("Accept failed")
			}
			defer c.Close()
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				t.Fatalf("Read: %v", err)
			}

			survivor := c
			if tc.survivorIsDialer {
				survivor = dialed
			}
			// Well past the idle timeout, so that only liveness can end Read.
			survivor.SetReadDeadline(time.Now().Add(10 * idle))
			start := time.Now()
			tc.vanish(ln, udp)
			_, err = survivor.Read(make([]byte, 1))
			elapsed := time.Since(start)
			if err == nil || errors.Is(err, io.EOF) {
				t.Fatalf("Read = %v, want an error", err)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("Read hit its deadline after %v instead of noticing the dead peer", elapsed)
			}
			var op *net.OpError
			if !errors.As(err, &op) || op.Net != "quic" || op.Op != "read" {
				t.Fatalf("Read error %T (%v), want a *net.OpError for a quic read", err, err)
			}
			if elapsed > idle+500*time.Millisecond {
				t.Fatalf("dead peer noticed after %v, want within about %v", elapsed, idle)
			}
			t.Logf("dead peer noticed after %v: %v", elapsed, err)
		})
	}
}

// TestDeadlineErrors: an expired deadline fails Read and Write with a
// *net.OpError that is a timeout and wraps os.ErrDeadlineExceeded, as on
// any net.Conn.
func TestDeadlineErrors(t *testing.T) {
	ln := listen(t, &Transport{})
	a, b, err := pair(t, &Transport{}, ln)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	a.SetDeadline(time.Now().Add(-time.Second))
	_, rerr := a.Read(make([]byte, 1))
	_, werr := a.Write([]byte{1})
	for op, err := range map[string]error{"read": rerr, "write": werr} {
		var oe *net.OpError
		var ne net.Error
		if !errors.As(err, &oe) || oe.Op != op || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%s past its deadline: %T %v; want a timeout *net.OpError wrapping os.ErrDeadlineExceeded", op, err, err)
		}
	}
}

// TestCloseEndsConnection checks that once both ends have closed a link, the
// QUIC connection is closed promptly on both sides, not after the linger time.
func TestCloseEndsConnection(t *testing.T) {
	tests := []struct {
		name  string
		close func(d, l *Link)
	}{
		{"dialer first", func(d, l *Link) { d.Close(); time.Sleep(20 * time.Millisecond); l.Close() }},
		{"listener first", func(d, l *Link) { l.Close(); time.Sleep(20 * time.Millisecond); d.Close() }},
		{"together", func(d, l *Link) { go d.Close(); l.Close() }},
		{"listener busy writing", func(d, l *Link) {
			// Close aborts the Write in progress (the peer stopped reading,
			// so it is blocked); the connection must still close promptly.
			go func() {
				buf := make([]byte, 1024)
				for {
					if _, err := l.Write(buf); err != nil {
						return
					}
				}
			}()
			time.Sleep(20 * time.Millisecond)
			d.Close()
			l.Close()
		}},
		{"listener reads to EOF", func(d, l *Link) {
			d.Close()
			io.Copy(io.Discard, l)
			l.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := New() // linger of 15 s: far longer than the test allows
			ln := listen(t, tr)
			d, l, err := pair(t, tr, ln)
			if err != nil {
				t.Fatalf("pair: %v", err)
			}
			d.Write([]byte("bye"))
			tc.close(d, l)
			for _, lk := range []*Link{d, l} {
				select {
				case <-lk.QUICConn().Context().Done():
				case <-time.After(3 * time.Second):
					t.Fatalf("QUIC connection still open 3 s after both ends closed")
				}
			}
		})
	}
}

// TestCloseDelivers checks that data written just before Close arrives,
// followed by io.EOF.
func TestCloseDelivers(t *testing.T) {
	tr := New()
	ln := listen(t, tr)
	d, l, err := pair(t, tr, ln)
	if err != nil {
		t.Fatalf("pair: %v", err)
	}
	defer l.Close()
	want := make([]byte, 4<<20)
	for i := range want {
		want[i] = byte(i)
	}
	writeErr := make(chan error, 1)
	go func() {
		_, err := d.Write(want)
		d.Close() // straight after the Write: the data is still in flight
		writeErr <- err
	}()
	l.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(l)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if _, err := d.Write([]byte{1}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want the %d written", len(got), len(want))
	}
}

func BenchmarkQUICLinkThroughput(b *testing.B) {
	const chunk = 32 << 10
	tr := New()
	ln := listen(b, tr)
	d, l, err := pair(b, tr, ln)
	if err != nil {
		b.Fatalf("pair: %v", err)
	}
	defer d.Close()
	defer l.Close()

	total := int64(b.N) * chunk
	done := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.Discard, l, total)
		if err == nil {
			_, err = l.Write([]byte{1}) // everything arrived
		}
		done <- err
	}()
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ResetTimer()
	for range b.N {
		if _, err := d.Write(buf); err != nil {
			b.Fatalf("Write: %v", err)
		}
	}
	if _, err := io.ReadFull(d, make([]byte, 1)); err != nil {
		b.Fatalf("waiting for the receiver: %v (receiver: %v)", err, <-done)
	}
	b.StopTimer()
	if err := <-done; err != nil {
		b.Fatalf("receiver: %v", err)
	}
}
