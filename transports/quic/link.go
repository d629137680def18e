package quic

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// Link is one astranet link over QUIC: a net.Conn over one bidirectional QUIC
// stream, which has its QUIC connection to itself. Dial and the listener's
// Accept return a *Link as their net.Conn.
//
// Read, Write and the deadline methods act on the stream. Errors from the
// peer or the path (reset, connection close, idle timeout) are quic-go's
// error types; after Close, Read and Write fail with an error that wraps
// net.ErrClosed.
type Link struct {
	qconn  *quicgo.Conn
	stream *quicgo.Stream
	linger time.Duration // how long Close waits for the peer before closing the connection

	// peerClosed is closed when the peer's FIN or RESET_STREAM arrives. A
	// Link has no half-close, so that happens only when the peer's Link is
	// closed: from then on the peer wants nothing more from this end.
	peerClosed chan struct{}

	release func()        // gives back the UDP socket (or the link's hold on the listener's)
	cut     chan struct{} // closed to end the linger at once (CloseWait)
	cutOnce sync.Once
	done    chan struct{} // closed when closeConnection is over

	mu      sync.Mutex
	closed  bool
	writing int // Writes in progress; Close must not gracefully close the stream under them
}

func newLink(qconn *quicgo.Conn, stream *quicgo.Stream, linger time.Duration, release func()) *Link {
	l := &Link{qconn: qconn, stream: stream, linger: linger, peerClosed: make(chan struct{}),
		release: release, cut: make(chan struct{}), done: make(chan struct{})}
	// Called at most once, from quic-go's event loop or right here.
	stream.SetReceiveFinalSizeCallback(func(int64) { close(l.peerClosed) })
	return l
}

// Read reads from the link's stream. It returns io.EOF once the peer has
// closed the link and everything it wrote has been read. Other errors are
// *net.OpError values wrapping quic-go's (a deadline's wraps
// os.ErrDeadlineExceeded).
func (l *Link) Read(p []byte) (int, error) {
	if l.isClosed() {
		return 0, l.opError("read", net.ErrClosed)
	}
	n, err := l.stream.Read(p)
	if err != nil && err != io.EOF {
		if l.isClosed() {
			err = net.ErrClosed
		}
		err = l.opError("read", err)
	}
	return n, err
}

// Write writes to the link's stream. It blocks while the peer's flow-control
// window is full. Errors are *net.OpError values wrapping quic-go's.
func (l *Link) Write(p []byte) (int, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, l.opError("write", net.ErrClosed)
	}
	l.writing++
	l.mu.Unlock()

	n, err := l.stream.Write(p)

	l.mu.Lock()
	l.writing--
	closed := l.closed
	l.mu.Unlock()
	if err != nil {
		if closed {
			err = net.ErrClosed
		}
		err = l.opError("write", err)
	}
	return n, err
}

// Close closes the link and unblocks pending Read and Write. It does not
// wait: what was written before Close is still delivered in the background
// (the peer then reads io.EOF), and the QUIC connection is closed once the
// peer has closed its end too, or at most MaxIdleTimeout after Close. What
// the peer sends after Close is never read; its Writes fail once the
// connection is closed.
//
// A Write still in progress when Close is called is aborted instead, and the
// peer sees the stream reset rather than io.EOF.
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return l.opError("close", net.ErrClosed)
	}
	l.closed = true
	writing := l.writing > 0
	// Unblock a pending Read. Not CancelRead: the peer would answer its
	// STOP_SENDING with a RESET_STREAM, which would look like the peer
	// closing (see peerClosed) while it may still be reading.
	l.stream.SetReadDeadline(time.Unix(1, 0))
	l.mu.Unlock()

	if writing {
		// quic-go's Stream.Close must not run concurrently with Write, and
		// a Write blocked on flow control would not return otherwise.
		l.stream.CancelWrite(0)
	} else {
		l.stream.Close() // FIN after the data already written
	}
	go l.closeConnection()
	return nil
}

// closeConnection closes the QUIC connection once both ends have closed the
// link. Closing it earlier would cut off data still in flight to the peer;
// once the peer has closed, it wants none. Whichever end closes second sends
// CONNECTION_CLOSE, which ends the first end's wait.
func (l *Link) closeConnection() {
	defer close(l.done)
	linger := time.NewTimer(l.linger)
	defer linger.Stop()
	select {
	case <-l.peerClosed:
	case <-l.qconn.Context().Done():
	case <-linger.C:
	case <-l.cut:
	}
	l.qconn.CloseWithError(codeClosed, "")
	l.release()
}

// CloseWait is Close, then waits until the link is done with the network:
// until the peer has closed its end too, and at most d, after which the
// connection is closed at once, dropping what the peer has not yet
// acknowledged. When it returns, nothing the link started is running and
// the link's UDP socket (or its hold on the listener's) is given back.
// astranet core closes its links with it, so that a node's Close stops
// everything.
func (l *Link) CloseWait(d time.Duration) error {
	err := l.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil // closed before: wait for that close
	}
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
		l.cutOnce.Do(func() { close(l.cut) })
		<-l.done
	}
	return err
}

// LocalAddr returns the local UDP address of the link's QUIC connection.
func (l *Link) LocalAddr() net.Addr { return l.qconn.LocalAddr() }

// RemoteAddr returns the peer's UDP address.
func (l *Link) RemoteAddr() net.Addr { return l.qconn.RemoteAddr() }

// SetDeadline sets the read and write deadlines; see net.Conn. An expired
// deadline makes Read and Write fail with an error that wraps
// os.ErrDeadlineExceeded.
func (l *Link) SetDeadline(t time.Time) error {
	return l.setDeadline(t, l.stream.SetDeadline)
}

// SetReadDeadline sets the deadline for Read; see net.Conn.
func (l *Link) SetReadDeadline(t time.Time) error {
	return l.setDeadline(t, l.stream.SetReadDeadline)
}

// SetWriteDeadline sets the deadline for Write; see net.Conn.
func (l *Link) SetWriteDeadline(t time.Time) error {
	return l.setDeadline(t, l.stream.SetWriteDeadline)
}

// setDeadline runs set unless the link is closed: Close's expired read
// deadline, which unblocks Read, must stay.
func (l *Link) setDeadline(t time.Time, set func(time.Time) error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.opError("set deadline", net.ErrClosed)
	}
	return set(t)
}

// QUICConn returns the QUIC connection that carries the link, for its TLS
// state (ConnectionState), statistics (ConnectionStats) or Context. The
// connection belongs to the link: closing it closes the link abruptly, and
// opening other streams on it is not supported.
func (l *Link) QUICConn() *quicgo.Conn { return l.qconn }

func (l *Link) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *Link) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "quic", Source: l.LocalAddr(), Addr: l.RemoteAddr(), Err: err}
}
