package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func validGreeting() Greeting {
	return Greeting{
		Node:         0x0123456789abcdef,
		Caps:         CapRouter | CapServer | CapClient,
		MaxFrame:     64 << 10,
		LinkWindow:   64 << 20,
		StreamWindow: 256 << 10,
	}
}

// greetingBytes is g's wire form with the version and body length overridden
// and extra bytes appended to the body.
func greetingBytes(g Greeting, version byte, bodyLen uint16, extra []byte) []byte {
	b := AppendGreeting(nil, g)
	b[4] = version
	binary.BigEndian.PutUint16(b[6:8], bodyLen)
	return append(b, extra...)
}

func TestGreetingRoundTrip(t *testing.T) {
	tests := []Greeting{
		validGreeting(),
		{Node: 1, MaxFrame: MinFramePayload, LinkWindow: MinWindow, StreamWindow: MinWindow},
		{Node: ^uint64(0), Caps: ^uint32(0), MaxFrame: MaxFramePayload, LinkWindow: ^uint32(0), StreamWindow: ^uint32(0)},
	}
	for _, g := range tests {
		b := AppendGreeting([]byte("prefix"), g)
		b = b[len("prefix"):]
		if len(b) != GreetingSize {
			t.Fatalf("AppendGreeting wrote %d bytes, want %d", len(b), GreetingSize)
		}
		if string(b[:4]) != Magic || b[4] != Version || b[5] != 0 || binary.BigEndian.Uint16(b[6:8]) != greetingBodyV1 {
			t.Fatalf("greeting head % x", b[:8])
		}
		got, err := ReadGreeting(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("ReadGreeting(%+v): %v", g, err)
		}
		if got != g {
			t.Fatalf("ReadGreeting = %+v, want %+v", got, g)
		}
	}
}

func TestGreetingRejects(t *testing.T) {
	mod := func(f func(*Greeting)) Greeting {
		g := validGreeting()
		f(&g)
		return g
	}
	badMagic := AppendGreeting(nil, validGreeting())
	copy(badMagic, "HTTP")
	tests := []struct {
		name string
		in   []byte
		want []string // substrings of the error
	}{
		{"bad magic", badMagic, []string{"bad magic", `"HTTP"`}},
		{"version 0", greetingBytes(validGreeting(), 0, greetingBodyV1, nil), []string{"version 0"}},
		{"version 2", greetingBytes(validGreeting(), 2, greetingBodyV1, nil), []string{"version 2"}},
		{"body too small", greetingBytes(validGreeting(), Version, greetingBodyV1-1, nil), []string{"body length 23"}},
		{"body zero", greetingBytes(validGreeting(), Version, 0, nil), []string{"body length 0"}},
		{"body too big", greetingBytes(validGreeting(), Version, greetingBodyMax+1, make([]byte, greetingBodyMax)), []string{"body length 1025"}},
		{"body max uint16", greetingBytes(validGreeting(), Version, 0xffff, nil), []string{"body length 65535"}},
		{"node 0", AppendGreeting(nil, mod(func(g *Greeting) { g.Node = 0 })), []string{"node id 0"}},
		{"max frame too small", AppendGreeting(nil, mod(func(g *Greeting) { g.MaxFrame = MinFramePayload - 1 })), []string{"max frame 4095"}},
		{"max frame zero", AppendGreeting(nil, mod(func(g *Greeting) { g.MaxFrame = 0 })), []string{"max frame 0"}},
		{"max frame too big", AppendGreeting(nil, mod(func(g *Greeting) { g.MaxFrame = MaxFramePayload + 1 })), []string{"max frame 16777216"}},
		{"link window too small", AppendGreeting(nil, mod(func(g *Greeting) { g.LinkWindow = MinWindow - 1 })), []string{"link window 4095"}},
		{"stream window too small", AppendGreeting(nil, mod(func(g *Greeting) { g.StreamWindow = MinWindow - 1 })), []string{"stream window 4095"}},
		{"stream window above link window", AppendGreeting(nil, mod(func(g *Greeting) {
			g.LinkWindow, g.StreamWindow = 1<<20, 1<<20+1
		})), []string{"stream window 1048577", "link window 1048576"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadGreeting(bytes.NewReader(tt.in))
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("ReadGreeting error = %v, want *ProtocolError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestGreetingStreamWindowEqualsLinkWindow(t *testing.T) {
	g := validGreeting()
	g.StreamWindow = g.LinkWindow
	if _, err := ReadGreeting(bytes.NewReader(AppendGreeting(nil, g))); err != nil {
		t.Fatalf("stream window == link window refused: %v", err)
	}
}

// A later version may send a longer body; its extra bytes are skipped exactly,
// so the frames that follow are read from the same reader.
func TestGreetingLongerBody(t *testing.T) {
	for _, extra := range []int{1, 8, greetingBodyMax - greetingBodyV1} {
		g := validGreeting()
		ext := bytes.Repeat([]byte{0xee}, extra)
		in := greetingBytes(g, Version, uint16(greetingBodyV1+extra), ext)
		in = AppendHeader(in, Header{Length: pingSize, Type: TypePing})
		in = AppendPing(in, 42)
		r := bytes.NewReader(in)
		got, err := ReadGreeting(r)
		if err != nil {
			t.Fatalf("extra %d: %v", extra, err)
		}
		if got != g {
			t.Fatalf("extra %d: got %+v, want %+v", extra, got, g)
		}
		rest, _ := io.ReadAll(r)
		f, n, err := Decode(rest, MinFramePayload)
		if err != nil || n != len(rest) || f.Type != TypePing || f.Ping != 42 {
			t.Fatalf("extra %d: frame after greeting: %+v n=%d err=%v", extra, f, n, err)
		}
	}
}

func TestGreetingTruncated(t *testing.T) {
	full := AppendGreeting(nil, validGreeting())
	for i := 0; i < len(full); i++ {
		_, err := ReadGreeting(bytes.NewReader(full[:i]))
		switch {
		case i == 0:
			if err != io.EOF {
				t.Errorf("%d bytes: err = %v, want io.EOF", i, err)
			}
		case i == 8:
			// See TestGreetingTruncatedAfterHead.
			if err != io.EOF && err != io.ErrUnexpectedEOF {
				t.Errorf("%d bytes: err = %v, want io.EOF or io.ErrUnexpectedEOF", i, err)
			}
		default:
			if err != io.ErrUnexpectedEOF {
				t.Errorf("%d bytes: err = %v, want io.ErrUnexpectedEOF", i, err)
			}
		}
	}
}

// A peer that sends a whole head and then closes has sent a truncated greeting,
// which is not the clean "closed before a word" that io.EOF means.
func TestGreetingTruncatedAfterHead(t *testing.T) {
	full := AppendGreeting(nil, validGreeting())
	if _, err := ReadGreeting(bytes.NewReader(full[:8])); err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestGreetingReaderError(t *testing.T) {
	boom := errors.New("boom")
	if _, err := ReadGreeting(errReader{boom}); err != boom {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	r := io.MultiReader(bytes.NewReader(AppendGreeting(nil, validGreeting())[:10]), errReader{boom})
	if _, err := ReadGreeting(r); err != boom {
		t.Fatalf("mid-body err = %v, want %v", err, boom)
	}
}

func TestParseGreetingBodyShort(t *testing.T) {
	body := AppendGreeting(nil, validGreeting())[8:]
	_, err := ParseGreetingBody(body[:greetingBodyV1-1])
	if err == nil || !strings.Contains(err.Error(), "body of 23 bytes") {
		t.Fatalf("err = %v", err)
	}
	if _, err := ParseGreetingBody(append(body, 1, 2, 3)); err != nil {
		t.Fatalf("longer body: %v", err)
	}
}
