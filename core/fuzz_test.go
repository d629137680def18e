package core

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core/wire"
)

// FuzzLink feeds a real node's link whatever bytes follow a valid greeting:
// frames of every type in any order, for circuits that exist or not, within
// credit or beyond it. The node must not panic, must end the link when the
// bytes run out, and must stay able to serve other links. The wire decoders
// have their own targets (core/wire); this one drives the state machine
// behind them: opens, accepts, data, credit, resets and their interleavings.
func FuzzLink(f *testing.F) {
	frame := func(h wire.Header, p []byte) []byte {
		h.Length = uint32(len(p))
		return append(wire.AppendHeader(nil, h), p...)
	}
	var seq []byte
	add := func(b []byte) { seq = append(seq, b...) }
	open := func(circuit uint32, port uint32) []byte {
		o, _ := wire.AppendOpen(nil, &wire.Open{SrcNode: 77, SrcPort: 1<<24 + circuit, DstNode: 0, DstPort: port, Window: 64 << 10, Hops: 2})
		return frame(wire.Header{Type: wire.TypeOpen, Circuit: circuit}, o)
	}
	add(open(1, 7))
	add(frame(wire.Header{Type: wire.TypeData, Circuit: 1}, []byte("hello")))
	add(frame(wire.Header{Type: wire.TypeWindow, Circuit: 1}, wire.AppendWindow(nil, 4096)))
	add(frame(wire.Header{Type: wire.TypeData, Flags: wire.FlagFin, Circuit: 1}, nil))
	add(open(3, 9))
	add(frame(wire.Header{Type: wire.TypeData, Circuit: 3}, make([]byte, 1000)))
	add(frame(wire.Header{Type: wire.TypeReset, Circuit: 3}, wire.AppendReset(nil, wire.CodeCancelled)))
	add(frame(wire.Header{Type: wire.TypeAccept, Circuit: 5}, wire.AppendAccept(nil, wire.Accept{Node: 77, Port: 1, Window: 4096})))
	add(frame(wire.Header{Type: wire.TypePing}, wire.AppendPing(nil, 42)))
	add(frame(wire.Header{Type: wire.TypeWindow}, wire.AppendWindow(nil, 1<<20)))
	add(frame(wire.Header{Type: wire.TypeControl}, wire.AppendControl(nil, wire.KindRouting, []byte{1, 2, 3})))
	add(frame(wire.Header{Type: wire.TypeGoAway}, wire.AppendGoAway(nil, wire.GoAway{Code: wire.CodeShutdown, Reason: "bye"})))
	f.Add(seq)
	f.Add(open(1, 7))
	f.Add(append(open(1, 7), open(1, 7)...)) // a circuit opened twice
	f.Add(append(open(2, 7), frame(wire.Header{Type: wire.TypeData, Circuit: 2}, make([]byte, 70<<10))...))

	cfg := testConfig()
	cfg.StreamWindow, cfg.MaxStreamWindow, cfg.LinkWindow = 64<<10, 128<<10, 256<<10
	n := newNode(f, cfg)
	ln, err := n.Bind(7, "")
	if err != nil {
		f.Fatal(err)
	}
	go func() { // accept, read a little, write a little, close
		for {
			s, err := ln.AcceptStream()
			if err != nil {
				return
			}
			go func() {
				defer s.Close()
				s.SetDeadline(time.Now().Add(time.Second))
				s.Read(make([]byte, 64))
				s.Write([]byte("reply"))
			}()
		}
	}()
	greeting := wire.AppendGreeting(nil, wire.Greeting{Node: 77, Caps: wire.CapClient | wire.CapServer, MaxFrame: 64 << 10, LinkWindow: 1 << 20, StreamWindow: 64 << 10})

	f.Fuzz(func(t *testing.T, in []byte) {
		c1, c2 := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- n.Attach(c1) }()
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, c2); close(drained) }()
		c2.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c2.Write(append(greeting[:len(greeting):len(greeting)], in...))
		c2.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the link did not end when its peer closed")
		}
		<-drained
		if len(n.Links()) != 0 {
			t.Fatalf("a link is left after its peer closed: %+v", n.Links())
		}
	})
}

// FuzzParseNodeID holds ParseNodeID to its rule, checked here character by
// character: exactly 16 hex digits, not all zero (either case is read; String
// writes lower case). An accepted id is not 0 and reads back from its String;
// a refusal says "node id" and quotes the input.
func FuzzParseNodeID(f *testing.F) {
	for _, s := range []string{"0000000000000001", "00000000000000b2", "ffffffffffffffff", "DEADBEEFdeadbeef",
		"0000000000000000", "000000000000001", "00000000000000001", "", "0x00000000000001", "+000000000000001",
		"-000000000000001", "000000000000000g", "0000_00000000001", "00000000000000b2:7", "ｆ00000000000001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, zero := len(s) == 16, true
		for _, c := range []byte(s) {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				want = false
			}
			zero = zero && c == '0'
		}
		want = want && !zero
		id, err := ParseNodeID(s)
		if (err == nil) != want {
			t.Fatalf("ParseNodeID(%q) = %v, %v; want accepted %v", s, id, err, want)
		}
		if err != nil {
			if id != 0 {
				t.Fatalf("ParseNodeID(%q) returned id %v with error %v", s, id, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "node id") || !strings.Contains(msg, fmt.Sprintf("%q", s)) {
				t.Fatalf("ParseNodeID(%q) error %q does not name the node id", s, msg)
			}
			return
		}
		if id == 0 {
			t.Fatalf("ParseNodeID(%q) accepted node id 0", s)
		}
		if str := id.String(); str != strings.ToLower(s) {
			t.Fatalf("ParseNodeID(%q).String() = %q", s, str)
		}
		if again, err := ParseNodeID(id.String()); err != nil || again != id {
			t.Fatalf("ParseNodeID(%q) = %v, %v; want %v", id.String(), again, err, id)
		}
	})
}
