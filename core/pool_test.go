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
