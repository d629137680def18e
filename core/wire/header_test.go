package wire

import (
	"errors"
	"strings"
	"testing"
)

// validLength is a payload length the header accepts for t.
var validLength = map[Type]uint32{
	TypeData:    100,
	TypeOpen:    openFixed + 4,
	TypeAccept:  acceptSize,
	TypeReset:   resetSize,
	TypeWindow:  windowSize,
	TypePing:    pingSize,
	TypePong:    pingSize,
	TypeGoAway:  goAwayFixed + 10,
	TypeControl: 1,
}

func TestHeaderRoundTrip(t *testing.T) {
	for typ := Type(0); typ < typeCount; typ++ {
		circuits := []uint32{1, 2, 0xfffffffe, 0xffffffff}
		if typ == TypePing || typ == TypePong || typ == TypeGoAway || typ == TypeControl {
			circuits = []uint32{0}
		}
		if typ == TypeWindow {
			circuits = append(circuits, 0)
		}
		flags := []Flags{0}
		if typ == TypeData {
			flags = append(flags, FlagFin)
		}
		for _, c := range circuits {
			for _, fl := range flags {
				h := Header{Length: validLength[typ], Type: typ, Flags: fl, Circuit: c}
				b := AppendHeader([]byte{0xaa}, h)
				if len(b) != 1+HeaderSize || b[0] != 0xaa {
					t.Fatalf("%v: AppendHeader wrote % x", h, b)
				}
				var p [HeaderSize]byte
				PutHeader(p[:], h)
				if string(p[:]) != string(b[1:]) {
					t.Fatalf("%v: PutHeader % x, AppendHeader % x", h, p, b[1:])
				}
				got, err := ParseHeader(b[1:], MaxFramePayload)
				if err != nil {
					t.Fatalf("%v: %v", h, err)
				}
				if got != h {
					t.Fatalf("ParseHeader = %v, want %v", got, h)
				}
			}
		}
	}
}

func TestHeaderLayout(t *testing.T) {
	h := Header{Length: 0x123456, Type: TypeData, Flags: FlagFin, Circuit: 0x89abcdef}
	want := []byte{0x12, 0x34, 0x56, 0x00, 0x01, 0x89, 0xab, 0xcd, 0xef}
	if got := AppendHeader(nil, h); string(got) != string(want) {
		t.Fatalf("AppendHeader = % x, want % x", got, want)
	}
	got, err := ParseHeader(want, MaxFramePayload)
	if err != nil || got != h {
		t.Fatalf("ParseHeader = %v, %v", got, err)
	}
	if s := h.String(); !strings.Contains(s, "DATA") || !strings.Contains(s, "circuit=2309737967") || !strings.Contains(s, "len=1193046") {
		t.Fatalf("Header.String() = %q", s)
	}
}

func TestHeaderRejects(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		max  uint32
		want []string
	}{
		{"unknown type", Header{Type: typeCount, Circuit: 1}, MaxFramePayload, []string{"unknown frame type 0x09"}},
		{"unknown type ff", Header{Type: 0xff}, MaxFramePayload, []string{"unknown frame type 0xff"}},
		{"DATA unknown flag", Header{Length: 1, Type: TypeData, Flags: 0x2, Circuit: 1}, MaxFramePayload, []string{"DATA", "flags 0x2"}},
		{"DATA all flags", Header{Length: 1, Type: TypeData, Flags: 0xff, Circuit: 1}, MaxFramePayload, []string{"DATA", "flags 0xff"}},
		{"FIN on OPEN", Header{Length: openFixed + 1, Type: TypeOpen, Flags: FlagFin, Circuit: 1}, MaxFramePayload, []string{"OPEN", "flags 0x1"}},
		{"FIN on ACCEPT", Header{Length: acceptSize, Type: TypeAccept, Flags: FlagFin, Circuit: 1}, MaxFramePayload, []string{"ACCEPT", "flags 0x1"}},
		{"FIN on RESET", Header{Length: resetSize, Type: TypeReset, Flags: FlagFin, Circuit: 1}, MaxFramePayload, []string{"RESET", "flags 0x1"}},
		{"FIN on WINDOW", Header{Length: windowSize, Type: TypeWindow, Flags: FlagFin, Circuit: 1}, MaxFramePayload, []string{"WINDOW", "flags 0x1"}},
		{"FIN on PING", Header{Length: pingSize, Type: TypePing, Flags: FlagFin}, MaxFramePayload, []string{"PING", "flags 0x1"}},
		{"FIN on PONG", Header{Length: pingSize, Type: TypePong, Flags: FlagFin}, MaxFramePayload, []string{"PONG", "flags 0x1"}},
		{"FIN on GOAWAY", Header{Length: goAwayFixed, Type: TypeGoAway, Flags: FlagFin}, MaxFramePayload, []string{"GOAWAY", "flags 0x1"}},
		{"FIN on CONTROL", Header{Length: 1, Type: TypeControl, Flags: FlagFin}, MaxFramePayload, []string{"CONTROL", "flags 0x1"}},
		{"DATA on circuit 0", Header{Length: 1, Type: TypeData}, MaxFramePayload, []string{"DATA on circuit 0"}},
		{"OPEN on circuit 0", Header{Length: openFixed + 1, Type: TypeOpen}, MaxFramePayload, []string{"OPEN on circuit 0"}},
		{"ACCEPT on circuit 0", Header{Length: acceptSize, Type: TypeAccept}, MaxFramePayload, []string{"ACCEPT on circuit 0"}},
		{"RESET on circuit 0", Header{Length: resetSize, Type: TypeReset}, MaxFramePayload, []string{"RESET on circuit 0"}},
		{"PING on a circuit", Header{Length: pingSize, Type: TypePing, Circuit: 7}, MaxFramePayload, []string{"PING on circuit 7"}},
		{"PONG on a circuit", Header{Length: pingSize, Type: TypePong, Circuit: 7}, MaxFramePayload, []string{"PONG on circuit 7"}},
		{"GOAWAY on a circuit", Header{Length: goAwayFixed, Type: TypeGoAway, Circuit: 7}, MaxFramePayload, []string{"GOAWAY on circuit 7"}},
		{"CONTROL on a circuit", Header{Length: 1, Type: TypeControl, Circuit: 7}, MaxFramePayload, []string{"CONTROL on circuit 7"}},
		{"DATA over max", Header{Length: 4097, Type: TypeData, Circuit: 1}, 4096, []string{"DATA", "4097", "4096"}},
		{"CONTROL over max", Header{Length: 4097, Type: TypeControl}, 4096, []string{"CONTROL", "4097", "4096"}},
		{"OPEN over small max", Header{Length: openFixed, Type: TypeOpen, Circuit: 1}, 10, []string{"OPEN", "30", "10"}},
		{"OPEN too short", Header{Length: openFixed - 1, Type: TypeOpen, Circuit: 1}, MaxFramePayload, []string{"OPEN", "29", "[30, 285]"}},
		{"OPEN too long", Header{Length: openFixed + MaxNameLen + 1, Type: TypeOpen, Circuit: 1}, MaxFramePayload, []string{"OPEN", "286", "[30, 285]"}},
		{"ACCEPT short", Header{Length: acceptSize - 1, Type: TypeAccept, Circuit: 1}, MaxFramePayload, []string{"ACCEPT", "15", "must be 16"}},
		{"ACCEPT long", Header{Length: acceptSize + 1, Type: TypeAccept, Circuit: 1}, MaxFramePayload, []string{"ACCEPT", "17", "must be 16"}},
		{"RESET short", Header{Length: 0, Type: TypeReset, Circuit: 1}, MaxFramePayload, []string{"RESET", "0 bytes", "must be 4"}},
		{"RESET long", Header{Length: 5, Type: TypeReset, Circuit: 1}, MaxFramePayload, []string{"RESET", "5 bytes", "must be 4"}},
		{"WINDOW short", Header{Length: 3, Type: TypeWindow}, MaxFramePayload, []string{"WINDOW", "3 bytes", "must be 4"}},
		{"WINDOW long", Header{Length: 8, Type: TypeWindow, Circuit: 1}, MaxFramePayload, []string{"WINDOW", "8 bytes", "must be 4"}},
		{"PING short", Header{Length: 7, Type: TypePing}, MaxFramePayload, []string{"PING", "7 bytes", "must be 8"}},
		{"PONG long", Header{Length: 9, Type: TypePong}, MaxFramePayload, []string{"PONG", "9 bytes", "must be 8"}},
		{"GOAWAY short", Header{Length: 3, Type: TypeGoAway}, MaxFramePayload, []string{"GOAWAY", "3 bytes", "[4, 1028]"}},
		{"GOAWAY long", Header{Length: 1029, Type: TypeGoAway}, MaxFramePayload, []string{"GOAWAY", "1029 bytes", "[4, 1028]"}},
		{"CONTROL empty", Header{Length: 0, Type: TypeControl}, MaxFramePayload, []string{"CONTROL", "0 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseHeader(AppendHeader(nil, tt.h), tt.max)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseHeader(%v) error = %v, want *ProtocolError", tt.h, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestHeaderLengthBounds(t *testing.T) {
	ok := []Header{
		{Length: 0, Type: TypeData, Circuit: 1},
		{Length: 0, Type: TypeData, Flags: FlagFin, Circuit: 1},
		{Length: MaxFramePayload, Type: TypeData, Circuit: 1},
		{Length: openFixed, Type: TypeOpen, Circuit: 1},
		{Length: openFixed + MaxNameLen, Type: TypeOpen, Circuit: 1},
		{Length: goAwayFixed, Type: TypeGoAway},
		{Length: goAwayFixed + MaxReasonLen, Type: TypeGoAway},
		{Length: MaxFramePayload, Type: TypeControl},
		{Length: windowSize, Type: TypeWindow},
	}
	for _, h := range ok {
		if _, err := ParseHeader(AppendHeader(nil, h), MaxFramePayload); err != nil {
			t.Errorf("ParseHeader(%v): %v", h, err)
		}
	}
	// The limit is inclusive.
	h := Header{Length: 4096, Type: TypeData, Circuit: 1}
	if _, err := ParseHeader(AppendHeader(nil, h), 4096); err != nil {
		t.Errorf("payload at the limit refused: %v", err)
	}
}

func TestHeaderTruncated(t *testing.T) {
	b := AppendHeader(nil, Header{Length: 1, Type: TypeData, Circuit: 1})
	for i := 0; i < HeaderSize; i++ {
		_, err := ParseHeader(b[:i], MaxFramePayload)
		var pe *ProtocolError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("%d bytes: err = %v", i, err)
		}
	}
}

func TestTypeString(t *testing.T) {
	tests := map[Type]string{
		TypeData: "DATA", TypeOpen: "OPEN", TypeAccept: "ACCEPT", TypeReset: "RESET",
		TypeWindow: "WINDOW", TypePing: "PING", TypePong: "PONG", TypeGoAway: "GOAWAY",
		TypeControl: "CONTROL", 9: "type(0x09)", 0xff: "type(0xff)",
	}
	for typ, want := range tests {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(typ), got, want)
		}
	}
}
