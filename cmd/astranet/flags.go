package main

import (
	"fmt"
	"net"
	"strings"
)

// listFlag is a flag that may be given many times; each value is kept.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// networks are the link networks a node run by this command can use. (The
// library's "pipe" links exist only within one process, so no other node
// could reach one.)
var networks = []string{"tcp", "tcp4", "tcp6", "quic"}

// parseEndpoint splits "network://address" into its parts. Without a
// "network://" prefix the network is tcp.
func parseEndpoint(s string) (network, addr string, err error) {
	network, addr, ok := strings.Cut(s, "://")
	if !ok {
		network, addr = "tcp", s
	}
	known := false
	for _, n := range networks {
		known = known || n == network
	}
	switch {
	case !known:
		return "", "", fmt.Errorf("%q: unknown network %q (want one of %s)", s, network, strings.Join(networks, ", "))
	case addr == "":
		return "", "", fmt.Errorf("%q: no address", s)
	}
	return network, addr, nil
}

// checkHostPort reports why addr is not a TCP host:port with a port.
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		return fmt.Errorf("%q: want host:port", addr)
	case port == "":
		return fmt.Errorf("%q: no port", addr)
	}
	return nil
}

// parsePair splits "left=right", both parts required; what names them in
// errors.
func parsePair(s, what string) (left, right string, err error) {
	left, right, ok := strings.Cut(s, "=")
	if !ok || left == "" || right == "" {
		return "", "", fmt.Errorf("%q: want %s", s, what)
	}
	return left, right, nil
}
