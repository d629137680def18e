package pipe

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultBufferSize is how many bytes each direction of a pipe buffers before
// Write blocks. It is large enough that a writer seldom waits for its reader,
// and small enough that a pipe's memory stays bounded.
const DefaultBufferSize = 256 << 10

// firstBufferSize is the capacity a direction starts with on its first Write;
// it doubles as needed up to the pipe's bound, so idle pipes stay small.
const firstBufferSize = 4 << 10

// Addr is the address of one end of a pipe: a name. Its Network is "pipe".
type Addr string

// Network returns "pipe".
func (Addr) Network() string { return "pipe" }

// String returns the name.
func (a Addr) String() string { return string(a) }

// Pipe returns the two ends of a buffered, full-duplex, in-memory connection:
// what is written to one end is read from the other. Each direction buffers up
// to DefaultBufferSize bytes; a Write blocks only while the buffer is full.
//
// Both ends are complete net.Conn values: they support deadlines, concurrent
// Read and Write, and Close, which unblocks pending calls on both ends. After
// one end closes, the other reads the data still buffered and then io.EOF, and
// its writes fail with an error wrapping io.ErrClosedPipe. Each end also has a
// CloseWrite method that half-closes it: the other end reads io.EOF after the
// data already written, and both ends may go on sending the other way.
// Both addresses are Addr("pipe").
func Pipe() (net.Conn, net.Conn) {
	return newPipe(DefaultBufferSize, Addr("pipe"), Addr("pipe"))
}

// newPipe returns the two ends of a pipe whose directions each buffer up to
// size bytes; a is named addrA and b addrB.
func newPipe(size int, addrA, addrB Addr) (a, b *conn) {
	ab := newDirection(size)
	ba := newDirection(size)
	a = &conn{rx: ba, tx: ab, local: addrA, remote: addrB}
	b = &conn{rx: ab, tx: ba, local: addrB, remote: addrA}
	return a, b
}

// conn is one end of a pipe.
type conn struct {
	rx     *direction // what this end reads
	tx     *direction // what this end writes
	local  Addr
	remote Addr
	closed atomic.Bool
}

// Read reads buffered data, waiting for some if there is none.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.rx.read(p)
	if err != nil && err != io.EOF {
		err = c.opError("read", err)
	}
	return n, err
}

// Write copies p into the buffer, waiting for room while it is full.
func (c *conn) Write(p []byte) (int, error) {
	n, err := c.tx.write(p)
	if err != nil {
		err = c.opError("write", err)
	}
	return n, err
}

// Close closes both directions of this end and unblocks every pending call.
func (c *conn) Close() error {
	if c.closed.Swap(true) {
		return c.opError("close", net.ErrClosed)
	}
	c.rx.closeReader()
	c.tx.closeWriter()
	return nil
}

// CloseWrite half-closes this end: the other end reads io.EOF once it has
// drained what was written; reading from this end goes on working.
func (c *conn) CloseWrite() error {
	if c.closed.Load() {
		return c.opError("close", net.ErrClosed)
	}
	c.tx.closeWriter()
	return nil
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *conn) SetReadDeadline(t time.Time) error {
	if !c.rx.setReadDeadline(t) {
		return c.opError("set", net.ErrClosed)
	}
	return nil
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	if !c.tx.setWriteDeadline(t) && c.closed.Load() {
		// After CloseWrite alone the conn is still open, as a TCP conn is:
		// the deadline has no Write to bound, and that is no error.
		return c.opError("set", net.ErrClosed)
	}
	return nil
}

func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "pipe", Source: c.local, Addr: c.remote, Err: err}
}

// direction is one way of a pipe: a bounded ring buffer that one end writes
// and the other reads, with the reader's and the writer's deadlines. One mutex
// guards it all, so a deadline or a close can wake a waiting call without a
// goroutine of its own.
type direction struct {
	mu       sync.Mutex
	readable sync.Cond // data arrived, the writer closed, or the read deadline passed
	writable sync.Cond // room appeared, the reader closed, or the write deadline passed

	buf  []byte // ring buffer; grows by doubling up to max
	head int    // index of the first unread byte
	n    int    // unread bytes
	max  int

	readerClosed bool // the reading end closed: writes fail
	writerClosed bool // the writing end closed: reads drain, then io.EOF

	readDeadline  deadline
	writeDeadline deadline
}

// deadline is one deadline of a direction. Its timer exists only once a
// deadline has been set, and is stopped when the deadline is cleared.
type deadline struct {
	at      time.Time
	expired bool
	timer   *time.Timer
}

func newDirection(size int) *direction {
	d := &direction{max: size}
	d.readable.L = &d.mu
	d.writable.L = &d.mu
	return d
}

func (d *direction) read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		switch {
		case d.readerClosed:
			return 0, net.ErrClosed
		case d.readDeadline.expired:
			return 0, os.ErrDeadlineExceeded
		case len(p) == 0:
			return 0, nil
		case d.n > 0:
			n := d.take(p)
			d.writable.Broadcast()
			return n, nil
		case d.writerClosed:
			return 0, io.EOF
		}
		d.readable.Wait()
	}
}

func (d *direction) write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	written := 0
	for {
		switch {
		case d.writerClosed:
			return written, net.ErrClosed
		case d.readerClosed:
			return written, io.ErrClosedPipe
		case written == len(p):
			return written, nil
		case d.writeDeadline.expired:
			return written, os.ErrDeadlineExceeded
		case d.n < d.max:
			written += d.put(p[written:])
			d.readable.Broadcast()
			continue
		}
		d.writable.Wait()
	}
}

// take moves up to len(p) unread bytes into p. p and the buffer are not empty.
func (d *direction) take(p []byte) int {
	k := min(len(p), d.n)
	c := copy(p[:k], d.buf[d.head:])
	copy(p[c:k], d.buf)
	d.head = (d.head + k) % len(d.buf)
	d.n -= k
	if d.n == 0 {
		d.head = 0 // keep the next writes contiguous
	}
	return k
}

// put copies as much of p as fits into the buffer, growing it if it may.
func (d *direction) put(p []byte) int {
	if len(d.buf)-d.n < len(p) && len(d.buf) < d.max {
		d.grow(d.n + len(p))
	}
	k := min(len(p), len(d.buf)-d.n)
	tail := (d.head + d.n) % len(d.buf)
	c := copy(d.buf[tail:], p[:k])
	copy(d.buf, p[c:k])
	d.n += k
	return k
}

// grow enlarges the buffer to hold at least need bytes, or to max.
func (d *direction) grow(need int) {
	size := max(2*len(d.buf), firstBufferSize)
	for size < need {
		size *= 2
	}
	size = min(size, d.max)
	buf := make([]byte, size)
	c := copy(buf, d.buf[d.head:min(d.head+d.n, len(d.buf))])
	copy(buf[c:d.n], d.buf)
	d.buf, d.head = buf, 0
}

func (d *direction) closeReader() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.readerClosed = true
	d.buf, d.head, d.n = nil, 0, 0 // nobody will read it
	d.readDeadline.stop()
	d.readable.Broadcast()
	d.writable.Broadcast()
}

func (d *direction) closeWriter() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writerClosed = true
	d.writeDeadline.stop()
	d.readable.Broadcast()
	d.writable.Broadcast()
}

// setReadDeadline reports false if the reading end is closed.
func (d *direction) setReadDeadline(t time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.readerClosed {
		return false
	}
	d.set(&d.readDeadline, &d.readable, t)
	return true
}

// setWriteDeadline reports false if the writing end is closed.
func (d *direction) setWriteDeadline(t time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.writerClosed {
		return false
	}
	d.set(&d.writeDeadline, &d.writable, t)
	return true
}

// set moves dl to t, waking the calls waiting on cond if t has passed.
// d.mu is held.
func (d *direction) set(dl *deadline, cond *sync.Cond, t time.Time) {
	dl.stop()
	dl.expired = false
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		dl.expired = true
		cond.Broadcast()
		return
	}
	dl.at = t
	if dl.timer == nil {
		dl.timer = time.AfterFunc(wait, func() { d.expire(dl, cond) })
	} else {
		dl.timer.Reset(wait)
	}
}

// expire runs when dl's timer fires. The timer may be stale (the deadline
// moved while it fired), so it checks the deadline again and re-arms if it
// has not yet passed.
func (d *direction) expire(dl *deadline, cond *sync.Cond) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dl.at.IsZero() || dl.expired {
		return
	}
	if wait := time.Until(dl.at); wait > 0 {
		dl.timer.Reset(wait)
		return
	}
	dl.expired = true
	cond.Broadcast()
}

// stop disarms dl's timer; a stale run of it then finds no deadline to act on.
func (dl *deadline) stop() {
	dl.at = time.Time{}
	if dl.timer != nil {
		dl.timer.Stop()
	}
}
