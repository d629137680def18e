package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestAcceptRoundTrip(t *testing.T) {
	tests := []Accept{
		{Node: 1, Port: 1, Window: MinWindow},
		{Node: 0xfedcba9876543210, Port: 0x80000000, Window: 256 << 10},
		{Node: ^uint64(0), Port: ^uint32(0), Window: ^uint32(0)},
	}
	for _, a := range tests {
		p := AppendAccept([]byte{9}, a)[1:]
		if len(p) != acceptSize {
			t.Fatalf("AppendAccept wrote %d bytes, want %d", len(p), acceptSize)
		}
		got, err := ParseAccept(p)
		if err != nil || got != a {
			t.Fatalf("ParseAccept = %+v, %v; want %+v", got, err, a)
		}
	}
}

func TestAcceptRejects(t *testing.T) {
	ok := AppendAccept(nil, Accept{Node: 5, Port: 6, Window: MinWindow})
	tests := []struct {
		name string
		p    []byte
		want []string
	}{
		{"empty", nil, []string{"ACCEPT payload of 0 bytes", "must be 16"}},
		{"short", ok[:acceptSize-1], []string{"15 bytes"}},
		{"long", append(ok[:acceptSize:acceptSize], 0), []string{"17 bytes"}},
		{"node 0", AppendAccept(nil, Accept{Node: 0, Port: 6, Window: MinWindow}), []string{"from 0:6", "non-zero"}},
		{"port 0", AppendAccept(nil, Accept{Node: 5, Port: 0, Window: MinWindow}), []string{"from 5:0", "non-zero"}},
		{"window below min", AppendAccept(nil, Accept{Node: 5, Port: 6, Window: MinWindow - 1}), []string{"window 4095", "4096"}},
		{"window 0", AppendAccept(nil, Accept{Node: 5, Port: 6}), []string{"window 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAccept(tt.p)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseAccept error = %v, want *ProtocolError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
