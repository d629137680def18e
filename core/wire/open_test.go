package wire

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func validOpen() Open {
	return Open{SrcNode: 0x1111, SrcPort: 0x80000001, DstNode: 0x2222, DstPort: 7, Window: 256 << 10, Hops: 16}
}

func TestOpenRoundTrip(t *testing.T) {
	tests := []Open{
		validOpen(),
		{SrcNode: 1, SrcPort: 0, DstNode: 0, DstPort: 0, Window: MinWindow, Hops: 0, Service: "echo"},
		{SrcNode: 1, DstNode: 9, DstPort: 0, Window: MinWindow, Hops: 1, Service: "echo.staging"},
		{SrcNode: ^uint64(0), SrcPort: ^uint32(0), DstNode: ^uint64(0), DstPort: ^uint32(0), Window: ^uint32(0), Hops: 255,
			Service: strings.Repeat("x", MaxNameLen)},
	}
	for _, o := range tests {
		p := mustAppendOpen(nil, &o)
		if len(p) != OpenSize(&o) {
			t.Fatalf("AppendOpen wrote %d bytes, OpenSize says %d", len(p), OpenSize(&o))
		}
		got, err := ParseOpen(p)
		if err != nil {
			t.Fatalf("ParseOpen(%+v): %v", o, err)
		}
		if got != o {
			t.Fatalf("ParseOpen = %+v, want %+v", got, o)
		}
	}
}

func TestOpenLayout(t *testing.T) {
	o := Open{SrcNode: 1, SrcPort: 2, DstNode: 3, DstPort: 4, Window: 5 << 12, Hops: 6, Service: "ab"}
	p := mustAppendOpen(nil, &o)
	if binary.BigEndian.Uint64(p[0:]) != 1 || binary.BigEndian.Uint32(p[8:]) != 2 ||
		binary.BigEndian.Uint64(p[12:]) != 3 || binary.BigEndian.Uint32(p[20:]) != 4 ||
		binary.BigEndian.Uint32(p[24:]) != 5<<12 || p[28] != 6 || p[29] != 2 || string(p[30:]) != "ab" {
		t.Fatalf("OPEN layout % x", p)
	}
}

func TestOpenRejects(t *testing.T) {
	mod := func(f func(*Open)) []byte {
		o := validOpen()
		f(&o)
		return mustAppendOpen(nil, &o)
	}
	withNameLen := func(n byte) []byte {
		p := mod(func(o *Open) { o.Service = "echo" })
		p[29] = n
		return p
	}
	tests := []struct {
		name string
		p    []byte
		want []string
	}{
		{"empty", nil, []string{"OPEN payload of 0 bytes", "at least 30"}},
		{"short", mod(func(*Open) {})[:openFixed-1], []string{"29 bytes"}},
		{"name length too long", withNameLen(5), []string{"name length 5", "34 bytes"}},
		{"name length too short", withNameLen(3), []string{"name length 3", "34 bytes"}},
		{"src node 0", mod(func(o *Open) { o.SrcNode = 0 }), []string{"node 0"}},
		{"window 0", mod(func(o *Open) { o.Window = 0 }), []string{"window 0"}},
		{"window below min", mod(func(o *Open) { o.Window = MinWindow - 1 }), []string{"window 4095", "4096"}},
		{"no port no service", mod(func(o *Open) { o.DstPort = 0 }), []string{"neither a port nor a service"}},
		{"port without node", mod(func(o *Open) { o.DstNode = 0 }), []string{"port 7", "no node"}},
		{"name with colon", mod(func(o *Open) { o.Service = "echo:7" }), []string{`"echo:7"`, "0x3a"}},
		{"name with space", mod(func(o *Open) { o.Service = "my echo" }), []string{"0x20"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseOpen(tt.p)
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseOpen error = %v, want *ProtocolError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		s    string
		want string // "" if accepted, else a substring of the error
	}{
		{"empty", "", ""},
		{"plain", "echo", ""},
		{"punctuation", "echo.staging-1_a/b@c~!", ""},
		{"max length", strings.Repeat("a", MaxNameLen), ""},
		{"256 bytes", strings.Repeat("a", MaxNameLen+1), "256 bytes exceeds 255"},
		{"colon", "echo:7", "0x3a"},
		{"leading colon", ":7", "0x3a"},
		{"space", "e cho", "0x20"},
		{"tab", "e\tcho", "0x09"},
		{"newline", "echo\n", "0x0a"},
		{"nul", "e\x00", "0x00"},
		{"DEL", "echo\x7f", "0x7f"},
		{"non-ASCII", "écho", "0xc3"},
		{"high byte", "echo\xff", "0xff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckName(tt.s)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckName(%q) = %v", tt.s, err)
				}
				return
			}
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("CheckName(%q) = %v, want *ProtocolError", tt.s, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// AppendOpen writes the name length as one byte, so a name over MaxNameLen
// bytes yields a payload whose length byte disagrees with the name it carries.
func TestAppendOpenLongName(t *testing.T) {
	o := validOpen()
	o.Service = strings.Repeat("a", MaxNameLen+1)
	if p, err := AppendOpen(nil, &o); err == nil {
		t.Fatalf("AppendOpen took a %d-byte name and wrote length byte %d", len(o.Service), p[29])
	}
}
