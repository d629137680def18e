package core

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core/wire"
)

// rawPeer is a hand-driven peer on a real node's link: it greets as node id
// and then sends whatever frames the test writes; the frames the node sends
// arrive, decoded, on frames.
type rawPeer struct {
	conn   net.Conn
	frames chan wire.Frame
	oddIDs bool // this peer allocates odd circuit ids
}

func newRawPeer(t *testing.T, n *Node, id uint64) *rawPeer {
	t.Helper()
	c1, c2 := net.Pipe()
	done := make(chan struct{})
	go func() { n.Attach(c1); close(done) }()
	t.Cleanup(func() { c2.Close(); <-done })
	g := wire.Greeting{Node: id, Caps: wire.CapClient | wire.CapServer, MaxFrame: 64 << 10, LinkWindow: 1 << 20, StreamWindow: 256 << 10}
	go c2.Write(wire.AppendGreeting(nil, g))
	br := bufio.NewReader(c2)
	if _, err := wire.ReadGreeting(br); err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{conn: c2, frames: make(chan wire.Frame, 64), oddIDs: NodeID(id) < n.ID()}
	go func() {
		defer close(p.frames)
		for {
			hdr, err := br.Peek(wire.HeaderSize)
			if err != nil {
				return
			}
			h, err := wire.ParseHeader(hdr, 64<<10)
			if err != nil {
				return
			}
			b, err := br.Peek(wire.HeaderSize + int(h.Length))
			if err != nil {
				return
			}
			f, _, err := wire.Decode(b, 64<<10)
			if err != nil {
				return
			}
			f.Payload = append([]byte(nil), f.Payload...)
			br.Discard(len(b))
			p.frames <- f
		}
	}()
	return p
}

func (p *rawPeer) send(t *testing.T, h wire.Header, payload []byte) {
	t.Helper()
	h.Length = uint32(len(payload))
	p.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.conn.Write(append(wire.AppendHeader(nil, h), payload...)); err != nil {
		t.Fatal(err)
	}
}

// next returns the next frame of type typ the node sends, skipping others.
func (p *rawPeer) next(t *testing.T, typ wire.Type) wire.Frame {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				t.Fatalf("link closed while waiting for %v", typ)
			}
			if f.Type == typ {
				return f
			}
		case <-timeout:
			t.Fatalf("no %v within 5 s", typ)
		}
	}
}

// A router passes a RESET on along the circuit with its code (PROTOCOL.md
// sections 4.4 and 5), so that the opener learns why the far end refused:
// "hop limit" from a router further on, "unavailable" (retry later) from
// the destination. forward's RESET path used to turn the code into an error
// and back, and every code without an error of its own (unavailable,
// shutdown, protocol error, hop limit, codes from a newer peer) reached the
// opener as "cancelled" or "no route".
func TestRouterPassesResetCode(t *testing.T) {
	for _, code := range []wire.Code{wire.CodeUnavailable, wire.CodeHopLimit, wire.CodeShutdown, wire.CodeRefused, 99} {
		t.Run(code.String(), func(t *testing.T) {
			r := newNode(t, testConfig())
			const up, down = 77, 88
			in := newRawPeer(t, r, up)
			out := newRawPeer(t, r, down)
			waitFor(t, 5*time.Second, "both links", func() bool { return len(r.Links()) == 2 })
			circuit := uint32(2)
			if in.oddIDs {
				circuit = 1
			}
			o, _ := wire.AppendOpen(nil, &wire.Open{SrcNode: up, SrcPort: 1 << 24, DstNode: down, DstPort: 7, Window: 1 << 20, Hops: 4})
			in.send(t, wire.Header{Type: wire.TypeOpen, Circuit: circuit}, o)
			f := out.next(t, wire.TypeOpen)
			out.send(t, wire.Header{Type: wire.TypeReset, Circuit: f.Circuit}, wire.AppendReset(nil, code))
			got := in.next(t, wire.TypeReset)
			if got.Circuit != circuit || got.Code != code {
				t.Fatalf("the opener got RESET %v on circuit %d, want %v on %d", got.Code, got.Circuit, code, circuit)
			}
		})
	}
}
