package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestResetRoundTrip(t *testing.T) {
	// Unknown codes survive: a newer peer may send them.
	for _, c := range []Code{CodeNone, CodeRefused, CodeBacklog, CodeUnavailable, codeCount, 1000, ^Code(0)} {
		p := AppendReset(nil, c)
		if len(p) != resetSize {
			t.Fatalf("AppendReset wrote %d bytes", len(p))
		}
		got, err := ParseReset(p)
		if err != nil || got != c {
			t.Fatalf("ParseReset = %v, %v; want %v", got, err, c)
		}
	}
	if p := AppendReset(nil, CodeBacklog); string(p) != "\x00\x00\x00\x04" {
		t.Fatalf("RESET layout % x", p)
	}
}

func TestResetRejects(t *testing.T) {
	for _, n := range []int{0, 3, 5, 8} {
		_, err := ParseReset(make([]byte, n))
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("%d bytes: err = %v, want *ProtocolError", n, err)
		}
		if !strings.Contains(err.Error(), "RESET") || !strings.Contains(err.Error(), "must be 4") {
			t.Errorf("%d bytes: error %q", n, err)
		}
	}
}

func TestCodeString(t *testing.T) {
	tests := map[Code]string{
		CodeNone: "none", CodeRefused: "refused", CodeNoService: "no service", CodeNoRoute: "no route",
		CodeBacklog: "backlog full", CodeTooMany: "too many streams", CodeLinkLost: "link lost",
		CodeCancelled: "cancelled", CodeProtocol: "protocol error", CodeHopLimit: "hop limit",
		CodeShutdown: "shutdown", CodeNotAllowed: "not allowed", CodeUnavailable: "unavailable",
		13: "code(13)", 4294967295: "code(4294967295)",
	}
	for c, want := range tests {
		if got := c.String(); got != want {
			t.Errorf("Code(%d).String() = %q, want %q", uint32(c), got, want)
		}
	}
}
