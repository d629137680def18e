package core

import (
	"testing"
	"unsafe"

	"github.com/astranet-go/astranet/core/wire"
)

// fillLink is a link that is never run: enough for fill to build batches.
func fillLink() *link {
	l := &link{
		peer:       wire.Greeting{MaxFrame: 64 << 10},
		sendCredit: 1 << 30,
		streams:    make(map[uint32]*Stream),
	}
	l.w.hdrs = make([]byte, 0, (maxBatchFrames+1)*(wire.HeaderSize+4))
	return l
}

// queueWrite queues n bytes on s and puts it on l's ready lists, as a Write
// does.
func queueWrite(l *link, s *Stream, n int) {
	s.mu.Lock()
	s.queues().send.write(make([]byte, n))
	s.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.inReady {
		return // already waiting for its turn, as in schedule
	}
	s.inReady = true
	s.mu.Lock()
	small := s.sendLen() <= smallWrite
	s.mu.Unlock()
	l.list(small).pushBack(s)
}

// circuits lists the circuits of the DATA frames in one batch, in order.
func circuits(t *testing.T, w *batch) []uint32 {
	t.Helper()
	var ids []uint32
	for _, b := range w.bufs {
		if len(b) != wire.HeaderSize {
			continue // a payload
		}
		h, err := wire.ParseHeader(b, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.Circuit)
	}
	return ids
}

// A stream that joined the short-message list with a byte or two and then
// queued bulk behind it must not keep the short list's priority: busyecho
// saw every one of 10k bulk streams cycle through that list (each write
// started with a 1-byte header, and each turn left it 1 byte), and a 64-byte
// echo wait 800 ms behind them.
func TestShortMessageAheadOfGrownStreams(t *testing.T) {
	l := fillLink()
	const bulk = 40
	for i := range bulk {
		s := &Stream{link: l, id: uint32(2 * (i + 1)), sendCredit: 1 << 20}
		queueWrite(l, s, 1)       // a header: short, so it joins l.small
		queueWrite(l, s, 128<<10) // then the body, while it waits its turn
	}
	short := &Stream{link: l, id: 999, sendCredit: 1 << 20}
	queueWrite(l, short, 64)

	l.mu.Lock()
	l.w.reset(nil)
	l.fill(&l.w)
	got := circuits(t, &l.w)
	l.mu.Unlock()
	if len(got) == 0 || got[0] != short.id {
		t.Fatalf("first batch carries circuits %v; the short message (circuit %d) should go first", got, short.id)
	}
	// The grown streams are served in turn afterwards, one turn each (a
	// turn's frames are adjacent; it makes one per queued chunk).
	seen := map[uint32]bool{}
	for i, id := range got[1:] {
		if got[i] == id {
			continue // the same turn
		}
		if seen[id] {
			t.Fatalf("circuit %d has two turns in one batch %v", id, got)
		}
		seen[id] = true
	}
	if len(got) < 2 {
		t.Fatalf("first batch %v carries no bulk", got)
	}
}

// A stream that fails while the writer holds a batch with part of one of its
// chunks (the writer took less than the chunk, for want of credit) must not
// give that chunk back to the pool: another stream could fill it before the
// writer's writev, and the peer would read those bytes on this circuit.
func TestFailKeepsChunksTheWriterSends(t *testing.T) {
	l := fillLink()
	s := &Stream{link: l, id: 2, sendCredit: 10 << 10}
	queueWrite(l, s, 100<<10)
	l.mu.Lock()
	l.w.reset(nil)
	l.fill(&l.w)
	l.mu.Unlock()
	var sent []byte // the payload the batch holds
	for _, b := range l.w.bufs {
		if len(b) == 10<<10 {
			sent = b
		}
	}
	if sent == nil {
		t.Fatalf("the batch holds no 10 KiB payload: %d buffers", len(l.w.bufs))
	}
	s.mu.Lock()
	s.fail(ErrReset)
	s.mu.Unlock()
	for range 8 { // the pool hands back what was just put, on this P
		c := getChunk(largeBuf)
		if overlaps(c.buf, sent) {
			t.Fatal("the chunk the batch still sends from went back to the pool")
		}
	}
}

// overlaps reports whether a and b share memory.
func overlaps(a, b []byte) bool {
	a0, a1 := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&a[len(a)-1]))
	b0, b1 := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&b[len(b)-1]))
	return a0 <= b1 && b0 <= a1
}
