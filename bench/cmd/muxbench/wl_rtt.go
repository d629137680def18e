package main

import (
	"fmt"
	"io"
	"net"
	"time"
)

// runRTT measures 64-byte ping-pong round trips on one stream.
func runRTT(lib Lib, e env, r *Result) error {
	o, a, cleanup, err := lib.Setup()
	if err != nil {
		return err
	}
	defer cleanup()
	go serve(a, func(c net.Conn) {
		c.SetDeadline(e.deadline)
		echo(c, 64)
		c.Close()
	})
	c, err := o.Open()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer c.Close()
	c.SetDeadline(e.deadline)

	msg := make([]byte, 64)
	in := make([]byte, 64)
	lat := make([]time.Duration, 0, e.sz.RTTRounds)
	for i := range e.sz.RTTWarmup + e.sz.RTTRounds {
		t := time.Now()
		if _, err := c.Write(msg); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if _, err := io.ReadFull(c, in); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if i >= e.sz.RTTWarmup {
			lat = append(lat, time.Since(t))
		}
	}
	r.set("p50", micros(percentile(lat, 0.50)))
	r.set("p99", micros(percentile(lat, 0.99)))
	return nil
}
