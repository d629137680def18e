package core

import (
	"bytes"
	"testing"
)

// TestQueueUsesPooledChunks: a large write is split over pooled chunks (a
// 1 MiB Write must not allocate a buffer of its own size), and reads give the
// bytes back in order.
func TestQueueUsesPooledChunks(t *testing.T) {
	var q queue
	p := make([]byte, 300<<10+5)
	for i := range p {
		p[i] = byte(i * 7)
	}
	q.write(p[:10])
	q.write(p[10:])
	for c := q.head; c != nil; c = c.next {
		if len(c.buf) != smallBuf && len(c.buf) != largeBuf {
			t.Fatalf("a chunk of %d bytes, not from a pool", len(c.buf))
		}
	}
	got := make([]byte, len(p))
	for n := 0; n < len(got); {
		n += q.read(got[n:min(len(got), n+7000)])
	}
	if !bytes.Equal(got, p) || q.n != 0 || q.head != nil {
		t.Fatalf("read back: equal %v, %d bytes left", bytes.Equal(got, p), q.n)
	}
}

// TestQueueRemove: remove unlinks a chunk wherever it is in the queue, with
// its bytes, and leaves the queue alone when the chunk is not in it.
func TestQueueRemove(t *testing.T) {
	mk := func(n int) *chunk { return &chunk{buf: make([]byte, n), wr: n} }
	for _, at := range []int{0, 1, 2, -1} {
		var q queue
		cs := []*chunk{mk(1), mk(2), mk(4)}
		for _, c := range cs {
			q.push(c)
		}
		victim, want := mk(8), 7
		if at >= 0 {
			victim, want = cs[at], 7-len(cs[at].buf)
		}
		q.remove(victim)
		if q.n != want {
			t.Errorf("remove at %d: %d bytes queued, want %d", at, q.n, want)
		}
		got := 0
		var last *chunk
		for c := q.head; c != nil; c = c.next {
			if c == victim {
				t.Errorf("remove at %d: the chunk is still linked", at)
			}
			got += c.wr - c.rd
			last = c
		}
		if got != want || q.tail != last {
			t.Errorf("remove at %d: the list holds %d bytes, tail ok %v", at, got, q.tail == last)
		}
	}
}
