package core

import "sync"

// Buffers come in two sizes: small ones for small frames, so that a million
// streams holding a few bytes each do not pin a million large buffers, and
// large ones for bulk data.
const (
	smallBuf = 2 << 10
	largeBuf = 64 << 10
)

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}
)

// chunk is a piece of a stream's send or receive queue: data lives in
// buf[rd:wr]; buf[wr:] is free for appending.
type chunk struct {
	buf    []byte
	rd, wr int
	next   *chunk
}

func getChunk(need int) *chunk {
	var p *[]byte
	switch {
	case need <= smallBuf:
		p = smallPool.Get().(*[]byte)
	case need <= largeBuf:
		p = largePool.Get().(*[]byte)
	default:
		b := make([]byte, need)
		p = &b
	}
	return &chunk{buf: *p}
}

func putChunk(c *chunk) {
	b := c.buf
	c.buf = nil
	switch cap(b) {
	case smallBuf:
		smallPool.Put(&b)
	case largeBuf:
		largePool.Put(&b)
	}
}

// queue is a FIFO of bytes in chunks. The zero value is empty.
type queue struct {
	head, tail *chunk
	n          int // bytes queued
}

// write appends p, taking chunks from the pools as needed.
func (q *queue) write(p []byte) {
	q.n += len(p)
	for len(p) > 0 {
		if q.tail == nil || q.tail.wr == len(q.tail.buf) {
			c := getChunk(len(p))
			if q.tail == nil {
				q.head = c
			} else {
				q.tail.next = c
			}
			q.tail = c
		}
		k := copy(q.tail.buf[q.tail.wr:], p)
		q.tail.wr += k
		p = p[k:]
	}
}

// read moves up to len(p) bytes into p and gives drained chunks back.
func (q *queue) read(p []byte) int {
	n := 0
	for n < len(p) && q.head != nil {
		c := q.head
		k := copy(p[n:], c.buf[c.rd:c.wr])
		c.rd += k
		n += k
		if c.rd == c.wr {
			q.head = c.next
			if q.head == nil {
				q.tail = nil
			}
			putChunk(c)
		}
	}
	q.n -= n
	return n
}

// free gives every chunk back.
func (q *queue) free() {
	for c := q.head; c != nil; {
		next := c.next
		putChunk(c)
		c = next
	}
	*q = queue{}
}
