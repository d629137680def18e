package core

import (
	"errors"
	"net"
	"os"
	"time"
)

// The socket hand-over.
//
// A link's reader goroutine reads every frame and wakes the stream's Read
// that the bytes are for. With one busy stream (a bulk download, a
// request/response exchange), that is a hand-off between goroutines for
// every read, and on a machine whose cores are busy with other work each
// hand-off needs a thread woken for the goroutine: raw TCP's reader, woken
// by the network poller on the thread that polls, does not pay that.
//
// So when the link's reader has nothing buffered, the stream it has fed
// several frames in a row has a Read waiting, it hands the socket to that
// Read and parks; a Read of that stream that comes to wait while the reader
// is blocked on the socket (request and response) asks for it, with a past
// read deadline that wakes the reader (want). The Read (the leader) then reads the socket itself, under
// its own deadline, for as long as what arrives is DATA for its stream. It
// gives the socket back when a frame for anything else arrives (unread, for
// the link's reader), when its stream is closed, fails or has its read
// deadline changed (each interrupts a blocked read with a past deadline on
// the connection), on a read error, and when its application has not come
// back to Read within handOverIdle: the link's other circuits and control
// frames never wait longer than that for a busy application.
//
// Only links over a TCP or Unix socket hand over: the interruption needs a
// connection read deadline, and the other transports have their own
// reader goroutines under the link's anyway.

// handOverStreak is how many DATA frames in a row for one stream the link's
// reader delivers before it hands the socket to that stream's Read.
const handOverStreak = 64

// handOverIdle is how long a leader whose application is not in Read keeps
// the socket before the link's reader takes it back.
const handOverIdle = time.Millisecond

// errNotMine stops a leader at a frame that is not DATA for its stream.
var errNotMine = errors.New("astranet: frame for the link's reader")

// handOver gives the socket to s's waiting Read, if s is eligible, and
// reports whether it did. Called by the link's reader, with nothing
// buffered.
func (l *link) handOver(s *Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.x
	if x == nil || x.rbuf == nil || x.relay != nil || s.state&(stClosed|stRecvFin) != 0 || s.err != nil {
		return false
	}
	l.rmu.Lock()
	l.leader, l.lactive, l.lkick, l.rwant = s, false, false, false
	l.leading.Store(s)
	// The Read woken may not come to read the socket (its deadline passes
	// before it runs, say, and it returns): the socket then goes back as
	// from a leader whose application went away.
	l.lidle.Reset(handOverIdle)
	l.rmu.Unlock()
	l.handOvers.Add(1)
	s.wake()
	return true
}

// want asks the link's reader, blocked on the socket, to hand it to s's
// waiting Read: a request/response stream's Read comes to wait while the
// link's reader is already blocked, so the reader never finds it waiting.
// Only for the stream the reader has fed handOverStreak frames in a row.
// Caller holds s.mu.
func (l *link) want(s *Stream) {
	if l.rdl == nil || l.hot.Load() != s || !l.rblocked.Load() {
		return
	}
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if l.leader == nil && !l.rwant {
		l.rwant = true
		l.wants.Add(1)
		l.rdl.SetReadDeadline(aLongTimeAgo)
	}
}

// wanted reports, to the link's reader whose read failed with a deadline,
// whether that was want's doing; it clears the deadline if so.
func (l *link) wanted() bool {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if !l.rwant {
		return false
	}
	l.rwant = false
	l.rdl.SetReadDeadline(time.Time{})
	return true
}

// leads reports whether s's Read holds the socket. Caller holds s.mu.
func (l *link) leads(s *Stream) bool {
	return l.rdl != nil && l.leading.Load() == s
}

// lead reads frames from the socket for s's Read until one is DATA for s, or
// the socket goes back to the link's reader. dl is the Read's deadline. s.mu
// is not held.
func (l *link) lead(s *Stream, dl time.Time) {
	l.rmu.Lock()
	if l.leader != s {
		l.rmu.Unlock()
		return // taken back meanwhile
	}
	l.lactive = true
	l.lidle.Stop()
	if l.lkick {
		// Interrupted before it started: the cause is for the Read to see.
		l.lactive = false
		l.giveBack(nil)
		l.rmu.Unlock()
		return
	}
	// Under rmu: an interrupt's past deadline must not be overwritten.
	l.rdl.SetReadDeadline(dl)
	l.rmu.Unlock()
	err := l.readFrame(s)
	l.rmu.Lock()
	defer l.rmu.Unlock()
	l.lactive = false
	switch {
	case err == nil && !l.lkick:
		l.lidle.Reset(handOverIdle)
	case err == nil, errors.Is(err, errNotMine), errors.Is(err, os.ErrDeadlineExceeded):
		// Interrupted, the Read's deadline, or a frame for the link's reader:
		// nothing was consumed past the last whole frame.
		l.giveBack(nil)
	default:
		l.giveBack(err) // the link ends
	}
}

// giveBack returns the socket to the link's reader, with the error that ends
// the link, if any. Caller holds l.rmu; a leader exists.
func (l *link) giveBack(err error) {
	l.leader, l.lkick = nil, false
	l.leading.Store(nil)
	l.lback <- err
}

// reclaim takes the socket back from a leader whose application has not come
// back to Read (handOverIdle).
func (l *link) reclaim() {
	l.rmu.Lock()
	if l.leader != nil && !l.lactive {
		l.giveBack(nil)
	}
	l.rmu.Unlock()
}

// interrupt makes s's Read give the socket back, if it holds it, so that it
// sees what changed: Close, a failure, a new read deadline. Caller holds
// s.mu.
func (l *link) interrupt(s *Stream) {
	if l.rdl == nil || l.leading.Load() != s {
		return // s cannot come to lead meanwhile: handOver holds s.mu
	}
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if l.leader != s {
		return
	}
	if !l.lactive {
		l.giveBack(nil)
		return
	}
	l.lkick = true
	l.rdl.SetReadDeadline(aLongTimeAgo)
}

// interruptAny is interrupt for whichever stream leads: the link is ending.
func (l *link) interruptAny() {
	if l.rdl == nil {
		return
	}
	l.rmu.Lock()
	defer l.rmu.Unlock()
	switch {
	case l.leader == nil:
	case l.lactive:
		l.lkick = true
		l.rdl.SetReadDeadline(aLongTimeAgo)
	default:
		l.giveBack(nil)
	}
}

// takeBack clears what the leader left on the connection once the link's
// reader has the socket back: its read deadline, and a want that came
// meanwhile (the reader will look for a waiting Read itself).
func (l *link) takeBack() {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	l.rwant = false
	l.rdl.SetReadDeadline(time.Time{})
}

// aLongTimeAgo is a read deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// readDeadliner is what a link's connection needs for the hand-over.
func readDeadliner(conn any) interface{ SetReadDeadline(time.Time) error } {
	switch c := conn.(type) {
	case *net.TCPConn:
		return c
	case *net.UnixConn:
		return c
	}
	return nil
}
