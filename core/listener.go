package core

import (
	"net"
	"sync"
)

// Listener accepts streams opened to one port (and service name) of a node.
// Its accept queue is bounded: an open that finds it full is refused with
// ErrBacklog at the dialler.
type Listener struct {
	node *Node
	addr Addr

	mu      sync.Mutex
	closed  bool
	backlog chan *Stream
	done    chan struct{}
}

var _ net.Listener = (*Listener)(nil)

// Accept waits for and returns the next stream.
func (ln *Listener) Accept() (net.Conn, error) { return ln.AcceptStream() }

// AcceptStream is Accept with the concrete type.
func (ln *Listener) AcceptStream() (*Stream, error) {
	select {
	case s := <-ln.backlog:
		return s, nil
	case <-ln.done:
		return nil, &net.OpError{Op: "accept", Net: "astranet", Addr: ln.addr, Err: net.ErrClosed}
	}
}

// Addr returns the node, port and service name the listener is bound to.
func (ln *Listener) Addr() net.Addr { return ln.addr }

// Close stops the listener. Streams waiting in its queue are refused, and
// what they received is dropped. A second Close fails with net.ErrClosed, as
// on a net.TCPListener.
func (ln *Listener) Close() error {
	ln.mu.Lock()
	if ln.closed {
		ln.mu.Unlock()
		return &net.OpError{Op: "close", Net: "astranet", Addr: ln.addr, Err: net.ErrClosed}
	}
	ln.closed = true
	close(ln.done)
	ln.mu.Unlock()
	ln.node.unbind(ln)
	for {
		select {
		case s := <-ln.backlog:
			// Nobody will read or close it: what it received goes now, with
			// its link credit.
			s.abort(ErrRefused)
			s.mu.Lock()
			n := s.dropRecv()
			s.mu.Unlock()
			s.returnRecv(n)
		default:
			return nil
		}
	}
}

// offer queues s for Accept, first queueing its ACCEPT frame on the link so
// that the frame goes out before anything the application writes.
func (ln *Listener) offer(l *link, s *Stream) error {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if ln.closed {
		return ErrRefused
	}
	if len(ln.backlog) == cap(ln.backlog) {
		return ErrBacklog
	}
	if err := l.adopt(s); err != nil {
		return err
	}
	ln.backlog <- s
	return nil
}
