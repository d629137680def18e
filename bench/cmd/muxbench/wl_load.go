package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Stream kinds, sent as the first byte so that the server knows what to do.
const (
	kindBulk = 'B' // read and discard to EOF
	kindEcho = 'E' // echo 64-byte messages
	kindSlow = 'S' // never read again
)

// runManyActive opens e.sz.ManyStreams streams, then has each write
// e.sz.ManyBytes at once and close. The clock starts once the server has
// accepted every stream (or accepts stop coming for 200 ms): Open returns
// before the far end has the stream in some libraries (smux), so without the
// wait their timed phase also held thousands of accepts that the others did
// before it. quic-go announces a stream only with its first frame, so its
// accepts stay in the timed phase; the note says how many were accepted.
func runManyActive(lib Lib, e env, r *Result) error {
	n := e.sz.ManyStreams
	if err := needStreams(lib, n); err != nil {
		return err
	}
	o, a, cleanup, err := lib.Setup()
	if err != nil {
		return err
	}
	defer cleanup()

	type finish struct {
		n   int64
		at  time.Time
		err error
	}
	done := make(chan finish, n)
	var accepted atomic.Int64
	go serve(a, func(c net.Conn) {
		accepted.Add(1)
		c.SetDeadline(e.deadline)
		k, err := drain(c, nil)
		c.Close()
		done <- finish{k, time.Now(), err}
	})

	var opened sync.WaitGroup
	go1 := make(chan struct{})
	errs := make(chan error, n)
	for range n {
		opened.Add(1)
		go func() {
			c, err := o.Open()
			opened.Done()
			if err != nil {
				errs <- fmt.Errorf("open: %w", err)
				return
			}
			c.SetDeadline(e.deadline)
			<-go1
			err = writeN(c, int64(e.sz.ManyBytes), nil)
			c.Close()
			if err != nil {
				errs <- fmt.Errorf("write: %w", err)
			}
		}()
	}
	if !waitGroup(&opened, time.Until(e.deadline)) {
		close(go1)
		return fmt.Errorf("opening %d streams did not finish in the time budget", n)
	}
	for last, lastChange := int64(-1), time.Now(); ; {
		k := accepted.Load()
		if k >= int64(n) || time.Since(lastChange) > 200*time.Millisecond || time.Now().After(e.deadline) {
			break
		}
		if k != last {
			last, lastChange = k, time.Now()
		}
		time.Sleep(time.Millisecond)
	}
	if k := accepted.Load(); k < int64(n) {
		r.note("%d of %d streams accepted by the server when the clock started", k, n)
	}
	start := time.Now()
	close(go1)
	var last time.Time
	var got int64
	timeout := time.After(time.Until(e.deadline))
	for k := 0; k < n; {
		select {
		case err := <-errs:
			return err
		case f := <-done:
			if f.err != nil {
				return fmt.Errorf("read: %w", f.err)
			}
			got += f.n
			if f.at.After(last) {
				last = f.at
			}
			k++
		case <-timeout:
			return fmt.Errorf("deadline: %d of %d streams finished", k, n)
		}
	}
	if want := int64(n) * int64(e.sz.ManyBytes); got != want {
		return fmt.Errorf("read %d bytes, want %d", got, want)
	}
	elapsed := last.Sub(start)
	r.set("secs", elapsed.Seconds())
	r.set("mbps", mbps(got, elapsed))
	return nil
}

// kindServer serves streams by their first byte: bulk ones are drained
// (counting into got), echo ones echoed, slow ones kept and never read.
func kindServer(a Acceptor, deadline time.Time, got *atomic.Int64, slow *[]net.Conn, mu *sync.Mutex) {
	serve(a, func(c net.Conn) {
		c.SetDeadline(deadline)
		k := make([]byte, 1)
		if _, err := io.ReadFull(c, k); err != nil {
			c.Close()
			return
		}
		switch k[0] {
		case kindBulk:
			drain(c, func(n int) { got.Add(int64(n)) })
			c.Close()
		case kindEcho:
			echo(c, 64)
			c.Close()
		case kindSlow:
			mu.Lock()
			*slow = append(*slow, c)
			mu.Unlock()
		}
	})
}

// echoes opens a fresh echo stream and times up to count 64-byte round
// trips, starting none after until; the one under way then may take until
// wait. A round trip that has not come back by wait is counted with the time
// it waited (a lower bound) and reported as unfinished, so that a stall at
// the end does not drop out of the percentiles.
func echoes(o Opener, count int, until, wait time.Time) (lat []time.Duration, unfinished bool, err error) {
	c, err := o.Open()
	if err != nil {
		return nil, false, fmt.Errorf("open: %w", err)
	}
	defer c.Close()
	c.SetDeadline(wait)
	if _, err := c.Write([]byte{kindEcho}); err != nil {
		return nil, false, fmt.Errorf("write: %w", err)
	}
	msg, in := make([]byte, 64), make([]byte, 64)
	for len(lat) < count && time.Now().Before(until) {
		t := time.Now()
		if _, err := c.Write(msg); err != nil {
			return lat, false, fmt.Errorf("write: %w", err)
		}
		if _, err := io.ReadFull(c, in); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return append(lat, time.Since(t)), true, fmt.Errorf("read: %w", err)
			}
			return lat, false, fmt.Errorf("read: %w", err)
		}
		lat = append(lat, time.Since(t))
	}
	return lat, false, nil
}

// runBusyEcho times 64-byte echoes on one stream while e.sz.BusyStreams
// streams send bulk data as fast as they can.
func runBusyEcho(lib Lib, e env, r *Result) error {
	n := e.sz.BusyStreams
	if err := needStreams(lib, n+1); err != nil {
		return err
	}
	o, a, cleanup, err := lib.Setup()
	if err != nil {
		return err
	}
	defer cleanup()

	var got atomic.Int64
	var slow []net.Conn
	var mu sync.Mutex
	go kindServer(a, e.deadline, &got, &slow, &mu)

	var stop atomic.Bool
	defer stop.Store(true)
	// A bulk stream that fails takes its load away from the echoes.
	var bulkFailed atomic.Int64
	var bulkErr atomic.Pointer[error]
	var opened sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		opened.Add(1)
		go func() {
			c, err := o.Open()
			if err == nil {
				c.SetDeadline(e.deadline)
				_, err = c.Write([]byte{kindBulk})
			}
			opened.Done()
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for !stop.Load() {
				if _, err := c.Write(chunk); err != nil {
					if !stop.Load() {
						bulkFailed.Add(1)
						bulkErr.CompareAndSwap(nil, &err)
					}
					return
				}
			}
		}()
	}
	if !waitGroup(&opened, time.Until(e.deadline)/2) {
		return fmt.Errorf("opening %d bulk streams did not finish in the time budget", n)
	}
	select {
	case err := <-errs:
		return fmt.Errorf("bulk stream: %w", err)
	default:
	}
	time.Sleep(200 * time.Millisecond) // let the bulk senders get going

	// The echo under way when BusyFor ends may take as long again.
	until := time.Now().Add(time.Duration(e.sz.BusyFor))
	wait := until.Add(time.Duration(e.sz.BusyFor))
	got0, t0 := got.Load(), time.Now()
	lat, unfinished, err := echoes(o, 1<<30, until, wait)
	got1, t1 := got.Load(), time.Now()
	stop.Store(true)
	if k := bulkFailed.Load(); k > 0 {
		return fmt.Errorf("%d of %d bulk streams failed before the echoes ended: %v", k, n, *bulkErr.Load())
	}
	r.set("mbps", mbps(got1-got0, t1.Sub(t0)))
	if len(lat) == 0 || unfinished && len(lat) == 1 {
		r.setText("p50", "stalled")
		r.setText("p99", "stalled")
		r.note("no echo completed: %v", err)
		return nil
	}
	if err != nil && !unfinished {
		return fmt.Errorf("echo: %w", err)
	}
	r.set("p50", millis(percentile(lat, 0.50)))
	r.set("p99", millis(percentile(lat, 0.99)))
	if unfinished {
		r.note("%d echoes in %v, the last not back after %v (counted as that)", len(lat)-1, time.Duration(e.sz.BusyFor), lat[len(lat)-1].Round(time.Millisecond))
	} else {
		r.note("%d echoes in %v", len(lat), time.Duration(e.sz.BusyFor))
	}
	return nil
}

// runSlowReaders fills e.sz.SlowStreams streams that are never read, then
// times echoes on a fresh stream.
func runSlowReaders(lib Lib, e env, r *Result) error {
	n := e.sz.SlowStreams
	if err := needStreams(lib, n+1); err != nil {
		return err
	}
	o, a, cleanup, err := lib.Setup()
	if err != nil {
		return err
	}
	defer cleanup()

	var got atomic.Int64
	var slow []net.Conn
	var mu sync.Mutex
	go kindServer(a, e.deadline, &got, &slow, &mu)
	before := takeMem()

	var written, failed, writeFailed atomic.Int64
	var writeErr atomic.Pointer[error]
	var measured atomic.Bool // failures after the measurement are cleanup's
	var finished sync.WaitGroup
	for range n {
		finished.Add(1)
		go func() {
			defer finished.Done()
			c, err := o.Open()
			if err == nil {
				c.SetDeadline(e.deadline)
				_, err = c.Write([]byte{kindSlow})
			}
			if err != nil {
				failed.Add(1)
				return
			}
			err = writeN(c, e.sz.SlowBytes, func(k int) { written.Add(int64(k)) })
			if err != nil && !measured.Load() {
				writeFailed.Add(1)
				writeErr.CompareAndSwap(nil, &err)
			}
		}()
	}
	// Wait until the writers are done or blocked: no progress for 500 ms.
	allDone := make(chan struct{})
	go func() { finished.Wait(); close(allDone) }()
	fillUntil := time.Now().Add(20 * time.Second)
	last, lastChange := int64(-1), time.Now()
	for time.Now().Before(fillUntil) {
		select {
		case <-allDone:
			fillUntil = time.Now()
			continue
		case <-time.After(50 * time.Millisecond):
		}
		if w := written.Load(); w != last {
			last, lastChange = w, time.Now()
		} else if time.Since(lastChange) > 500*time.Millisecond {
			break
		}
	}
	mid := takeMem()
	measured.Store(true)
	if k := failed.Load(); k > 0 {
		r.note("%d of %d slow streams failed to open", k, n)
	}
	if k := writeFailed.Load(); k > 0 {
		r.note("%d of %d slow streams failed while filling: %v", k, n, *writeErr.Load())
	}
	r.set("heap", delta(mid.heapStack, before.heapStack)/(1<<20))
	r.set("written", float64(written.Load())/(1<<20))

	type echoRes struct {
		lat []time.Duration
		err error
	}
	ch := make(chan echoRes, 1)
	until := time.Now().Add(5 * time.Second)
	go func() {
		lat, unfinished, err := echoes(o, e.sz.SlowEchoes, until, until)
		if unfinished {
			lat = lat[:len(lat)-1]
		}
		ch <- echoRes{lat, err}
	}()
	select {
	case res := <-ch:
		if len(res.lat) < e.sz.SlowEchoes {
			r.setText("p50", "stalled")
			r.note("%d of %d echoes in 5 s (%v)", len(res.lat), e.sz.SlowEchoes, res.err)
			return nil
		}
		r.set("p50", millis(percentile(res.lat, 0.50)))
	case <-time.After(6 * time.Second):
		r.setText("p50", "stalled")
		r.note("opening the echo stream blocked for 5 s")
	}
	return nil
}
