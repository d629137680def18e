package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// runIdle opens n streams and holds them with no goroutine per stream on
// either side, then reports memory per stream. The client writes one byte on
// each stream (quic tells the server about a stream only with its first
// frame) and the server reads it, so that no data stays buffered and no
// flow-control credit stays consumed.
func runIdle(lib Lib, e env, r *Result, n int) error {
	if err := needStreams(lib, n); err != nil {
		return err
	}
	o, a, cleanup, err := lib.Setup()
	if err != nil {
		return err
	}
	defer cleanup()

	// The slices and the queue are allocated before the baseline so that
	// they do not count towards the per-stream figure.
	clientConns := make([]net.Conn, n)
	serverConns := make([]net.Conn, 0, n)
	toRead := make(chan net.Conn, n)
	var mu sync.Mutex
	var accepted, drained atomic.Int64
	go func() {
		defer close(toRead)
		for int(accepted.Load()) < n {
			c, err := a.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			serverConns = append(serverConns, c)
			mu.Unlock()
			accepted.Add(1)
			toRead <- c
		}
	}()
	// One reader, not one per stream, takes each stream's byte in accept
	// order. It is not the accept loop itself: a library whose reader waits
	// for a full accept queue (smux) would then never deliver the byte.
	go func() {
		b := make([]byte, 1)
		for c := range toRead {
			if _, err := io.ReadFull(c, b); err != nil {
				return
			}
			drained.Add(1)
		}
	}()
	before := takeMem()

	// Opening may use 70% of the time left; closing gets the rest.
	openUntil := time.Now().Add(time.Until(e.deadline) * 7 / 10)
	var next, opened atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	one := []byte{1}
	for range e.sz.IdleOpeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for firstErr.Load() == nil && time.Now().Before(openUntil) {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				c, err := o.Open()
				if err == nil {
					_, err = c.Write(one)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				clientConns[i] = c
				opened.Add(1)
			}
		}()
	}
	waitGroup(&wg, time.Until(openUntil)+5*time.Second)
	for drained.Load() < opened.Load() && time.Now().Before(openUntil.Add(5*time.Second)) {
		time.Sleep(5 * time.Millisecond)
	}
	openTime := time.Since(start)
	if p := firstErr.Load(); p != nil {
		r.note("opening stopped by error: %v", *p)
	}
	reached := min(drained.Load(), opened.Load())
	if reached == 0 {
		return fmt.Errorf("no stream reached the server")
	}
	after := takeMem()

	r.set("reached", float64(reached))
	r.set("rate", float64(reached)/openTime.Seconds())
	r.set("heap", delta(after.heapStack, before.heapStack)/float64(reached))
	r.set("rss", delta(after.rss, before.rss)/float64(reached))
	if reached < int64(n) {
		r.note("reached %d of %d streams in the time budget", reached, n)
	}

	// Close every stream, bounded; cleanup then closes whatever is left.
	closeStart := time.Now()
	closed := make(chan int, 1)
	go func() {
		k := 0
		for _, c := range clientConns {
			if c != nil {
				c.Close()
				k++
			}
		}
		mu.Lock()
		conns := serverConns
		mu.Unlock()
		for _, c := range conns {
			c.Close()
			k++
		}
		closed <- k
	}()
	select {
	case k := <-closed:
		r.note("closed %d stream ends in %.2fs", k, time.Since(closeStart).Seconds())
	case <-time.After(time.Until(e.deadline)):
		r.note("closing did not finish in the time budget")
	}
	return nil
}
