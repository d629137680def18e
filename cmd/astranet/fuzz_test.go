package main

import (
	"slices"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseEndpoint: "network://address" gives a known network and a
// non-empty address that join back into the input; without "://" the whole
// input is a tcp address. A refusal quotes the input.
func FuzzParseEndpoint(f *testing.F) {
	for _, s := range []string{"tcp://127.0.0.1:7000", "quic://[::1]:7000", "pipe://demo", "tcp4://:0", "tcp6://[::]:1",
		"127.0.0.1:7000", "udp://127.0.0.1:7000", "tcp://", "://x", "", "TCP://x", "tcp://quic://x", "tcp:/x",
		"pipe://a b", "tcp://\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		network, addr, err := parseEndpoint(s)
		if err != nil {
			if network != "" || addr != "" {
				t.Fatalf("parseEndpoint(%q) = %q, %q with error %v", s, network, addr, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, strconv.Quote(s)+": ") || len(msg) == len(strconv.Quote(s))+2 {
				t.Fatalf("parseEndpoint(%q) error %q does not quote the input and say why", s, msg)
			}
			return
		}
		if !slices.Contains(networks, network) || addr == "" {
			t.Fatalf("parseEndpoint(%q) = %q, %q", s, network, addr)
		}
		if strings.Contains(s, "://") {
			if network+"://"+addr != s {
				t.Fatalf("parseEndpoint(%q) = %q, %q, which do not join back", s, network, addr)
			}
		} else if network != "tcp" || addr != s {
			t.Fatalf("parseEndpoint(%q) = %q, %q; want tcp and the whole input", s, network, addr)
		}
		if n2, a2, err := parseEndpoint(network + "://" + addr); err != nil || n2 != network || a2 != addr {
			t.Fatalf("parseEndpoint(%q) = %q, %q, %v; want %q, %q", network+"://"+addr, n2, a2, err, network, addr)
		}
	})
}

// FuzzParsePair: "left=right" splits at its first "=" into two non-empty
// parts that join back into the input. A refusal quotes the input and says
// what was wanted.
func FuzzParsePair(f *testing.F) {
	for _, s := range []string{"echo=127.0.0.1:8080", "127.0.0.1:9000=echo", "a=b=c", "=b", "a=", "=", "", "ab",
		"echo:7=localhost:7", "é=ü"} {
		f.Add(s, "name=host:port")
	}
	f.Add("x", "")
	f.Fuzz(func(t *testing.T, s, what string) {
		left, right, err := parsePair(s, what)
		if err != nil {
			if left != "" || right != "" {
				t.Fatalf("parsePair(%q) = %q, %q with error %v", s, left, right, err)
			}
			if msg := err.Error(); msg != strconv.Quote(s)+": want "+what {
				t.Fatalf("parsePair(%q, %q) error %q does not quote the input and say what is wanted", s, what, msg)
			}
			return
		}
		if left == "" || right == "" || strings.Contains(left, "=") || left+"="+right != s {
			t.Fatalf("parsePair(%q) = %q, %q", s, left, right)
		}
	})
}
