package core

import (
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/astranet-go/astranet/core/wire"
)

// Stream is one astranet stream: a complete net.Conn. It has no goroutine and,
// unless a deadline is set, no timer of its own; the link's reader and writer
// move its bytes.
//
// Its fields are ordered and sized for a million idle streams: what only some
// streams need (a condition variable to wait on, deadlines, a router's relay)
// lives in an extra allocated on first use.
type Stream struct {
	link   *link
	id     uint32
	state  streamState
	dialed bool // this end opened the stream; never changes

	// Under link.mu: the writer's ready list.
	inReady bool
	next    *Stream

	mu  sync.Mutex
	err error // why the stream is broken (reset, link lost); nil while healthy

	opened chan struct{} // dialler only: closed on ACCEPT or RESET

	recvWindow  uint32 // current window granted to the peer
	recvUnacked uint32 // bytes read but not yet returned
	recvAvail   int64  // credit the peer still holds
	recvEpoch   int64  // link clock at the last credit update, for auto-tuning

	sendCredit int64

	peer      NodeID // the node at the far end
	localPort uint32
	peerPort  uint32
	service   string // the name dialled (dialed) or the listener's name

	q *streamQueues // under mu; nil until the first byte either way
	x *streamExtra  // under mu; nil until needed
}

// streamQueues holds a stream's bytes in both directions; an idle stream
// has none.
type streamQueues struct {
	recv queue // received, not yet read
	send queue // written, not yet sent
}

// queues returns s.q, making it on first use. Caller holds s.mu.
func (s *Stream) queues() *streamQueues {
	if s.q == nil {
		s.q = new(streamQueues)
	}
	return s.q
}

// recvLen and sendLen are the bytes queued each way. Caller holds s.mu.
func (s *Stream) recvLen() int {
	if s.q == nil {
		return 0
	}
	return s.q.recv.n
}

// dropEmptyQueues lets go of the queues once both are empty, so that a stream
// that goes idle costs what a stream that never spoke does. Caller holds s.mu.
func (s *Stream) dropEmptyQueues() {
	if s.q != nil && s.q.recv.n == 0 && s.q.send.n == 0 && s.q.recv.head == nil && s.q.send.head == nil {
		s.q = nil
	}
}

func (s *Stream) sendLen() int {
	if s.q == nil {
		return 0
	}
	return s.q.send.n
}

// streamExtra holds what only some streams need.
type streamExtra struct {
	cond sync.Cond
	dl   deadlines
	// A Read waiting on an empty queue lends its buffer (rbuf, while rbusy)
	// so that the link's reader copies the next bytes straight into it,
	// rather than into the queue and out again; rn is how many it copied.
	rbuf  []byte
	rn    int
	rbusy bool
	// A Write blocked on a busy link lends its p to the send queue as wchunk
	// rather than copy it (writeLent); wlent is how much of it the link still
	// references. (Writes take turns: there is one wchunk per stream.)
	wchunk chunk
	wlent  int
	turns  int // Writes waiting for the one in progress to end
	// relay, on a router, is the other half of a forwarded circuit: bytes that
	// arrive here are sent on by relay, and credit goes back upstream only as
	// relay sends them on. Set before the stream is published; never changes.
	relay *Stream
}

type streamState uint16

const (
	stAccepted    streamState = 1 << iota // the open completed
	stFinQueued                           // CloseWrite: send FIN after the queue
	stFinSent                             // the writer sent FIN (or gave up sending)
	stRecvFin                             // the peer's FIN arrived
	stClosed                              // Close: the application is done with it
	stResetAfter                          // Close before the peer's FIN: RESET follows FIN
	stDone                                // removed from the link
	stWrote                               // the application has written
	stInteractive                         // a Read waited after a write: small writes go out at once
	stHasRead                             // a Read has returned data
	stWriting                             // a Write is in progress; others wait their turn
)

type deadlines struct {
	read, write    time.Time
	rtimer, wtimer *time.Timer
}

var _ net.Conn = (*Stream)(nil)

// extra returns s.x, making it on first use. Caller holds s.mu.
func (s *Stream) extra() *streamExtra {
	if s.x == nil {
		s.x = &streamExtra{}
		s.x.cond.L = &s.mu
	}
	return s.x
}

// relay returns the other half of a forwarded circuit, or nil. Caller holds
// s.mu (or owns s before it is published).
func (s *Stream) relay() *Stream {
	if s.x == nil {
		return nil
	}
	return s.x.relay
}

func (s *Stream) wait() { s.extra().cond.Wait() }

// wake wakes every goroutine waiting on s. Caller holds s.mu.
func (s *Stream) wake() {
	if s.x != nil {
		s.x.cond.Broadcast()
	}
}

// dl returns the deadlines, or nil if none was ever set. Caller holds s.mu.
func (s *Stream) dl() *deadlines {
	if s.x == nil {
		return nil
	}
	return &s.x.dl
}

func (s *Stream) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "astranet", Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: err}
}

// Read reads data the peer sent. After the peer's CloseWrite and once the
// buffer is drained it returns io.EOF.
func (s *Stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	lent := false // p is lent to the link's reader (s.x.rbuf)
	for {
		if lent && s.x.rn > 0 {
			// The reader copied bytes straight into p; anything after them
			// is in the queue, for the next call.
			n := s.x.rn
			s.x.rbuf, s.x.rn, s.x.rbusy = nil, 0, false
			inc := s.consumed(n)
			s.mu.Unlock()
			s.link.returnCredit(s, n, inc)
			return n, nil
		}
		if lent {
			s.x.rbuf, s.x.rbusy = nil, false
			lent = false
		}
		if s.recvLen() > 0 {
			if len(p) == 0 {
				s.mu.Unlock()
				return 0, nil
			}
			n := s.q.recv.read(p)
			s.dropEmptyQueues()
			s.state |= stHasRead
			inc := s.consumed(n)
			s.mu.Unlock()
			s.link.buffered.Add(-int64(n))
			s.link.returnCredit(s, n, inc)
			return n, nil
		}
		switch {
		case s.state&stClosed != 0:
			s.mu.Unlock()
			return 0, s.opErr("read", net.ErrClosed)
		case s.state&stRecvFin != 0:
			s.link.interrupt(s) // nothing more to read: the socket goes back now
			s.mu.Unlock()
			return 0, io.EOF
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return 0, s.opErr("read", err)
		case s.x != nil && !s.x.dl.read.IsZero() && !time.Now().Before(s.x.dl.read):
			s.mu.Unlock()
			return 0, s.opErr("read", os.ErrDeadlineExceeded)
		}
		if len(p) == 0 {
			s.mu.Unlock()
			return 0, nil // as net.TCPConn: a zero-length Read never waits
		}
		if s.state&stWrote != 0 {
			// Waiting for a reply to what it wrote: request and response.
			s.state |= stInteractive
		}
		if x := s.extra(); !x.rbusy && s.state&stHasRead != 0 {
			// One waiting Read at a time lends its buffer, once the stream
			// has been read from: the buffer is then likely reused, and
			// warm. (The link's one reader should not take the page faults
			// of a million fresh buffers.)
			x.rbuf, x.rbusy = p, true
			lent = true
		}
		if lent && s.link.leads(s) {
			// This Read holds the socket (handover.go): it reads the next
			// frame itself rather than wait for the link's reader.
			dl := s.x.dl.read
			s.mu.Unlock()
			s.link.lead(s, dl)
			s.mu.Lock()
			continue
		}
		if lent {
			s.link.want(s)
		}
		s.wait()
	}
}

// consumed records n bytes read by the application and returns the credit to
// send back now (0: not yet). Caller holds s.mu.
func (s *Stream) consumed(n int) uint32 {
	s.recvUnacked += uint32(n)
	if s.recvUnacked < s.recvWindow/2 || s.state&(stRecvFin|stDone) != 0 {
		return 0
	}
	inc := s.recvUnacked
	s.recvUnacked = 0
	// Auto-tune: a window consumed in under two round trips limits throughput,
	// so grant twice as much, up to the maximum.
	now := s.link.now()
	cfg := &s.link.node.cfg
	if rtt := s.link.rtt(); rtt > 0 && s.recvWindow < cfg.MaxStreamWindow && time.Duration(now-s.recvEpoch) < 2*rtt {
		grow := min(s.recvWindow, cfg.MaxStreamWindow-s.recvWindow)
		s.recvWindow += grow
		inc += grow
	}
	s.recvEpoch = now
	s.recvAvail += int64(inc)
	return inc
}

// Write sends p to the peer. It returns once all of p is queued, or handed to
// the kernel; it blocks while the stream's send buffer is full. On TCP and
// Unix links a Write of 16 KiB or more bypasses the send buffer: it lends p
// to the link, without a copy, and returns once the link's writer has taken
// it, having handed the kernel what it would take at once and copied the
// rest. It never waits on a full socket with p lent, so a write deadline
// keeps its meaning.
//
// Concurrent Writes take turns, as on a net.TCPConn: the bytes of one never
// interleave with another's.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	for s.state&stWriting != 0 {
		// One Write at a time, as on a net.TCPConn: concurrent Writes do
		// not interleave their bytes.
		if err := s.writeFailed(); err != nil {
			s.mu.Unlock()
			return 0, err
		}
		x := s.extra()
		x.turns++
		s.wait()
		x.turns--
	}
	s.state |= stWriting
	n, err := s.write(p)
	s.state &^= stWriting
	if s.x != nil && s.x.turns > 0 {
		s.wake() // a Write waits its turn (only then: a waiting Read would wake for nothing)
	}
	s.mu.Unlock()
	return n, err
}

// writeFailed is the error a Write on s returns now, if any: the stream is
// closed, has failed, or is past its write deadline. Caller holds s.mu.
func (s *Stream) writeFailed() error {
	switch {
	case s.state&stClosed != 0:
		return s.opErr("write", net.ErrClosed)
	case s.err != nil:
		return s.opErr("write", s.err)
	case s.x != nil && !s.x.dl.write.IsZero() && !time.Now().Before(s.x.dl.write):
		return s.opErr("write", os.ErrDeadlineExceeded)
	}
	return nil
}

// write is Write for the goroutine whose turn it is. Caller holds s.mu, and
// holds it again on return.
func (s *Stream) write(p []byte) (int, error) {
	total := 0
	limit := s.link.node.cfg.SendBuffer
	for {
		if len(p) == 0 && total > 0 {
			// All queued: what happens to the stream afterwards is for the
			// next call to report.
			return total, nil
		}
		if s.state&(stClosed|stFinQueued) == stFinQueued {
			return total, s.opErr("write", ErrWriteClosed)
		}
		if err := s.writeFailed(); err != nil {
			return total, err
		}
		if len(p) == 0 {
			return total, nil
		}
		if s.sendLen() == 0 && s.sendCredit > 0 && (len(p) >= directMin || (s.state&stInteractive != 0 && len(p) <= smallWrite)) {
			// Nothing queued: a large write, or a short reply, may go to the
			// kernel straight from p if the link is idle.
			s.mu.Unlock()
			n := s.link.writeDirect(s, p)
			s.mu.Lock()
			if n > 0 {
				p, total = p[n:], total+n
				continue
			}
		}
		if len(p) >= directMin && s.sendLen() == 0 && s.link.raw != nil {
			n, err := s.writeLent(p)
			p, total = p[n:], total+n
			if err != nil {
				return total, err
			}
			continue
		}
		space := limit - s.sendLen()
		if space <= 0 {
			s.wait()
			continue
		}
		k := min(space, len(p))
		s.queues().send.write(p[:k])
		p, total = p[k:], total+k
		s.state |= stWrote
		ready := s.sendCredit > 0
		// An interactive stream's short message goes out from this goroutine
		// when the link is idle; the rest waits for the writer, which
		// gathers many streams' frames (and a write and the Close after it)
		// in one write call.
		now := s.state&stInteractive != 0 && s.q.send.n <= smallWrite
		s.mu.Unlock()
		switch {
		case ready && now:
			s.link.sendNow(s)
		case ready:
			s.link.schedule(s)
		}
		s.mu.Lock()
	}
}

// writeLent queues p without copying it and waits until the link no longer
// needs it: until the writer has handed all of it to the kernel, or copied
// what the kernel would not take at once (settleLent). It is for large
// Writes while the link is busy, where a copy made now would leave the
// cache before the writer sent it. A Write that fails or reaches its
// deadline takes back what the writer has not taken. It returns how much of
// p was sent. Caller holds s.mu, and nothing is queued.
func (s *Stream) writeLent(p []byte) (int, error) {
	x := s.extra()
	c := &x.wchunk
	*c = chunk{buf: p, wr: len(p), lent: true}
	s.queues().send.push(c)
	x.wlent = len(p)
	s.state |= stWrote
	s.link.lends.Add(1)
	if s.sendCredit > 0 {
		s.mu.Unlock()
		s.link.schedule(s)
		s.mu.Lock()
	}
	var err error
	for x.wlent > 0 {
		if err = s.writeFailed(); err != nil {
			break
		}
		s.wait()
	}
	if err != nil {
		// Take back the bytes the writer has not taken; those it has are
		// released as soon as its write call returns.
		if s.q != nil {
			s.q.send.remove(c)
		}
		x.wlent -= c.wr - c.rd
		c.wr = c.rd
		for x.wlent > 0 {
			s.wait()
		}
		if s.finDue() {
			// A Close that came while the writer still had bytes to take
			// left the FIN behind them; those are gone now.
			s.mu.Unlock()
			s.link.schedule(s)
			s.mu.Lock()
		}
	}
	n := c.rd
	if n == len(p) {
		err = nil // the writer had taken it all: it is sent like any other
	}
	*c = chunk{}
	return n, err
}

// CloseWrite half-closes the stream: the peer reads what was written, then
// io.EOF. Reading goes on. A second CloseWrite does nothing; after Close it
// fails with net.ErrClosed, as on a net.TCPConn.
func (s *Stream) CloseWrite() error {
	s.mu.Lock()
	if s.state&stClosed != 0 {
		s.mu.Unlock()
		return s.opErr("close", net.ErrClosed)
	}
	if s.state&stFinQueued != 0 {
		s.mu.Unlock()
		return nil
	}
	s.state |= stFinQueued
	s.wake()
	s.mu.Unlock()
	s.link.schedule(s)
	return nil
}

// Close closes both directions. Written data is still delivered, then FIN;
// if the peer has not finished writing, a reset follows so that its writes
// fail rather than fill a buffer nobody reads. Blocked Read and Write return.
//
// Written data that waits for the peer's credit when Close is called is
// dropped, and the stream reset at once, if received bytes are left unread
// (as TCP does) or arrive after Close while the peer is still sending: that
// peer may be blocked writing, not reading, and the credit would never come.
// The peer's Write and Read then fail with ErrReset. Written data that the
// credit covers still goes, then FIN.
//
// A second Close fails with net.ErrClosed, as on a net.TCPConn.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.state&stClosed != 0 {
		s.mu.Unlock()
		return s.opErr("close", net.ErrClosed)
	}
	s.state |= stClosed | stFinQueued
	s.link.interrupt(s)
	if s.state&stRecvFin == 0 {
		s.state |= stResetAfter
	}
	n := s.dropRecv()
	s.stopTimers()
	abortive := n > 0 && s.stuck() && s.state&(stRecvFin|stFinSent) == 0 && s.err == nil
	// A FIN that went before Close (CloseWrite) went without the RESET that
	// Close owes a peer still writing: it goes now.
	resetNow := !abortive && s.err == nil && s.state&(stResetAfter|stFinSent) == stResetAfter|stFinSent
	done := false
	if abortive {
		s.fail(net.ErrClosed)
	}
	if abortive || resetNow {
		done = s.finished()
	}
	s.wake()
	s.mu.Unlock()
	s.returnRecv(n)
	if abortive || resetNow {
		s.link.reset(s.id, wire.CodeCancelled)
		if done {
			s.link.mu.Lock()
			s.link.forget(s)
			s.link.mu.Unlock()
		}
		return nil
	}
	s.link.schedule(s)
	return nil
}

// LocalAddr returns this end's node and port (an Addr), with the service
// name if this end is a listener's.
func (s *Stream) LocalAddr() net.Addr {
	a := Addr{Node: s.link.node.id, Port: s.localPort}
	if !s.dialed {
		a.Service = s.service
	}
	return a
}

// RemoteAddr returns the far end's node and port (an Addr), with the service
// name this end dialled, if any.
func (s *Stream) RemoteAddr() net.Addr {
	a := Addr{Node: s.peer, Port: s.peerPort}
	if s.dialed {
		a.Service = s.service
	}
	return a
}

// SetDeadline sets both the read and the write deadline. On a closed stream
// it, SetReadDeadline and SetWriteDeadline fail with net.ErrClosed.
func (s *Stream) SetDeadline(t time.Time) error {
	if err := s.SetReadDeadline(t); err != nil {
		return err
	}
	return s.SetWriteDeadline(t)
}

// SetReadDeadline makes Read fail with os.ErrDeadlineExceeded at t; the zero
// time clears it.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state&stClosed != 0 {
		return s.opErr("set", net.ErrClosed)
	}
	d := s.deadlines()
	d.read = t
	d.rtimer = s.arm(d.rtimer, t)
	s.link.interrupt(s) // a Read holding the socket reads under the old deadline
	return nil
}

// SetWriteDeadline makes Write fail with os.ErrDeadlineExceeded at t; the zero
// time clears it.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state&stClosed != 0 {
		return s.opErr("set", net.ErrClosed)
	}
	d := s.deadlines()
	d.write = t
	d.wtimer = s.arm(d.wtimer, t)
	return nil
}

func (s *Stream) deadlines() *deadlines { return &s.extra().dl }

// arm replaces timer with one that wakes the stream's waiters at t.
func (s *Stream) arm(timer *time.Timer, t time.Time) *time.Timer {
	if timer != nil {
		timer.Stop()
		timer = nil
	}
	s.wake() // waiters re-check against the new deadline
	if t.IsZero() || s.state&stClosed != 0 {
		return nil
	}
	if d := time.Until(t); d > 0 {
		timer = time.AfterFunc(d, func() {
			s.mu.Lock()
			s.wake()
			s.mu.Unlock()
		})
	}
	return timer
}

func (s *Stream) stopTimers() {
	d := s.dl()
	if d == nil {
		return
	}
	if d.rtimer != nil {
		d.rtimer.Stop()
	}
	if d.wtimer != nil {
		d.wtimer.Stop()
	}
}

// fail breaks the stream with err: buffered bytes stay readable, then Read
// returns err; Write returns err at once. Caller holds s.mu.
//
// It returns the bytes it dropped from a forwarded circuit's send queue: they
// came in on the other half's link, which the caller must credit for them
// (s.relay().returnRecv) once it has let go of s.mu.
func (s *Stream) fail(err error) (relayed int) {
	if s.err == nil {
		s.err = err
	}
	if s.q != nil {
		if s.relay() != nil {
			relayed = s.q.send.n
		}
		// Dropped, not given back to the pools: the link's writer may be
		// sending from part of a chunk right now.
		s.q.send = queue{}
	}
	s.state |= stFinSent
	s.link.interrupt(s)
	if s.opened != nil {
		select {
		case <-s.opened:
		default:
			close(s.opened)
		}
	}
	s.wake()
	return relayed
}

// dropRecv frees what s received and nobody will read. Caller holds s.mu;
// the returned count is for returnRecv.
func (s *Stream) dropRecv() int {
	n := s.recvLen()
	if s.q != nil {
		s.q.recv.free()
		s.dropEmptyQueues()
	}
	return n
}

// returnRecv gives s's link the credit of n bytes it received that were
// dropped unread: from s's queue (dropRecv), or, for the far half of a
// forwarded circuit, from the half that was to send them on (fail). Called
// without s.mu.
func (s *Stream) returnRecv(n int) {
	if n > 0 {
		s.link.buffered.Add(-int64(n))
		s.link.returnCredit(nil, n, 0)
	}
}

// stuck reports whether some written bytes wait for stream credit: only the
// peer's reading can send them. Caller holds s.mu.
func (s *Stream) stuck() bool {
	return int64(s.sendLen()) > s.sendCredit
}

// finished reports, once, whether the link is done with s: nothing more to
// send (FIN sent, or broken) and nothing more to receive (FIN received, broken,
// or reset by our Close). Caller holds s.mu.
func (s *Stream) finished() bool {
	if s.state&stDone != 0 {
		return false
	}
	sendDone := s.state&stFinSent != 0 || s.err != nil
	recvDone := s.state&stRecvFin != 0 || s.err != nil ||
		s.state&(stResetAfter|stFinSent) == stResetAfter|stFinSent
	if sendDone && recvDone {
		s.state |= stDone
		return true
	}
	return false
}
