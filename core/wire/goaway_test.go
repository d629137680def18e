package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestGoAwayRoundTrip(t *testing.T) {
	tests := []GoAway{
		{Code: CodeNone},
		{Code: CodeShutdown, Reason: "node closing"},
		{Code: CodeProtocol, Reason: "DATA beyond link credit on circuit 5"},
		{Code: 999, Reason: strings.Repeat("r", MaxReasonLen)},
		{Code: CodeProtocol, Reason: "\xff\x00 not text"},
	}
	for _, g := range tests {
		p := AppendGoAway(nil, g)
		if len(p) != goAwayFixed+len(g.Reason) {
			t.Fatalf("AppendGoAway wrote %d bytes", len(p))
		}
		got, err := ParseGoAway(p)
		if err != nil || got != g {
			t.Fatalf("ParseGoAway = %+v, %v; want %+v", got, err, g)
		}
	}
}

func TestGoAwayReasonCut(t *testing.T) {
	g := GoAway{Code: CodeProtocol, Reason: strings.Repeat("x", MaxReasonLen+100)}
	p := AppendGoAway(nil, g)
	if len(p) != goAwayFixed+MaxReasonLen {
		t.Fatalf("AppendGoAway wrote %d bytes, want %d", len(p), goAwayFixed+MaxReasonLen)
	}
	got, err := ParseGoAway(p)
	if err != nil || got.Reason != g.Reason[:MaxReasonLen] || got.Code != g.Code {
		t.Fatalf("ParseGoAway = %+v, %v", got, err)
	}
}

func TestGoAwayRejects(t *testing.T) {
	for _, n := range []int{0, 3, goAwayFixed + MaxReasonLen + 1} {
		_, err := ParseGoAway(make([]byte, n))
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("%d bytes: err = %v, want *ProtocolError", n, err)
		}
		if !strings.Contains(err.Error(), "GOAWAY") || !strings.Contains(err.Error(), "[4, 1028]") {
			t.Errorf("%d bytes: error %q", n, err)
		}
	}
}
