package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Lib is one stream multiplexer (or raw TCP) under test.
type Lib interface {
	Name() string
	// Setup builds a connected client/server pair on loopback. Accept on the
	// server side yields streams opened by Open on the client side. cleanup
	// closes everything Setup made, which unblocks every stream still in use.
	Setup() (client Opener, server Acceptor, cleanup func(), err error)
}

// Opener opens a stream from the client side.
type Opener interface{ Open() (net.Conn, error) }

// Acceptor accepts streams on the server side.
type Acceptor interface{ Accept() (net.Conn, error) }

// streamLimiter is implemented by libraries that cannot hold any number of
// concurrent streams on this machine (raw TCP: two descriptors and one
// ephemeral port per stream).
type streamLimiter interface {
	// MaxStreams returns how many streams may be open at once, and why.
	MaxStreams() (n int, why string)
}

// libOrder is the column order of the table; libraries register in init.
var libOrder = []string{"tcp", "yamux", "smux", "go-yamux", "quic", "astranet", "astranet-quic"}

// peerLibs are the multiplexers astranet is compared against ("best peer").
var peerLibs = map[string]bool{"yamux": true, "smux": true, "go-yamux": true, "quic": true}

var libs = map[string]Lib{}

func register(l Lib) { libs[l.Name()] = l }

// availableLibs lists the registered libraries in table order.
func availableLibs() []string {
	var out []string
	for _, name := range libOrder {
		if _, ok := libs[name]; ok {
			out = append(out, name)
		}
	}
	return out
}

// tcpPair returns both ends of one loopback TCP connection, the link that
// every multiplexer runs over.
func tcpPair() (client, server net.Conn, err error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			client.Close()
			return nil, nil, r.err
		}
		return client, r.c, nil
	case <-time.After(5 * time.Second):
		client.Close()
		return nil, nil, fmt.Errorf("tcpPair: accept timed out")
	}
}

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit and returns
// the limit now in force.
func raiseFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	return rl.Cur
}

// ephemeralPorts returns the size of the local port range, which bounds how
// many loopback connections one client address can hold to one server port.
func ephemeralPorts() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || hi < lo {
		return 0
	}
	return hi - lo + 1
}
