package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// encode rebuilds f's wire form from its decoded fields with the Append*
// functions, so that a decode/encode round trip can be compared byte for byte.
func encode(f Frame) []byte {
	var p []byte
	switch f.Type {
	case TypeData:
		p = append(p, f.Payload...)
	case TypeOpen:
		p = mustAppendOpen(p, &f.Open)
	case TypeAccept:
		p = AppendAccept(p, f.Accept)
	case TypeReset:
		p = AppendReset(p, f.Code)
	case TypeWindow:
		p = AppendWindow(p, f.Credit)
	case TypePing, TypePong:
		p = AppendPing(p, f.Ping)
	case TypeGoAway:
		p = AppendGoAway(p, f.GoAway)
	case TypeControl:
		p = AppendControl(p, f.Kind, f.Payload)
	}
	h := Header{Length: uint32(len(p)), Type: f.Type, Flags: f.Flags, Circuit: f.Circuit}
	return append(AppendHeader(nil, h), p...)
}

// sampleFrames holds one or more valid frames of every type.
func sampleFrames() []Frame {
	return []Frame{
		{Header: Header{Type: TypeData, Circuit: 1}, Payload: []byte("hello")},
		{Header: Header{Type: TypeData, Flags: FlagFin, Circuit: 3}},
		{Header: Header{Type: TypeData, Flags: FlagFin, Circuit: 0xffffffff}, Payload: []byte("last")},
		{Header: Header{Type: TypeOpen, Circuit: 1}, Open: Open{SrcNode: 10, SrcPort: 0x80000000, DstNode: 20, DstPort: 7, Window: 256 << 10, Hops: 16}},
		{Header: Header{Type: TypeOpen, Circuit: 2}, Open: Open{SrcNode: 10, SrcPort: 5, Window: MinWindow, Hops: 16, Service: "echo.staging"}},
		{Header: Header{Type: TypeAccept, Circuit: 1}, Accept: Accept{Node: 20, Port: 7, Window: 256 << 10}},
		{Header: Header{Type: TypeReset, Circuit: 2}, Code: CodeBacklog},
		{Header: Header{Type: TypeReset, Circuit: 2}, Code: 77},
		{Header: Header{Type: TypeWindow, Circuit: 1}, Credit: 128 << 10},
		{Header: Header{Type: TypeWindow}, Credit: 32 << 20},
		{Header: Header{Type: TypePing}, Ping: 0x0102030405060708},
		{Header: Header{Type: TypePong}, Ping: 0x0102030405060708},
		{Header: Header{Type: TypeGoAway}, GoAway: GoAway{Code: CodeNone}},
		{Header: Header{Type: TypeGoAway}, GoAway: GoAway{Code: CodeProtocol, Reason: "DATA beyond link credit"}},
		{Header: Header{Type: TypeControl}, Kind: KindRouting, Payload: []byte{1, 2, 3}},
		{Header: Header{Type: TypeControl}, Kind: KindUser},
	}
}

// fuzzMaxPayload is the limit the fuzz targets decode with: the smallest a
// greeting may announce, so that the over-limit path is reached too.
const fuzzMaxPayload = MinFramePayload

func FuzzDecode(f *testing.F) {
	var all []byte
	for _, fr := range sampleFrames() {
		b := encode(fr)
		all = append(all, b...)
		f.Add(b)
		// Corruptions: a bad type, a bad flag, a cut, a wrong length byte.
		for _, c := range []struct{ at, v byte }{{3, 0x09}, {4, 0x02}, {2, 0x00}, {2, 0xff}, {8, 0x00}} {
			bad := bytes.Clone(b)
			bad[c.at] = c.v
			f.Add(bad)
		}
		f.Add(b[:len(b)-1])
	}
	f.Add(all)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		b := in
		for {
			fr, n, err := Decode(b, fuzzMaxPayload)
			if err != nil {
				if n != 0 {
					t.Fatalf("Decode returned n=%d with error %v", n, err)
				}
				return
			}
			if n == 0 {
				return
			}
			if n < HeaderSize || n > len(b) {
				t.Fatalf("Decode used %d of %d bytes", n, len(b))
			}
			if got := encode(fr); !bytes.Equal(got, b[:n]) {
				t.Fatalf("re-encoded %v as\n% x\nwant\n% x", fr.Header, got, b[:n])
			}
			b = b[n:]
		}
	})
}

func FuzzGreeting(f *testing.F) {
	g := validGreeting()
	good := AppendGreeting(nil, g)
	f.Add(good)
	f.Add(append(bytes.Clone(good), AppendHeader(nil, Header{Length: pingSize, Type: TypePing})...))
	f.Add(greetingBytes(g, Version, greetingBodyV1+4, []byte{1, 2, 3, 4}))
	f.Add(greetingBytes(g, 2, greetingBodyV1, nil))
	f.Add(greetingBytes(g, Version, 0xffff, nil))
	f.Add(good[:8])
	f.Add(good[:31])
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		g, err := ReadGreeting(r)
		if err != nil {
			return
		}
		used := len(in) - r.Len()
		if used < GreetingSize {
			t.Fatalf("accepted a greeting of %d bytes", used)
		}
		if body := int(in[6])<<8 | int(in[7]); used != 8+body {
			t.Fatalf("read %d bytes of a greeting with a %d-byte body", used, body)
		}
		re := AppendGreeting(nil, g)
		if used == GreetingSize && !bytes.Equal(re[6:], in[6:GreetingSize]) {
			t.Fatalf("re-encoded % x, read % x", re, in[:GreetingSize])
		}
		if used == GreetingSize && !bytes.Equal(re[:5], in[:5]) {
			t.Fatalf("re-encoded head % x, read % x", re[:5], in[:5])
		}
		if _, err := ReadGreeting(bytes.NewReader(re)); err != nil {
			t.Fatalf("re-encoded greeting refused: %v", err)
		}
	})
}

func FuzzOpen(f *testing.F) {
	for _, fr := range sampleFrames() {
		if fr.Type == TypeOpen {
			p := mustAppendOpen(nil, &fr.Open)
			f.Add(p)
			bad := bytes.Clone(p)
			bad[29]++
			f.Add(bad)
		}
	}
	f.Add(make([]byte, openFixed))
	f.Fuzz(func(t *testing.T, p []byte) {
		o, err := ParseOpen(p)
		if err != nil {
			return
		}
		got, err := AppendOpen(nil, &o)
		if err != nil {
			t.Fatalf("ParseOpen accepted %+v but AppendOpen refuses it: %v", o, err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("re-encoded %+v as % x, want % x", o, got, p)
		}
		if OpenSize(&o) != len(p) {
			t.Fatalf("OpenSize = %d, payload %d", OpenSize(&o), len(p))
		}
	})
}

// mustAppendOpen encodes o as AppendOpen does but without its name check, so
// tests can build the invalid payloads a broken peer would send.
func mustAppendOpen(b []byte, o *Open) []byte {
	b = binary.BigEndian.AppendUint64(b, o.SrcNode)
	b = binary.BigEndian.AppendUint32(b, o.SrcPort)
	b = binary.BigEndian.AppendUint64(b, o.DstNode)
	b = binary.BigEndian.AppendUint32(b, o.DstPort)
	b = binary.BigEndian.AppendUint32(b, o.Window)
	b = append(b, o.Hops, byte(len(o.Service)))
	return append(b, o.Service...)
}

// FuzzCheckName holds CheckName to its documented rule, checked here byte by
// byte: at most MaxNameLen bytes of printable ASCII without spaces or ':'. A
// refusal is a *ProtocolError that quotes the name or gives its length.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"", "echo", "echo.staging", "a:b", "has space", "tab\there", "\x7f", "é",
		"~!@#$%^&*()_+-=[]{}|;'\",./<>?", strings.Repeat("n", MaxNameLen), strings.Repeat("n", MaxNameLen+1),
		"0123456789abcdef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) <= MaxNameLen
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x21 || c > 0x7e || c == ':' {
				want = false
			}
		}
		err := CheckName(s)
		if (err == nil) != want {
			t.Fatalf("CheckName(%q) = %v, want accepted %v", s, err, want)
		}
		if err == nil {
			return
		}
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.What == "" {
			t.Fatalf("CheckName(%q) = %#v, want a *ProtocolError that says why", s, err)
		}
		if !strings.Contains(err.Error(), strconv.Quote(s)) && !strings.Contains(err.Error(), strconv.Itoa(len(s))) {
			t.Fatalf("CheckName(%q) = %q names neither the name nor its length", s, err)
		}
	})
}
