package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDecodeStream(t *testing.T) {
	frames := sampleFrames()
	var in []byte
	var sizes []int
	for _, f := range frames {
		b := encode(f)
		in = append(in, b...)
		sizes = append(sizes, len(b))
	}
	b := in
	for i, want := range frames {
		got, n, err := Decode(b, MaxFramePayload)
		if err != nil {
			t.Fatalf("frame %d (%v): %v", i, want.Type, err)
		}
		if n != sizes[i] {
			t.Fatalf("frame %d (%v): n = %d, want %d", i, want.Type, n, sizes[i])
		}
		want.Length = uint32(n - HeaderSize)
		if !sameFrame(got, want) {
			t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
		}
		b = b[n:]
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes left", len(b))
	}
	if _, n, err := Decode(b, MaxFramePayload); n != 0 || err != nil {
		t.Fatalf("Decode(empty) = %d, %v", n, err)
	}
}

// sameFrame compares frames, treating nil and empty payloads alike.
func sameFrame(a, b Frame) bool {
	return a.Header == b.Header && a.Open == b.Open && a.Accept == b.Accept && a.Code == b.Code &&
		a.Credit == b.Credit && a.Ping == b.Ping && a.GoAway == b.GoAway && a.Kind == b.Kind &&
		bytes.Equal(a.Payload, b.Payload)
}

func TestDecodePayloadAliases(t *testing.T) {
	for _, f := range sampleFrames() {
		if len(f.Payload) == 0 {
			continue
		}
		b := encode(f)
		got, _, err := Decode(b, MaxFramePayload)
		if err != nil {
			t.Fatal(err)
		}
		if &got.Payload[len(got.Payload)-1] != &b[len(b)-1] {
			t.Fatalf("%v payload does not alias the input", f.Type)
		}
	}
}

func TestDecodePartial(t *testing.T) {
	for _, f := range sampleFrames() {
		b := encode(f)
		for i := 0; i < len(b); i++ {
			got, n, err := Decode(b[:i], MaxFramePayload)
			if n != 0 || err != nil {
				t.Fatalf("%v, %d of %d bytes: n = %d, err = %v", f.Type, i, len(b), n, err)
			}
			if !sameFrame(got, Frame{}) {
				t.Fatalf("%v, %d of %d bytes: frame %+v", f.Type, i, len(b), got)
			}
		}
		if _, n, err := Decode(b, MaxFramePayload); n != len(b) || err != nil {
			t.Fatalf("%v whole: n = %d, err = %v", f.Type, n, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	open := Open{SrcNode: 1, DstNode: 2, DstPort: 3, Window: MinWindow, Hops: 16}
	openNoWindow := open
	openNoWindow.Window = 0
	frame := func(h Header, p []byte) []byte {
		h.Length = uint32(len(p))
		return append(AppendHeader(nil, h), p...)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"unknown type", frame(Header{Type: 0x42, Circuit: 1}, nil), "unknown frame type 0x42"},
		{"over limit before payload arrives", AppendHeader(nil, Header{Length: 5000, Type: TypeData, Circuit: 1}), "5000"},
		{"bad length before payload arrives", AppendHeader(nil, Header{Length: 5, Type: TypePing}), "PING payload of 5 bytes"},
		{"OPEN payload", frame(Header{Type: TypeOpen, Circuit: 1}, mustAppendOpen(nil, &openNoWindow)), "OPEN window 0"},
		{"ACCEPT payload", frame(Header{Type: TypeAccept, Circuit: 1}, AppendAccept(nil, Accept{Port: 1, Window: MinWindow})), "ACCEPT from 0:1"},
		{"WINDOW payload", frame(Header{Type: TypeWindow}, AppendWindow(nil, 0)), "increment of 0"},
		{"CONTROL payload", frame(Header{Type: TypeControl}, []byte{0}), "kind 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, n, err := Decode(tt.in, 4096)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("Decode error = %v, want *ProtocolError", err)
			}
			if n != 0 {
				t.Errorf("n = %d with an error", n)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParsePayload(t *testing.T) {
	for _, f := range sampleFrames() {
		b := encode(f)
		h, err := ParseHeader(b, MaxFramePayload)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParsePayload(h, b[HeaderSize:])
		if err != nil {
			t.Fatalf("%v: %v", f.Type, err)
		}
		f.Length = h.Length
		if !sameFrame(got, f) {
			t.Fatalf("ParsePayload = %+v, want %+v", got, f)
		}
	}
	_, err := ParsePayload(Header{Type: TypeReset, Circuit: 1}, []byte{1})
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("ParsePayload(short RESET) = %v", err)
	}
}
