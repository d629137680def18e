package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

const (
	// DefaultKeepAlive is the TCP keep-alive period used when
	// Transport.KeepAlive is zero.
	DefaultKeepAlive = 15 * time.Second
	// DefaultHandshakeTimeout bounds a TLS handshake when
	// Transport.HandshakeTimeout is zero.
	DefaultHandshakeTimeout = 10 * time.Second
)

// errNoCertificate reports a server TLS config that could never complete a
// handshake; Listen refuses it rather than failing every link later.
var errNoCertificate = errors.New("TLS config has no certificate (set Certificates, GetCertificate or GetConfigForClient)")

// Transport opens links over TCP, and over TLS when TLS is set. Its zero value
// is ready to use and means plain TCP with the default settings.
//
// Every link has TCP_NODELAY set (Nagle's algorithm off), as Go does by
// default: core batches its own writes, and delaying small frames such as
// pings and window updates would only add latency.
type Transport struct {
	// TLS, if not nil, secures every link with TLS using this config: Dial
	// runs the client side of the handshake, the listener the server side. For mutual TLS, set ClientAuth (and ClientCAs) on the listening
	// side and Certificates on the dialling side. If ServerName is empty,
	// Dial verifies the server against the host part of the address it dials.
	TLS *tls.Config

	// KeepAlive is the period of TCP keep-alive probes on every link. Zero
	// means DefaultKeepAlive; a negative value turns keep-alive probes off.
	// They let the kernel notice a dead peer; core's own pings notice sooner.
	KeepAlive time.Duration

	// HandshakeTimeout bounds each link's TLS handshake. Zero means
	// DefaultHandshakeTimeout. It is unused without TLS.
	HandshakeTimeout time.Duration

	// ReadBuffer and WriteBuffer, if positive, set every link's socket
	// receive and send buffer sizes in bytes (SO_RCVBUF and SO_SNDBUF; the
	// kernel may double them, and caps them at its maximum). Zero keeps the
	// kernel's defaults, with its buffer autotuning, which long, fast paths
	// need. On a LAN, a large receive buffer can raise a busy link's
	// throughput: in an experiment on loopback, 8 MiB gave bench's bulk100
	// about 10 % more (bench/RESULTS.md).
	ReadBuffer, WriteBuffer int
}

// New returns a Transport for plain TCP with the default settings.
func New() *Transport {
	return &Transport{KeepAlive: DefaultKeepAlive, HandshakeTimeout: DefaultHandshakeTimeout}
}

// Dial connects to addr ("host:port") on network "tcp", "tcp4" or "tcp6"
// ("" means "tcp"). With TLS set it also completes the TLS handshake, bounded
// by ctx and HandshakeTimeout, so that a failed handshake is a Dial error.
// Dial gives up when ctx is done.
func (t *Transport) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	network, err := checkNetwork("dial", network, addr)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{KeepAlive: t.KeepAlive}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if err := t.setBuffers(c); err != nil {
		c.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
	}
	if t.TLS == nil {
		return c, nil
	}
	config := t.TLS
	if config.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		config = config.Clone()
		config.ServerName = host
	}
	tc := tls.Client(c, config)
	ctx, cancel := context.WithTimeout(ctx, t.handshakeTimeout())
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, &net.OpError{
			Op: "dial", Net: network, Source: c.LocalAddr(), Addr: c.RemoteAddr(),
			Err: &handshakeError{err},
		}
	}
	return tc, nil
}

// Listen accepts links on addr (for example "127.0.0.1:10000", or ":0" for
// any free port) on network "tcp", "tcp4" or "tcp6" ("" means "tcp").
//
// With TLS set, the listener runs each client's TLS handshake in the
// background, bounded by HandshakeTimeout, and Accept returns only
// connections (*tls.Conn) whose handshake succeeded; a failed handshake is
// the client's error, and the listener drops that connection. So a slow or
// silent client never holds up Accept for the others, and a Dial completes
// even before the listener's owner calls Accept, as with plain TCP. At most
// 128 connections wait, handshaking or handshaken, for Accept; beyond that
// new clients wait in the kernel's backlog. Close aborts the handshakes in
// flight and stops the listener's goroutines before it returns.
func (t *Transport) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	network, err := checkNetwork("listen", network, addr)
	if err != nil {
		return nil, err
	}
	if t.TLS != nil && len(t.TLS.Certificates) == 0 && t.TLS.GetCertificate == nil && t.TLS.GetConfigForClient == nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: errNoCertificate}
	}
	lc := net.ListenConfig{KeepAlive: t.KeepAlive}
	l, err := lc.Listen(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if t.ReadBuffer > 0 || t.WriteBuffer > 0 {
		l = buffersListener{l, t}
	}
	if t.TLS == nil {
		return l, nil
	}
	return newTLSListener(l, t.TLS, t.handshakeTimeout()), nil
}

// setBuffers applies ReadBuffer and WriteBuffer to c.
func (t *Transport) setBuffers(c net.Conn) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	if t.ReadBuffer > 0 {
		if err := tc.SetReadBuffer(t.ReadBuffer); err != nil {
			return fmt.Errorf("setting the receive buffer: %w", err)
		}
	}
	if t.WriteBuffer > 0 {
		if err := tc.SetWriteBuffer(t.WriteBuffer); err != nil {
			return fmt.Errorf("setting the send buffer: %w", err)
		}
	}
	return nil
}

// buffersListener applies the transport's buffer sizes to every connection
// it accepts. A connection whose sizes cannot be set is closed and skipped.
type buffersListener struct {
	net.Listener
	t *Transport
}

func (l buffersListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.t.setBuffers(c) == nil {
			return c, nil
		}
		c.Close()
	}
}

func (t *Transport) handshakeTimeout() time.Duration {
	if t.HandshakeTimeout <= 0 {
		return DefaultHandshakeTimeout
	}
	return t.HandshakeTimeout
}

// checkNetwork returns the network to use, or an error naming a network this
// transport does not serve.
func checkNetwork(op, network, addr string) (string, error) {
	switch network {
	case "":
		return "tcp", nil
	case "tcp", "tcp4", "tcp6":
		return network, nil
	}
	return "", &net.OpError{Op: op, Net: network, Err: fmt.Errorf("tcp transport: unsupported network %q for %q (want tcp, tcp4 or tcp6)", network, addr)}
}

// handshakeBacklog bounds the TLS connections a listener holds that Accept
// has not taken yet: handshakes in flight plus handshaken connections waiting.
// While it is full the listener stops accepting TCP connections, and new
// clients wait in the kernel's backlog.
const handshakeBacklog = 128

// tlsListener accepts TCP connections in a goroutine of its own and runs each
// one's TLS handshake in a goroutine of its own, so that Accept returns only
// connections whose handshake succeeded and a slow client delays nobody else.
type tlsListener struct {
	raw     net.Listener
	config  *tls.Config
	timeout time.Duration

	ready chan accepted      // handshaken connections and accept errors, for Accept
	slots chan struct{}      // one token per entry in ready or handshake in flight
	done  chan struct{}      // closed by Close
	stop  context.CancelFunc // aborts the handshakes in flight; called by Close
	wg    sync.WaitGroup     // the accept loop and handshake goroutines

	closeOnce sync.Once
}

type accepted struct {
	conn net.Conn
	err  error
}

func newTLSListener(raw net.Listener, config *tls.Config, timeout time.Duration) *tlsListener {
	ctx, stop := context.WithCancel(context.Background())
	l := &tlsListener{
		raw:     raw,
		config:  config,
		timeout: timeout,
		ready:   make(chan accepted, handshakeBacklog),
		slots:   make(chan struct{}, handshakeBacklog),
		done:    make(chan struct{}),
		stop:    stop,
	}
	l.wg.Add(1)
	go l.acceptLoop(ctx)
	return l
}

// Accept returns the next connection whose TLS handshake has succeeded, as a
// *tls.Conn, or the error with which accepting a TCP connection failed.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, l.closedError("accept")
	default:
	}
	select {
	case a := <-l.ready:
		<-l.slots
		return a.conn, a.err
	case <-l.done:
		return nil, l.closedError("accept")
	}
}

// Close stops accepting, aborts the handshakes in flight, closes the
// connections Accept has not taken, and waits for the listener's goroutines.
func (l *tlsListener) Close() error {
	err := l.closedError("close")
	l.closeOnce.Do(func() {
		close(l.done)
		l.stop()
		err = l.raw.Close()
		l.wg.Wait()
		for {
			select {
			case a := <-l.ready:
				if a.conn != nil {
					a.conn.Close()
				}
			default:
				return
			}
		}
	})
	return err
}

// Addr returns the listener's network address.
func (l *tlsListener) Addr() net.Addr { return l.raw.Addr() }

func (l *tlsListener) closedError(op string) error {
	return &net.OpError{Op: op, Net: l.raw.Addr().Network(), Addr: l.raw.Addr(), Err: net.ErrClosed}
}

// acceptLoop accepts TCP connections while there is a free slot and starts
// their handshakes. An accept error other than closing is passed on to Accept
// (as a plain listener would return it), and the loop backs off before
// trying again, as net/http does, so that running out of file descriptors
// does not spin.
func (l *tlsListener) acceptLoop(ctx context.Context) {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return
		}
		c, err := l.raw.Accept()
		if err == nil {
			backoff = 0
			l.wg.Add(1)
			go l.handshake(ctx, c)
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		l.ready <- accepted{err: err} // never blocks: it holds a slot
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		pause := time.NewTimer(backoff)
		select {
		case <-pause.C:
		case <-l.done:
			pause.Stop()
			return
		}
	}
}

// handshake runs the server side of c's TLS handshake, bounded by the
// handshake timeout and by Close, and queues c for Accept if it succeeds. A
// failed handshake is the client's to see; the listener just drops c.
func (l *tlsListener) handshake(ctx context.Context, c net.Conn) {
	defer l.wg.Done()
	tc := tls.Server(c, l.config)
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		<-l.slots
		return
	}
	l.ready <- accepted{conn: tc} // never blocks: it holds a slot
}

// handshakeError is a failed TLS handshake. It is a timeout if the handshake
// ran out of time, so that net.OpError.Timeout reports it.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

func (e *handshakeError) Timeout() bool {
	var ne interface{ Timeout() bool }
	return errors.As(e.err, &ne) && ne.Timeout()
}
