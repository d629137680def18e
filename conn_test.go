package astranet

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// pair returns two nodes linked over network (or over Attach(net.Pipe()) for
// "attach"), and a listener on the second.
func pair(t testing.TB, network string, opts ...Option) (a, b AstraNet) {
	t.Helper()
	a, b = New(opts...), New(opts...)
	t.Cleanup(func() { a.Close(); b.Close() })
	switch network {
	case "attach":
		c1, c2 := net.Pipe()
		go a.Attach(c1)
		go b.Attach(c2)
		waitLinked(t, a, b)
	default:
		addr := "127.0.0.1:0"
		if network == "pipe" {
			addr = fmt.Sprintf("pair-%d", pipeSeq.Add(1))
		}
		la, err := b.(*node).ListenAddr(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Join(network, la.String()); err != nil {
			t.Fatal(err)
		}
		waitLinked(t, a, b)
	}
	return a, b
}

var pipeSeq atomic.Int64

// waitLinked waits until each node sees the other as a neighbour.
func waitLinked(t testing.TB, a, b AstraNet) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if len(a.Routes()) > 0 && len(b.Routes()) > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("nodes did not link within 5 s")
}

var networks = []string{"attach", "pipe", "tcp4", "quic"}

func TestConnConformance(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				a, b := pair(t, network)
				ln, err := b.Bind("", ":7")
				if err != nil {
					return nil, nil, nil, err
				}
				accepted := make(chan net.Conn, 1)
				go func() {
					c, _ := ln.Accept()
					accepted <- c
				}()
				c1, err = a.Dial("", b.ID().String()+":7")
				if err != nil {
					return nil, nil, nil, err
				}
				c2 = <-accepted
				stop = func() {
					c1.Close()
					c2.Close()
					ln.Close()
					a.Close()
					b.Close()
				}
				return c1, c2, stop, nil
			})
		})
	}
}
