package tcp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// waitLimit bounds every wait in these tests, so a bug fails a test rather
// than hanging it.
const waitLimit = 10 * time.Second

// pki is a throwaway certificate authority with a server and a client
// certificate it issued, made fresh for the tests.
type pki struct {
	roots  *x509.CertPool
	server tls.Certificate // for 127.0.0.1 and ::1
	client tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "astranet test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, name string, usage x509.ExtKeyUsage) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		template := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	p := &pki{roots: x509.NewCertPool()}
	p.roots.AddCert(ca)
	p.server = issue(2, "server", x509.ExtKeyUsageServerAuth)
	p.client = issue(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func (p *pki) serverTLS(requireClientCert bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.server}}
	if requireClientCert {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = p.roots
	}
	return c
}

func (p *pki) clientTLS(withCert bool) *tls.Config {
	c := &tls.Config{RootCAs: p.roots}
	if withCert {
		c.Certificates = []tls.Certificate{p.client}
	}
	return c
}

// listen starts listening on addr, closing the listener when the test ends.
func listen(t *testing.T, tr *Transport, network, addr string) net.Listener {
	t.Helper()
	l, err := tr.Listen(context.Background(), network, addr)
	if err != nil {
		t.Fatalf("Listen(%q, %q): %v", network, addr, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dialAccept dials l with client and returns both ends.
func dialAccept(client *Transport, l net.Listener) (c, s net.Conn, err error) {
	accepted := make(chan net.Conn, 1)
	go func() {
		s, _ := l.Accept()
		accepted <- s
	}()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	c, err = client.Dial(ctx, l.Addr().Network(), l.Addr().String())
	if err != nil {
		l.Close() // unblocks Accept, whose goroutine must not outlive the test
		if s := <-accepted; s != nil {
			s.Close()
		}
		return nil, nil, err
	}
	select {
	case s = <-accepted:
	case <-time.After(waitLimit):
		// With TLS 1.3, Dial can succeed while the server's side of the
		// handshake fails; the listener then has nothing to Accept.
		l.Close()
		s = <-accepted
	}
	if s == nil {
		c.Close()
		return nil, nil, errors.New("Accept returned no connection")
	}
	return c, s, nil
}

// echo checks that a message written on a arrives on b and back.
func echo(t *testing.T, a, b net.Conn) {
	t.Helper()
	a.SetDeadline(time.Now().Add(waitLimit))
	b.SetDeadline(time.Now().Add(waitLimit))
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 5)
		_, err := io.ReadFull(b, buf)
		if err == nil {
			_, err = b.Write(buf)
		}
		errc <- err
	}()
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo read %q, %v; want \"hello\"", buf, err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("echo side: %v", err)
	}
}

func TestEcho(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name          string
		network, addr string
		server        *Transport
		client        *Transport
	}{
		{"plain tcp", "tcp", "127.0.0.1:0", New(), New()},
		{"plain tcp4", "tcp4", "127.0.0.1:0", New(), New()},
		{"empty network means tcp", "", "127.0.0.1:0", &Transport{}, &Transport{}},
		{"keep-alive off", "tcp", "127.0.0.1:0", &Transport{KeepAlive: -1}, &Transport{KeepAlive: -1}},
		{"plain tcp6", "tcp6", "[::1]:0", New(), New()},
		{"tls", "tcp", "127.0.0.1:0", &Transport{TLS: p.serverTLS(false)}, &Transport{TLS: p.clientTLS(false)}},
		{"tls6", "tcp6", "[::1]:0", &Transport{TLS: p.serverTLS(false)}, &Transport{TLS: p.clientTLS(false)}},
		{"mutual tls", "tcp", "127.0.0.1:0", &Transport{TLS: p.serverTLS(true)}, &Transport{TLS: p.clientTLS(true)}},
		{"socket buffers", "tcp", "127.0.0.1:0", &Transport{ReadBuffer: 1 << 20, WriteBuffer: 1 << 20}, &Transport{ReadBuffer: 1 << 20, WriteBuffer: 1 << 20}},
		{"tls with socket buffers", "tcp", "127.0.0.1:0", &Transport{TLS: p.serverTLS(false), ReadBuffer: 1 << 20}, &Transport{TLS: p.clientTLS(false), ReadBuffer: 1 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := tt.server.Listen(context.Background(), tt.network, tt.addr)
			if err != nil && tt.network == "tcp6" {
				t.Skipf("no IPv6 loopback: %v", err)
			}
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			defer l.Close()
			c, s, err := dialAccept(tt.client, l)
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			defer s.Close()
			echo(t, c, s)
			echo(t, s, c)
			if tt.server.TLS == nil {
				return
			}
			state := s.(*tls.Conn).ConnectionState()
			if !state.HandshakeComplete {
				t.Error("server side: handshake not complete after echo")
			}
			if tt.server.TLS.ClientAuth == tls.RequireAndVerifyClientCert &&
				(len(state.PeerCertificates) == 0 || state.PeerCertificates[0].Subject.CommonName != "client") {
				t.Error("server side: client certificate not seen")
			}
		})
	}
}

// TestTLSRejected checks that a handshake the server must refuse fails on
// the client, on Dial or at the latest on its first Read (in TLS 1.3 the
// client finishes its side before the server checks its certificate), and
// that the listener drops the connection and goes on serving.
func TestTLSRejected(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name   string
		server *tls.Config
		client *tls.Config
	}{
		{"client without certificate, TLS 1.3", p.serverTLS(true), p.clientTLS(false)},
		{"client without certificate, TLS 1.2", p.serverTLS(true), &tls.Config{RootCAs: p.roots, MaxVersion: tls.VersionTLS12}},
		{"client does not trust server", p.serverTLS(false), &tls.Config{RootCAs: x509.NewCertPool()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listen(t, &Transport{TLS: tt.server}, "tcp", "127.0.0.1:0")
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			c, err := (&Transport{TLS: tt.client}).Dial(ctx, "tcp", l.Addr().String())
			if err == nil {
				c.SetDeadline(time.Now().Add(waitLimit))
				_, err = c.Read(make([]byte, 1))
				c.Close()
			}
			if err == nil {
				t.Fatal("client: handshake accepted, want it refused")
			}
			t.Logf("client error: %v", err)

			// The next Accept returns a good client, not the refused one.
			good, s, err := dialAccept(&Transport{TLS: p.clientTLS(true)}, l)
			if err != nil {
				t.Fatalf("good client after a refused one: %v", err)
			}
			defer good.Close()
			defer s.Close()
			if s.RemoteAddr().String() != good.LocalAddr().String() {
				t.Errorf("Accept returned %v, want the good client %v", s.RemoteAddr(), good.LocalAddr())
			}
			echo(t, good, s)
		})
	}
}

func TestBadNetwork(t *testing.T) {
	tr := New()
	ctx := context.Background()
	for _, network := range []string{"udp", "unix", "pipe", "ip4"} {
		_, err := tr.Dial(ctx, network, "127.0.0.1:1")
		if err == nil || !strings.Contains(err.Error(), `"`+network+`"`) {
			t.Errorf("Dial(%q): %v, want an error naming the network", network, err)
		}
		l, err := tr.Listen(ctx, network, "127.0.0.1:0")
		if err == nil {
			l.Close()
		}
		if err == nil || !strings.Contains(err.Error(), `"`+network+`"`) {
			t.Errorf("Listen(%q): %v, want an error naming the network", network, err)
		}
	}
}

func TestListenTLSWithoutCertificate(t *testing.T) {
	_, err := (&Transport{TLS: &tls.Config{}}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if !errors.Is(err, errNoCertificate) {
		t.Errorf("Listen: %v, want errNoCertificate", err)
	}
}

func TestDialCancelled(t *testing.T) {
	l := listen(t, New(), "tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c, err := New().Dial(ctx, "tcp", l.Addr().String())
	if err == nil {
		c.Close()
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestHandshakeBounded checks that a peer that connects but never speaks TLS
// holds neither Dial nor an accepted connection past its bound.
func TestHandshakeBounded(t *testing.T) {
	p := newPKI(t)
	const bound = 100 * time.Millisecond

	t.Run("Dial honours ctx", func(t *testing.T) {
		silent := listen(t, New(), "tcp", "127.0.0.1:0") // never accepted: the kernel completes the TCP handshake, nobody answers TLS
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		defer cancel()
		start := time.Now()
		_, err := (&Transport{TLS: p.clientTLS(false)}).Dial(ctx, "tcp", silent.Addr().String())
		checkTimeout(t, err, start)
	})
	t.Run("Dial honours HandshakeTimeout", func(t *testing.T) {
		silent := listen(t, New(), "tcp", "127.0.0.1:0")
		start := time.Now()
		_, err := (&Transport{TLS: p.clientTLS(false), HandshakeTimeout: bound}).Dial(context.Background(), "tcp", silent.Addr().String())
		checkTimeout(t, err, start)
	})
	t.Run("a silent client does not hold up Accept", func(t *testing.T) {
		l := listen(t, &Transport{TLS: p.serverTLS(false)}, "tcp", "127.0.0.1:0")
		silent, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		c, s, err := dialAccept(&Transport{TLS: p.clientTLS(false)}, l)
		if err != nil {
			t.Fatalf("second client: %v", err)
		}
		defer c.Close()
		defer s.Close()
		echo(t, c, s)
	})
	t.Run("the listener drops a silent client after HandshakeTimeout", func(t *testing.T) {
		l := listen(t, &Transport{TLS: p.serverTLS(false), HandshakeTimeout: bound}, "tcp", "127.0.0.1:0")
		silent, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		silent.SetReadDeadline(time.Now().Add(waitLimit))
		start := time.Now()
		if _, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("silent client's Read: %v, want the server to have closed the connection", err)
		}
		if waited := time.Since(start); waited > waitLimit/2 {
			t.Errorf("server gave up after %v, want about %v", waited, bound)
		}
	})
	t.Run("Close aborts handshakes in flight", func(t *testing.T) {
		l, err := (&Transport{TLS: p.serverTLS(false)}).Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		silent, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		time.Sleep(20 * time.Millisecond) // let the handshake start
		start := time.Now()
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if waited := time.Since(start); waited > waitLimit/2 {
			t.Errorf("Close took %v, want it not to wait for the handshake timeout", waited)
		}
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	})
	t.Run("Dial completes before Accept", func(t *testing.T) {
		l := listen(t, &Transport{TLS: p.serverTLS(false)}, "tcp", "127.0.0.1:0")
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		c, err := (&Transport{TLS: p.clientTLS(false)}).Dial(ctx, "tcp", l.Addr().String())
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer c.Close()
		s, err := l.Accept()
		if err != nil {
			t.Fatalf("Accept: %v", err)
		}
		defer s.Close()
		if _, ok := s.(*tls.Conn); !ok {
			t.Errorf("Accept returned %T, want *tls.Conn", s)
		}
		echo(t, c, s)
	})
}

func checkTimeout(t *testing.T, err error, start time.Time) {
	t.Helper()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("got %v, want a timeout net.Error", err)
	}
	if waited := time.Since(start); waited > waitLimit/2 {
		t.Errorf("gave up after %v, want about 100ms", waited)
	}
}

func TestNettest(t *testing.T) {
	l := listen(t, New(), "tcp", "127.0.0.1:0")
	nettest.TestConn(t, nettestPipe(New(), l))
}

// tlsWriteTimeoutSubtests are the nettest.TestConn subtests that expect a
// connection to work on after one of its writes timed out. crypto/tls says
// it does not: "After a Write has timed out, the TLS state is corrupt and all
// future writes will return the same error." A link does not need to (core
// treats a timed-out write as a dead link), so TestNettestTLS runs every
// other subtest.
const tlsWriteTimeoutSubtests = "PastTimeout|FutureTimeout|ConcurrentMethods"

// nettestChildEnv marks the child process in which TestNettestTLS runs.
const nettestChildEnv = "ASTRANET_TCP_NETTEST_TLS_CHILD"

// TestNettestTLS runs nettest.TestConn over TLS, except for
// tlsWriteTimeoutSubtests. The testing package skips subtests only by flag,
// so the test runs itself again in a child process with -test.skip.
func TestNettestTLS(t *testing.T) {
	if os.Getenv(nettestChildEnv) == "" {
		cmd := exec.Command(os.Args[0],
			"-test.run=^TestNettestTLS$",
			"-test.skip=^TestNettestTLS$/^("+tlsWriteTimeoutSubtests+")$",
			"-test.count=1", "-test.v", "-test.timeout=5m")
		cmd.Env = append(os.Environ(), nettestChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child test process: %v\n%s", err, out)
		}
		if passed := strings.Count(string(out), "--- PASS: TestNettestTLS/"); passed != 8 {
			t.Fatalf("child test process passed %d subtests, want the 8 of nettest.TestConn that apply to TLS\n%s", passed, out)
		}
		return
	}
	p := newPKI(t)
	l := listen(t, &Transport{TLS: p.serverTLS(false)}, "tcp", "127.0.0.1:0")
	nettest.TestConn(t, nettestPipe(&Transport{TLS: p.clientTLS(false)}, l))
}

func nettestPipe(client *Transport, l net.Listener) nettest.MakePipe {
	return func() (net.Conn, net.Conn, func(), error) {
		c, s, err := dialAccept(client, l)
		if err != nil {
			return nil, nil, nil, err
		}
		return c, s, func() { c.Close(); s.Close() }, nil
	}
}
