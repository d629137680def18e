package quic

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"math/rand"
	"net"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

func TestEcho(t *testing.T) {
	tr := New()
	ln := listen(t, tr)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := tr.Dial(ctx, "quic", ln.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("Read: %v", err)
	}
	if string(buf) != "hello" {
		t.Fatalf("echo = %q, want %q", buf, "hello")
	}

	lk := c.(*Link)
	if got := lk.QUICConn().ConnectionState().TLS.NegotiatedProtocol; got != ALPN {
		t.Errorf("ALPN = %q, want %q", got, ALPN)
	}
	if lk.LocalAddr() == nil || lk.RemoteAddr().String() != ln.Addr().String() {
		t.Errorf("addrs: local %v, remote %v, listener %v", lk.LocalAddr(), lk.RemoteAddr(), ln.Addr())
	}
}

func TestNetworks(t *testing.T) {
	tests := []struct {
		network, addr string
		ok            bool
	}{
		{"quic", "127.0.0.1:0", true},
		{"quic4", "127.0.0.1:0", true},
		{"quic6", "[::1]:0", true}, // skipped below if the host has no IPv6 loopback
		{"udp", "127.0.0.1:0", false},
		{"tcp", "127.0.0.1:0", false},
	}
	for _, tc := range tests {
		t.Run(tc.network, func(t *testing.T) {
			ln, err := New().Listen(context.Background(), tc.network, tc.addr)
			if !tc.ok {
				if !errors.Is(err, errUnknownNetwork) {
					t.Fatalf("Listen error = %v, want unknown network", err)
				}
				_, err = New().Dial(context.Background(), tc.network, "127.0.0.1:1")
				if !errors.Is(err, errUnknownNetwork) {
					t.Fatalf("Dial error = %v, want unknown network", err)
				}
				return
			}
			if err != nil {
				if tc.network == "quic6" {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatalf("Listen: %v", err)
			}
			defer ln.Close()
			c1, c2, err := pair(t, New(), ln)
			if err != nil {
				t.Fatalf("pair: %v", err)
			}
			c1.Close()
			c2.Close()
		})
	}
}

// TestLargeTransfer sends 64 MiB over one link and compares SHA-256 digests.
func TestLargeTransfer(t *testing.T) {
	const size = 64 << 20
	tr := New()
	ln := listen(t, tr)
	c1, c2, err := pair(t, tr, ln)
	if err != nil {
		t.Fatalf("pair: %v", err)
	}
	defer c1.Close()
	defer c2.Close()
	deadline := time.Now().Add(2 * time.Minute)
	c1.SetDeadline(deadline)
	c2.SetDeadline(deadline)

	// The receiver hashes exactly size bytes and sends the digest back.
	recvErr := make(chan error, 1)
	go func() {
		h := sha256.New()
		if _, err := io.CopyN(h, c2, size); err != nil {
			recvErr <- err
			return
		}
		_, err := c2.Write(h.Sum(nil))
		recvErr <- err
	}()

	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.New(rand.NewSource(1)), size), h)
	buf := make([]byte, 32<<10)
	if _, err := io.CopyBuffer(c1, src, buf); err != nil {
		t.Fatalf("send: %v", err)
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c1, got); err != nil {
		t.Fatalf("read digest: %v (receiver: %v)", err, <-recvErr)
	}
	if err := <-recvErr; err != nil {
		t.Fatalf("receiver: %v", err)
	}
	if want := h.Sum(nil); !bytes.Equal(got, want) {
		t.Fatalf("digest mismatch: got %x, want %x", got, want)
	}
}

func TestTLS(t *testing.T) {
	kit := newCertKit(t)
	server := &Transport{TLS: &tls.Config{
		Certificates: []tls.Certificate{kit.issue(t, 2)},
		ClientCAs:    kit.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}}
	tests := []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{"client certificate", &tls.Config{Certificates: []tls.Certificate{kit.issue(t, 3)}, RootCAs: kit.pool}, true},
		{"no client certificate", &tls.Config{RootCAs: kit.pool}, false},
		{"untrusted server", &tls.Config{Certificates: []tls.Certificate{kit.issue(t, 4)}, RootCAs: newCertKit(t).pool}, false},
		{"unverified client", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln := listen(t, server)
			c1, c2, err := pair(t, &Transport{TLS: tc.client, HandshakeTimeout: 2 * time.Second}, ln)
			if err == nil && !tc.ok {
				// With TLS 1.3 the server may reject the client's
				// certificate after the client's handshake is done: then
				// the first round trip must fail instead.
				c1.SetDeadline(time.Now().Add(5 * time.Second))
				c1.Write([]byte("x"))
				_, err = c1.Read(make([]byte, 1))
			}
			if c1 != nil {
				c1.Close()
				c2.Close()
			}
			if tc.ok && err != nil {
				t.Fatalf("link failed: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("link succeeded, want it rejected")
			}
			t.Logf("result: %v", err)
		})
	}
}

func TestListenerCloseUnblocksAccept(t *testing.T) {
	ln, err := New().Listen(context.Background(), "quic", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ln.Accept()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := ln.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept error = %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept still blocked after Close")
	}
	if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close = %v, want net.ErrClosed", err)
	}
}

// TestListenerCloseKeepsLinks checks that, as with TCP, closing a listener
// leaves the links it accepted working.
func TestListenerCloseKeepsLinks(t *testing.T) {
	tr := New()
	ln, err := tr.Listen(context.Background(), "quic", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c1, c2, err := pair(t, tr, ln)
	if err != nil {
		ln.Close()
		t.Fatalf("pair: %v", err)
	}
	defer c1.Close()
	defer c2.Close()
	ln.Close()

	c1.SetDeadline(time.Now().Add(5 * time.Second))
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Write([]byte("still here")); err != nil {
		t.Fatalf("Write after listener Close: %v", err)
	}
	buf := make([]byte, len("still here"))
	if _, err := io.ReadFull(c1, buf); err != nil {
		t.Fatalf("Read after listener Close: %v", err)
	}
}

// TestStalledConnection checks that a connection whose stream never shows up
// (the dialler never writes) neither blocks Accept for others nor outlives
// HandshakeTimeout.
func TestStalledConnection(t *testing.T) {
	const handshake = 300 * time.Millisecond
	tr := &Transport{HandshakeTimeout: handshake}
	ln := listen(t, tr)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stalled, err := tr.Dial(ctx, "quic", ln.Addr().String())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer stalled.Close()
	start := time.Now()

	c1, c2, err := pair(t, tr, ln)
	if err != nil {
		t.Fatalf("pair next to a stalled connection: %v", err)
	}
	c1.Close()
	c2.Close()

	stalled.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = stalled.Read(make([]byte, 1))
	elapsed := time.Since(start)
	var appErr *quicgo.ApplicationError
	if !errors.As(err, &appErr) || appErr.ErrorCode != codeRefused {
		t.Fatalf("stalled link Read = %v, want the listener's refusal", err)
	}
	if elapsed > handshake+time.Second {
		t.Fatalf("stalled link closed after %v, want about %v", elapsed, handshake)
	}
	t.Logf("stalled link closed after %v: %v", elapsed, err)
}

// A TLS config with no certificate is refused at Listen, as the tcp
// transport refuses it: every handshake would fail. WithTLS hands the same
// config to both.
func TestListenTLSWithoutCertificate(t *testing.T) {
	tr := &Transport{TLS: &tls.Config{}}
	ln, err := tr.Listen(context.Background(), "quic", "127.0.0.1:0")
	if err == nil {
		ln.Close()
		t.Fatal("Listen with a TLS config without certificates succeeded")
	}
	if !errors.Is(err, errNoCertificate) {
		t.Fatalf("Listen: %v, want errNoCertificate", err)
	}
}
