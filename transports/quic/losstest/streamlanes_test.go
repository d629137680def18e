package losstest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	quicgo "github.com/quic-go/quic-go"
)

// streamLanes is a prototype, for the experiment only, of the other way to
// map lanes onto QUIC: every link dialled to one address is a new QUIC
// stream on one shared QUIC connection. Its lanes are ordered independently
// (a lost packet stalls one lane) but share one congestion controller, where
// the lanes of transports/quic (one connection per link) have one each.
//
// It is no production transport: Close of a link resets its stream, and the
// connections end only when the transport is closed.
type streamLanes struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[string]*quicgo.Conn // dialled, by address
	all   []*quicgo.Conn          // dialled and accepted, to close
	lns   []*quicgo.Listener
}

const protoStreamLanes = "astranet-losstest"

// maxLanes caps the streams a listener accepts on one connection, maxConns
// the connections it accepts.
const (
	maxLanes = 64
	maxConns = 1024
)

func newStreamLanes() core.Transport {
	ctx, cancel := context.WithCancel(context.Background())
	return &streamLanes{ctx: ctx, cancel: cancel, conns: make(map[string]*quicgo.Conn)}
}

func (tr *streamLanes) quicConfig() *quicgo.Config {
	return &quicgo.Config{
		HandshakeIdleTimeout: 5 * time.Second,
		MaxIdleTimeout:       15 * time.Second,
		KeepAlivePeriod:      5 * time.Second,
		MaxIncomingStreams:   maxLanes,
	}
}

// Dial opens a new stream on the connection to addr, dialling it first if
// there is none.
func (tr *streamLanes) Dial(ctx context.Context, _, addr string) (net.Conn, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.ctx.Err() != nil {
		return nil, net.ErrClosed
	}
	qc := tr.conns[addr]
	if qc == nil || qc.Context().Err() != nil {
		conf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{protoStreamLanes}}
		var err error
		qc, err = quicgo.DialAddr(ctx, addr, conf, tr.quicConfig())
		if err != nil {
			return nil, err
		}
		tr.conns[addr] = qc
		tr.all = append(tr.all, qc)
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return &streamConn{qc: qc, Stream: st}, nil
}

// Listen accepts every stream of every connection to addr as a link.
func (tr *streamLanes) Listen(_ context.Context, _, addr string) (net.Listener, error) {
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{protoStreamLanes}}
	ql, err := quicgo.ListenAddr(addr, conf, tr.quicConfig())
	if err != nil {
		return nil, err
	}
	tr.mu.Lock()
	tr.lns = append(tr.lns, ql)
	tr.mu.Unlock()
	ln := &streamListener{ql: ql, links: make(chan net.Conn), done: make(chan struct{})}
	tr.wg.Go(func() {
		for range maxConns {
			qc, err := ql.Accept(tr.ctx)
			if err != nil {
				return
			}
			tr.mu.Lock()
			tr.all = append(tr.all, qc)
			tr.mu.Unlock()
			tr.wg.Go(func() {
				for range maxLanes {
					st, err := qc.AcceptStream(tr.ctx)
					if err != nil {
						return
					}
					select {
					case ln.links <- &streamConn{qc: qc, Stream: st}:
					case <-ln.done:
						st.CancelRead(0)
						st.CancelWrite(0)
					case <-tr.ctx.Done():
						return
					}
				}
			})
		}
	})
	return ln, nil
}

// Close ends every connection and listener and waits for the goroutines.
func (tr *streamLanes) Close() error {
	tr.cancel()
	tr.mu.Lock()
	for _, qc := range tr.all {
		qc.CloseWithError(0, "")
	}
	for _, ql := range tr.lns {
		ql.Close()
	}
	tr.mu.Unlock()
	tr.wg.Wait()
	return nil
}

type streamListener struct {
	ql    *quicgo.Listener
	links chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func (ln *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-ln.links:
		return c, nil
	case <-ln.done:
		return nil, net.ErrClosed
	}
}

func (ln *streamListener) Close() error {
	ln.once.Do(func() { close(ln.done) })
	return nil
}

func (ln *streamListener) Addr() net.Addr { return ln.ql.Addr() }

// streamConn is one lane: a QUIC stream as a net.Conn.
type streamConn struct {
	qc *quicgo.Conn
	*quicgo.Stream
}

func (c *streamConn) LocalAddr() net.Addr  { return c.qc.LocalAddr() }
func (c *streamConn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// Close resets both directions, which unblocks Read and Write at once.
func (c *streamConn) Close() error {
	c.Stream.CancelRead(0)
	c.Stream.CancelWrite(0)
	return nil
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "losstest"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, errors.Join(errors.New("self-signed certificate"), err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// TestStreamLanes: the prototype carries astranet streams, its four lanes
// sharing one QUIC connection (one flow through the relay).
func TestStreamLanes(t *testing.T) {
	cfg := core.DefaultConfig()
	cfg.HandshakeTimeout = 2 * time.Second
	p := newPair(t, cfg, RelayConfig{Seed: 1}, newStreamLanes)
	p.serve(t, 7, echo)
	p.join(t, 4)
	if n := len(p.a.Links()); n != 4 {
		t.Fatalf("%d links, want 4", n)
	}
	for i := range 4 {
		s := p.dial(t, 7)
		s.SetDeadline(time.Now().Add(3 * time.Second))
		if err := pingPong(s, []byte{byte(i), 1, 2, 3}); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		s.Close()
	}
	p.relay.mu.Lock()
	flows := len(p.relay.flows)
	p.relay.mu.Unlock()
	if flows != 1 {
		t.Errorf("relay saw %d flows, want 1 (one QUIC connection)", flows)
	}
}
