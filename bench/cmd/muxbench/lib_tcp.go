package main

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// tcpLib is the baseline: one loopback TCP connection per stream.
type tcpLib struct{}

func init() { register(tcpLib{}) }

func (tcpLib) Name() string { return "tcp" }

// MaxStreams: both ends live in this process, so each stream costs two
// descriptors; the client side also needs one ephemeral port per stream.
func (tcpLib) MaxStreams() (int, string) {
	fds := int(raiseFileLimit())
	n, why := (fds-64)/2, fmt.Sprintf("fd limit %d", fds)
	if p := ephemeralPorts(); p > 0 && p < n {
		n, why = p, fmt.Sprintf("ephemeral ports %d", p)
	}
	return n, why
}

func (tcpLib) Setup() (Opener, Acceptor, func(), error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, nil, nil, err
	}
	t := &tcpTracker{ln: ln, addr: ln.Addr().String()}
	return tcpOpener{t}, tcpAcceptor{t}, t.closeAll, nil
}

// tcpTracker remembers every connection so that cleanup can close them all,
// as closing a multiplexer's session closes all its streams.
type tcpTracker struct {
	ln    net.Listener
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func (t *tcpTracker) track(c net.Conn) {
	t.mu.Lock()
	t.conns = append(t.conns, c)
	t.mu.Unlock()
}

func (t *tcpTracker) closeAll() {
	t.ln.Close()
	t.mu.Lock()
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

type tcpOpener struct{ t *tcpTracker }

func (o tcpOpener) Open() (net.Conn, error) {
	c, err := net.DialTimeout("tcp4", o.t.addr, 10*time.Second)
	if err == nil {
		o.t.track(c)
	}
	return c, err
}

type tcpAcceptor struct{ t *tcpTracker }

func (a tcpAcceptor) Accept() (net.Conn, error) {
	c, err := a.t.ln.Accept()
	if err == nil {
		a.t.track(c)
	}
	return c, err
}
