package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestPingRoundTrip(t *testing.T) {
	for _, v := range []uint64{0, 1, 0x0102030405060708, ^uint64(0)} {
		p := AppendPing(nil, v)
		if len(p) != pingSize {
			t.Fatalf("AppendPing wrote %d bytes", len(p))
		}
		got, err := ParsePing(p)
		if err != nil || got != v {
			t.Fatalf("ParsePing = %d, %v; want %d", got, err, v)
		}
	}
	if p := AppendPing(nil, 0x0102030405060708); string(p) != "\x01\x02\x03\x04\x05\x06\x07\x08" {
		t.Fatalf("PING layout % x", p)
	}
}

func TestPingRejects(t *testing.T) {
	for _, n := range []int{0, 7, 9, 16} {
		_, err := ParsePing(make([]byte, n))
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("%d bytes: err = %v, want *ProtocolError", n, err)
		}
		if !strings.Contains(err.Error(), "must be 8") {
			t.Errorf("%d bytes: error %q", n, err)
		}
	}
}
