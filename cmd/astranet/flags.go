package main

import (
	"fmt"
	"strings"
)

// listFlag is a flag that may be given many times; each value is kept.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// networks are the link networks the default node serves.
var networks = []string{"tcp", "tcp4", "tcp6", "quic", "pipe"}

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

// parsePair splits "left=right", both parts required; what names them in
// errors.
func parsePair(s, what string) (left, right string, err error) {
	left, right, ok := strings.Cut(s, "=")
	if !ok || left == "" || right == "" {
		return "", "", fmt.Errorf("%q: want %s", s, what)
	}
	return left, right, nil
}
