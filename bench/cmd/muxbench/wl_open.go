package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// runOpen measures open, 1-byte echo, close cycles: one after another, then
// spread over many workers.
func runOpen(lib Lib, e env, r *Result) error {
	o, a, cleanup, err := lib.Setup()
	if err != nil {
		return err
	}
	defer cleanup()
	go serve(a, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err == nil {
			c.Write(b)
		}
		c.Close()
	})

	cycle := func() error {
		c, err := o.Open()
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b := []byte{'x'}
		if _, err := c.Write(b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		return nil
	}

	// Each phase may use half of the remaining time.
	seqUntil := time.Now().Add(time.Until(e.deadline) / 2)
	start := time.Now()
	n := 0
	for ; n < e.sz.OpenSeq && time.Now().Before(seqUntil); n++ {
		if err := cycle(); err != nil {
			return fmt.Errorf("sequential cycle %d: %w", n, err)
		}
	}
	r.set("seq", float64(n)/time.Since(start).Seconds())
	if n < e.sz.OpenSeq {
		r.note("sequential: only %d of %d cycles in the time budget", n, e.sz.OpenSeq)
	}

	var next, doneN atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start = time.Now()
	for range e.sz.OpenWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(e.sz.OpenPar) && time.Now().Before(e.deadline) && firstErr.Load() == nil {
				if err := cycle(); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				doneN.Add(1)
			}
		}()
	}
	if !waitGroup(&wg, time.Until(e.deadline)+15*time.Second) {
		return fmt.Errorf("parallel: workers stuck after %d cycles", doneN.Load())
	}
	if p := firstErr.Load(); p != nil {
		return fmt.Errorf("parallel cycle: %w", *p)
	}
	r.set("par", float64(doneN.Load())/time.Since(start).Seconds())
	if doneN.Load() < int64(e.sz.OpenPar) {
		r.note("parallel: only %d of %d cycles in the time budget", doneN.Load(), e.sz.OpenPar)
	}
	return nil
}
