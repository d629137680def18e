package astranet

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	"github.com/astranet-go/astranet/discovery"
)

// FuzzSplitNamePort: "name:port" splits at its last colon into a name and a
// port in [1, 2^32) that join back into an address that splits the same; an
// address without a colon is all name. A refusal quotes the port it could
// not read.
func FuzzSplitNamePort(f *testing.F) {
	for _, s := range []string{"echo", "echo:7", ":7", "echo:", ":", "", "a:b:7", "echo:0", "echo:007",
		"echo:4294967295", "echo:4294967296", "echo:-1", "echo:+7", "echo:0x10", "echo:1_0", "echo: 7",
		"00000000000000b2:80", "[::1]:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, hp string) {
		name, port, err := splitNamePort(hp)
		i := strings.LastIndexByte(hp, ':')
		if i < 0 {
			if err != nil || name != hp || port != 0 {
				t.Fatalf("splitNamePort(%q) = %q, %d, %v; want all name", hp, name, port, err)
			}
			return
		}
		if err != nil {
			if name != "" || port != 0 {
				t.Fatalf("splitNamePort(%q) = %q, %d with error %v", hp, name, port, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "port") || !strings.Contains(msg, strconv.Quote(hp[i+1:])) {
				t.Fatalf("splitNamePort(%q) error %q does not name the port", hp, msg)
			}
			return
		}
		if port == 0 || name != hp[:i] {
			t.Fatalf("splitNamePort(%q) = %q, %d", hp, name, port)
		}
		if p, err := strconv.ParseUint(hp[i+1:], 10, 32); err != nil || uint32(p) != port {
			t.Fatalf("splitNamePort(%q) read port %d from %q", hp, port, hp[i+1:])
		}
		joined := name + ":" + strconv.FormatUint(uint64(port), 10)
		if n2, p2, err := splitNamePort(joined); err != nil || n2 != name || p2 != port {
			t.Fatalf("splitNamePort(%q) = %q, %d, %v; want %q, %d", joined, n2, p2, err, name, port)
		}
	})
}

// FuzzTarget: a dial address reads as a node and a port, or as a service name
// (with the node's environment) and maybe a port. A node target has a port
// and no name; a service target has a name the wire accepts and that does not
// read as a node id; either one's String reads back to the same target. The
// network picks the selector. A refusal names the address.
func FuzzTarget(f *testing.F) {
	for _, s := range []string{"00000000000000b2:80", "00000000000000B2:80", "00000000000000b2", "echo", "echo:7",
		"echo.staging:7", ":7", "", "a:b:7", "has space:7", "echo:", "echo:0", "0000000000000000:7",
		strings.Repeat("n", wire.MaxNameLen) + ":1", "ü:1", "00000000000000b2:80:80"} {
		for _, network := range []string{"", "roundrobin", "nearest", "registry://pool", "vport2registry", "tcp"} {
			f.Add(network, s, false)
		}
		f.Add("", s, true)
	}
	f.Fuzz(func(t *testing.T, network, hp string, withEnv bool) {
		n := testTargetNode(withEnv)
		tg, err := n.target(network, hp)
		if err != nil {
			if tg.Node != 0 || tg.Port != 0 || tg.Service != "" || tg.Pick != nil {
				t.Fatalf("target(%q) = %+v with error %v", hp, tg, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, fmt.Sprintf("address %q", hp)) {
				t.Fatalf("target(%q) error %q does not name the address", hp, msg)
			}
			return
		}
		if tg.Node != 0 {
			if tg.Port == 0 || tg.Service != "" || tg.Pick != nil {
				t.Fatalf("target(%q) = %+v", hp, tg)
			}
		} else {
			if tg.Service == "" || !strings.HasSuffix(tg.Service, n.s.env) {
				t.Fatalf("target(%q) = %+v: no service, or not in the environment %q", hp, tg, n.s.env)
			}
			if err := wire.CheckName(tg.Service); err != nil {
				t.Fatalf("target(%q) accepted a service name the wire refuses: %v", hp, err)
			}
			if _, err := core.ParseNodeID(strings.TrimSuffix(tg.Service, n.s.env)); err == nil {
				t.Fatalf("target(%q) read a node id as the service %q", hp, tg.Service)
			}
			switch wantPick := network == "roundrobin" || network == "vport2registry" || strings.HasPrefix(network, "registry://"); {
			case wantPick && tg.Pick == nil:
				t.Fatalf("target(%q, %q) picks at random", network, hp)
			case !wantPick && tg.Pick != nil:
				t.Fatalf("target(%q, %q) has a selector", network, hp)
			}
		}
		// String gives the address with the environment; read it back on a
		// node without one.
		again, err := testTargetNode(false).target(network, tg.String())
		if err != nil || again.Node != tg.Node || again.Port != tg.Port || again.Service != tg.Service {
			t.Fatalf("target(%q) = %+v, whose String %q reads back as %+v, %v", hp, tg, tg.String(), again, err)
		}
	})
}

// testTargetNode returns a node, closed before its engine started, whose
// environment is ".staging" if withEnv.
func testTargetNode(withEnv bool) *node {
	n := &node{roundRobin: discovery.RoundRobin()}
	if withEnv {
		n.s.env = ".staging"
	}
	n.Close() // no engine: "nearest" starts none
	return n
}

// FuzzJoinAddrs: the join addresses a node announces for direct upgrade
// arrive in service metadata, from the network. joinAddrs keeps, in order,
// the entries of the value that name an address and a network with a
// transport (here New's: "", tcp, tcp4, tcp6, quic, pipe), and only those.
func FuzzJoinAddrs(f *testing.F) {
	for _, s := range []string{"tcp4://10.0.0.5:10000", "tcp://a:1,quic://[::1]:2,pipe://p", "udp://a:1,tcp://b:2", "tcp://",
		"://a:1", "a:1", "", ",", "tcp://a:1,,tcp://b:2", "TCP://a:1", "tcp://tcp://a:1", " tcp://a:1"} {
		f.Add(s)
	}
	n := New().(*node)
	f.Fuzz(func(t *testing.T, v string) {
		got := n.joinAddrs(v)
		entries := strings.Split(v, ",")
		usable := 0
		for _, e := range entries {
			if i := strings.Index(e, "://"); i >= 0 && i+3 < len(e) {
				if _, ok := n.s.transports[e[:i]]; ok {
					usable++
				}
			}
		}
		if len(got) != usable {
			t.Fatalf("joinAddrs(%q) = %+v: %d addresses, want %d", v, got, len(got), usable)
		}
		i := 0
		for _, a := range got {
			if _, ok := n.s.transports[a.network]; !ok || a.addr == "" {
				t.Fatalf("joinAddrs(%q) kept %+v", v, a)
			}
			for i < len(entries) && entries[i] != a.network+"://"+a.addr {
				i++
			}
			if i == len(entries) {
				t.Fatalf("joinAddrs(%q) = %+v: %+v is not an entry, or out of order", v, got, a)
			}
			i++
		}
	})
}
