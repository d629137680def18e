package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestControlRoundTrip(t *testing.T) {
	tests := []struct {
		k    Kind
		body []byte
	}{
		{KindRouting, []byte("routes")},
		{KindDiscovery, nil},
		{KindUser, []byte{0, 1, 2}},
		{0xff, bytes.Repeat([]byte{7}, 4096)},
	}
	for _, tt := range tests {
		p := AppendControl([]byte{0xaa}, tt.k, tt.body)[1:]
		if len(p) != 1+len(tt.body) || p[0] != byte(tt.k) {
			t.Fatalf("AppendControl wrote % x", p[:1])
		}
		k, body, err := ParseControl(p)
		if err != nil || k != tt.k || !bytes.Equal(body, tt.body) {
			t.Fatalf("ParseControl = %d, %q, %v; want %d, %q", k, body, err, tt.k, tt.body)
		}
		if len(body) > 0 && &body[0] != &p[1] {
			t.Fatalf("ParseControl body does not alias its input")
		}
	}
}

func TestControlRejects(t *testing.T) {
	tests := []struct {
		name string
		p    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"kind 0", []byte{0, 1, 2}, "kind 0"},
		{"kind 0 alone", []byte{0}, "kind 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseControl(tt.p)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseControl error = %v, want *ProtocolError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}
