package quic

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// listener is the net.Listener that Transport.Listen returns. One goroutine
// accepts QUIC connections; each connection then waits in a goroutine of its
// own (at most acceptBacklog of them) for its stream and for Accept, so a
// connection that never opens its stream holds up nobody.
type listener struct {
	ql               *quicgo.Listener
	sock             *socket
	handshakeTimeout time.Duration
	linger           time.Duration

	links   chan *Link    // unbuffered: the backlog is the waiting goroutines
	backlog chan struct{} // one token per connection not yet handed to Accept

	ctx    context.Context // cancelled by Close; stops the waiting goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup

	loopDone chan struct{} // closed when the accept loop ends
	loopErr  error         // why it ended; read after loopDone

	closeOnce sync.Once
}

func newListener(ql *quicgo.Listener, sock *socket, handshakeTimeout, linger time.Duration) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &listener{
		ql:               ql,
		sock:             sock,
		handshakeTimeout: handshakeTimeout,
		linger:           linger,
		links:            make(chan *Link),
		backlog:          make(chan struct{}, acceptBacklog),
		ctx:              ctx,
		cancel:           cancel,
		loopDone:         make(chan struct{}),
	}
	sock.hold() // the listener's own hold, dropped by Close
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept waits for and returns the next link.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case lk := <-l.links:
		return lk, nil
	case <-l.ctx.Done():
		return nil, l.opError("accept", net.ErrClosed)
	case <-l.loopDone:
		return nil, l.opError("accept", l.loopErr)
	}
}

// Close stops accepting links, refuses connections not yet accepted and waits
// for the listener's goroutines to end. Links already accepted carry on.
func (l *listener) Close() error {
	err := l.opError("close", net.ErrClosed)
	l.closeOnce.Do(func() {
		err = nil
		l.cancel()
		l.ql.Close()
		l.wg.Wait()
		l.sock.release()
	})
	return err
}

// Addr returns the listener's UDP address.
func (l *listener) Addr() net.Addr { return l.ql.Addr() }

func (l *listener) acceptLoop() {
	defer l.wg.Done()
	defer close(l.loopDone)
	for {
		// After Close, quic-go still hands over the connections it had
		// queued, then returns ErrServerClosed.
		qc, err := l.ql.Accept(context.Background())
		if err != nil {
			if errors.Is(err, quicgo.ErrServerClosed) {
				err = net.ErrClosed
			}
			l.loopErr = err
			return
		}
		l.sock.hold()
		release := sync.OnceFunc(l.sock.release) // when qc ends, or when its link is done (CloseWait)
		context.AfterFunc(qc.Context(), release)
		select {
		case l.backlog <- struct{}{}:
			l.wg.Add(1)
			go l.awaitLink(qc, release)
		default:
			qc.CloseWithError(codeRefused, "astranet: accept backlog full")
		}
	}
}

// awaitLink hands qc's first stream to Accept, or closes qc if that does not
// happen within the handshake timeout or before Close.
func (l *listener) awaitLink(qc *quicgo.Conn, release func()) {
	defer l.wg.Done()
	defer func() { <-l.backlog }()
	ctx, cancel := context.WithTimeout(l.ctx, l.handshakeTimeout)
	defer cancel()

	st, err := qc.AcceptStream(ctx)
	if err != nil {
		qc.CloseWithError(codeRefused, "astranet: no link stream in time")
		return
	}
	select {
	case l.links <- newLink(qc, st, l.linger, release):
	case <-ctx.Done():
		qc.CloseWithError(codeRefused, "astranet: link not accepted in time")
	}
}

func (l *listener) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "quic", Addr: l.Addr(), Err: err}
}

// socket is a listener's UDP socket and QUIC transport, shared by the
// listener and the connections it accepted, and closed when the last of them
// is done with it.
type socket struct {
	tr  *quicgo.Transport
	udp *net.UDPConn

	mu    sync.Mutex
	holds int
}

func (s *socket) hold() {
	s.mu.Lock()
	s.holds++
	s.mu.Unlock()
}

func (s *socket) release() {
	s.mu.Lock()
	s.holds--
	last := s.holds == 0
	s.mu.Unlock()
	if last {
		s.tr.Close()
		s.udp.Close()
	}
}
