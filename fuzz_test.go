package astranet

import (
	"strconv"
	"strings"
	"testing"
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
