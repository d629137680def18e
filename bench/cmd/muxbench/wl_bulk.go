package main

import (
	"fmt"
	"net"
	"time"
)

// runBulk sends e.sz.BulkBytes spread over streams streams, all at once, and
// measures aggregate throughput, CPU per GiB and per-stream fairness.
func runBulk(lib Lib, e env, r *Result, streams int) error {
	if err := needStreams(lib, streams); err != nil {
		return err
	}
	per := e.sz.BulkBytes / int64(streams) / chunkSize * chunkSize
	if per < chunkSize {
		per = chunkSize
	}
	total := per * int64(streams)

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
	done := make(chan finish, streams)
	go serve(a, func(c net.Conn) {
		c.SetDeadline(e.deadline)
		n, err := drain(c, nil)
		c.Close()
		done <- finish{n, time.Now(), err}
	})

	conns := make([]net.Conn, 0, streams)
	for range streams {
		c, err := o.Open()
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		c.SetDeadline(e.deadline)
		conns = append(conns, c)
	}

	writeErr := make(chan error, streams)
	cpu0 := cpuSeconds()
	start := time.Now()
	for _, c := range conns {
		go func() {
			err := writeN(c, per, nil)
			c.Close()
			writeErr <- err
		}()
	}
	rates := make([]float64, 0, streams)
	var last time.Time
	var got int64
	timeout := time.After(time.Until(e.deadline))
	for len(rates) < streams {
		select {
		case err := <-writeErr:
			if err != nil {
				return fmt.Errorf("write: %w", err)
			}
		case f := <-done:
			if f.err != nil {
				return fmt.Errorf("read: %w", f.err)
			}
			got += f.n
			rates = append(rates, mbps(f.n, f.at.Sub(start)))
			if f.at.After(last) {
				last = f.at
			}
		case <-timeout:
			return fmt.Errorf("deadline: %d of %d streams finished", len(rates), streams)
		}
	}
	cpu := cpuSeconds() - cpu0
	if got != total {
		return fmt.Errorf("read %d bytes, want %d", got, total)
	}
	elapsed := last.Sub(start)
	r.set("mbps", mbps(total, elapsed))
	r.set("cpu", cpu/(float64(total)/(1<<30)))
	if streams > 1 {
		r.set("jain", jain(rates))
	}
	r.note("%d stream(s) x %s in %.2fs", streams, fmtBytes(per), elapsed.Seconds())
	return nil
}
