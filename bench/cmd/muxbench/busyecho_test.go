package main

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// stallLib is raw TCP whose server answers one echo and then stalls: every
// later Write on a stream waits 3 s first.
type stallLib struct{ tcpLib }

func (stallLib) Name() string { return "stall" }

func (l stallLib) Setup() (Opener, Acceptor, func(), error) {
	o, a, cleanup, err := l.tcpLib.Setup()
	return o, stallAcceptor{a}, cleanup, err
}

type stallAcceptor struct{ Acceptor }

func (a stallAcceptor) Accept() (net.Conn, error) {
	c, err := a.Acceptor.Accept()
	if err != nil {
		return nil, err
	}
	return &stallConn{Conn: c}, nil
}

type stallConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *stallConn) Write(p []byte) (int, error) {
	if c.writes.Add(1) > 1 {
		time.Sleep(3 * time.Second)
	}
	return c.Conn.Write(p)
}

// TestBusyEchoCountsUnfinishedEcho: an echo still waiting when the measured
// period ends must not vanish from the percentiles.
func TestBusyEchoCountsUnfinishedEcho(t *testing.T) {
	sz := quickSizes()
	sz.BusyStreams = 2
	sz.BusyFor = Duration(500 * time.Millisecond)
	var r Result
	e := env{sz: sz, deadline: time.Now().Add(30 * time.Second)}
	if err := runBusyEcho(stallLib{}, e, &r); err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if c := r.Cells["p99"]; c.Text == "" && c.Value < 400 {
		t.Errorf("p99 = %v ms, but the second echo waited at least 400 ms", c.Value)
	}
}

// dropFirstLib is raw TCP whose server closes the first stream it accepts.
type dropFirstLib struct{ tcpLib }

func (dropFirstLib) Name() string { return "drop-first" }

func (l dropFirstLib) Setup() (Opener, Acceptor, func(), error) {
	o, a, cleanup, err := l.tcpLib.Setup()
	return o, &dropFirstAcceptor{Acceptor: a}, cleanup, err
}

type dropFirstAcceptor struct {
	Acceptor
	n atomic.Int64
}

func (a *dropFirstAcceptor) Accept() (net.Conn, error) {
	for {
		c, err := a.Acceptor.Accept()
		if err != nil || a.n.Add(1) > 1 {
			return c, err
		}
		c.Close()
	}
}

// TestBusyEchoFailsWhenBulkStreamFails: the echoes are timed under the load
// of every bulk stream; a bulk stream that fails takes its load away, so
// the workload must not report figures as if it had not.
func TestBusyEchoFailsWhenBulkStreamFails(t *testing.T) {
	sz := quickSizes()
	sz.BusyStreams = 2
	sz.BusyFor = Duration(300 * time.Millisecond)
	var r Result
	e := env{sz: sz, deadline: time.Now().Add(30 * time.Second)}
	err := runBusyEcho(dropFirstLib{}, e, &r)
	t.Logf("%+v, err %v", r, err)
	if err == nil {
		t.Error("a bulk stream failed, yet busyecho reported figures")
	}
}
