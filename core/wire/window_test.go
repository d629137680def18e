package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestWindowRoundTrip(t *testing.T) {
	for _, inc := range []uint32{1, MinWindow, 128 << 10, ^uint32(0)} {
		p := AppendWindow(nil, inc)
		if len(p) != windowSize {
			t.Fatalf("AppendWindow wrote %d bytes", len(p))
		}
		got, err := ParseWindow(p)
		if err != nil || got != inc {
			t.Fatalf("ParseWindow = %d, %v; want %d", got, err, inc)
		}
	}
	if p := AppendWindow(nil, 0x01020304); string(p) != "\x01\x02\x03\x04" {
		t.Fatalf("WINDOW layout % x", p)
	}
}

func TestWindowRejects(t *testing.T) {
	tests := []struct {
		name string
		p    []byte
		want []string
	}{
		{"empty", nil, []string{"WINDOW payload of 0 bytes", "must be 4"}},
		{"short", []byte{0, 0, 1}, []string{"3 bytes"}},
		{"long", []byte{0, 0, 0, 1, 0}, []string{"5 bytes"}},
		{"zero increment", []byte{0, 0, 0, 0}, []string{"increment of 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWindow(tt.p)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseWindow error = %v, want *ProtocolError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
