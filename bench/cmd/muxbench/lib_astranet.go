package main

import (
	"fmt"
	"net"
	"time"

	"github.com/astranet-go/astranet"
	"github.com/astranet-go/astranet/core"
)

// astranetLib is astranet with its defaults: node b listens on loopback TCP
// (or QUIC, with network "quic") and binds port benchPort, node a joins it and
// dials "<b-id>:<port>". With routed set, a third node r sits between them:
// a joins r, r joins b, and every stream crosses r.
type astranetLib struct {
	routed  bool
	network string // "" is tcp4
}

func init() {
	register(astranetLib{})
	register(astranetLib{network: "quic"})
}

func (l astranetLib) Name() string {
	switch {
	case l.routed:
		return "astranet-routed"
	case l.network == "quic":
		return "astranet-quic"
	}
	return "astranet"
}

// Only measures whether astranet over a QUIC link keeps up with quic-go's
// own streams: the workloads the QUIC issue asks for.
var quicWorkloads = map[string]bool{"bulk1": true, "rtt": true, "open": true}

const benchPort = 7000

// listenAddr is implemented by astranet's nodes: ListenAndServe that says
// where it listens.
type listenAddr interface {
	ListenAddr(network, address string) (net.Addr, error)
}

func (l astranetLib) Setup() (Opener, Acceptor, func(), error) {
	// The accept backlog (default 1024) refuses opens beyond it; manyactive
	// and busyecho open 10k streams at once, so raise it, as the go-yamux and
	// quic adapters raise their incoming-stream caps.
	opts := []astranet.Option{astranet.WithConfig(func(c *core.Config) { c.Backlog = 1 << 16 })}
	a, b := astranet.New(opts...), astranet.New(opts...)
	nodes := []astranet.AstraNet{a, b}
	if l.routed {
		nodes = append(nodes, astranet.New(opts...))
	}
	cleanup := func() {
		for _, n := range nodes {
			n.Close()
		}
	}
	// a joins the next node, which (if routed) joins b.
	chain := []astranet.AstraNet{a, b}
	if l.routed {
		chain = []astranet.AstraNet{a, nodes[2], b}
	}
	network := l.network
	if network == "" {
		network = "tcp4"
	}
	for i := 0; i+1 < len(chain); i++ {
		addr, err := chain[i+1].(listenAddr).ListenAddr(network, "127.0.0.1:0")
		if err != nil {
			cleanup()
			return nil, nil, nil, err
		}
		if err := chain[i].Join(network, addr.String()); err != nil {
			cleanup()
			return nil, nil, nil, err
		}
	}
	ln, err := b.Bind("", fmt.Sprintf(":%d", benchPort))
	if err != nil {
		cleanup()
		return nil, nil, nil, err
	}
	o := astranetOpener{dial: a.Dial, target: fmt.Sprintf("%s:%d", b.ID().String(), benchPort)}
	// Warm up: retry until the route to b is known, then discard that stream
	// so that workloads see only their own.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := o.Open()
		if err == nil {
			c.Close()
			if s, err := ln.Accept(); err == nil {
				s.Close()
			}
			break
		}
		if time.Now().After(deadline) {
			ln.Close()
			cleanup()
			return nil, nil, nil, fmt.Errorf("astranet: warm-up dial: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return o, ln, func() { ln.Close(); cleanup() }, nil
}

type astranetOpener struct {
	dial   func(network, addr string) (net.Conn, error)
	target string
}

func (o astranetOpener) Open() (net.Conn, error) { return o.dial("", o.target) }
