package core

import "sync"

// Buffers come in two sizes: small ones for small frames, so that a million
// streams holding a few bytes each do not pin a million large buffers, and
// large ones for bulk data.
const (
	smallBuf = 2 << 10
	largeBuf = 64 << 10
)

// The pools hold whole chunks, so that taking and giving back a buffer
// allocates nothing.
var (
	smallPool = sync.Pool{New: func() any { return &chunk{buf: make([]byte, smallBuf)} }}
	largePool = sync.Pool{New: func() any { return &chunk{buf: make([]byte, largeBuf)} }}
)

// chunk is a piece of a stream's send or receive queue: data lives in
// buf[rd:wr]; buf[wr:] is free for appending.
type chunk struct {
	buf    []byte
	rd, wr int
	next   *chunk
	lent   bool // buf is a blocked Write's p, not pooled (see Stream.writeLent)
}

// getChunk returns a pooled chunk for need bytes: a small one if they fit,
// else a large one, which may hold only the first largeBuf of them.
func getChunk(need int) *chunk {
	if need <= smallBuf {
		return smallPool.Get().(*chunk)
	}
	return largePool.Get().(*chunk)
}

// putChunk gives c back; the caller must hold no reference to it or its buffer.
func putChunk(c *chunk) {
	if c.lent {
		return // the Write that lent it takes it back
	}
	c.rd, c.wr, c.next = 0, 0, nil
	if len(c.buf) == smallBuf {
		smallPool.Put(c)
	} else {
		largePool.Put(c)
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
		if q.tail == nil || q.tail.wr == len(q.tail.buf) || q.tail.lent {
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

// push appends c, whole.
func (q *queue) push(c *chunk) {
	if q.tail == nil {
		q.head = c
	} else {
		q.tail.next = c
	}
	q.tail = c
	q.n += c.wr - c.rd
}

// remove unlinks c, if it is queued, with the bytes it holds.
func (q *queue) remove(c *chunk) {
	var prev *chunk
	for cur := q.head; cur != nil; prev, cur = cur, cur.next {
		if cur != c {
			continue
		}
		if prev == nil {
			q.head = c.next
		} else {
			prev.next = c.next
		}
		if q.tail == c {
			q.tail = prev
		}
		q.n -= c.wr - c.rd
		c.next = nil
		return
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
