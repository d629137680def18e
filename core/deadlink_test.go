package core

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core/wire"
)

// closerOnly hides a net.Conn's deadlines: an io.ReadWriteCloser, as
// Attach's doc allows ("rw should be an io.Closer").
type closerOnly struct{ c net.Conn }

func (c closerOnly) Read(p []byte) (int, error)  { return c.c.Read(p) }
func (c closerOnly) Write(p []byte) (int, error) { return c.c.Write(p) }
func (c closerOnly) Close() error                { return c.c.Close() }

// A link over an io.ReadWriteCloser without deadlines whose peer stops
// reading and writing: Attach's doc says such a link can be declared dead,
// and DESIGN.md that every stream on a dead link fails within the
// keep-alive timeout. The check used to run on the writer goroutine, which
// was blocked in Write for ever, so nothing failed.
func TestSilentLinkWithoutDeadlinesDies(t *testing.T) {
	cfg := testConfig()
	cfg.KeepAlive, cfg.DeadTimeout = 100*time.Millisecond, 300*time.Millisecond
	n := newNode(t, cfg)
	ln, err := n.Bind(7, "")
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := net.Pipe()
	defer c2.Close()
	attached := make(chan error, 1)
	go func() { attached <- n.Attach(closerOnly{c1}) }()

	// A fake peer: greet, open one stream, then never read again.
	go c2.Write(wire.AppendGreeting(nil, wire.Greeting{Node: 1, Caps: wire.CapClient, MaxFrame: 64 << 10, LinkWindow: 1 << 20, StreamWindow: 256 << 10}))
	if _, err := wire.ReadGreeting(c2); err != nil {
		t.Fatal(err)
	}
	open, _ := wire.AppendOpen(nil, &wire.Open{SrcNode: 1, SrcPort: 1 << 24, DstNode: uint64(n.ID()), DstPort: 7, Window: 1 << 20, Hops: 1})
	go c2.Write(append(wire.AppendHeader(nil, wire.Header{Length: uint32(len(open)), Type: wire.TypeOpen, Circuit: 1}), open...))
	s, err := ln.AcceptStream()
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 10))
		readErr <- err
	}()
	select {
	case err := <-readErr:
		t.Logf("Read failed: %v", err)
		if !errors.Is(err, ErrLinkTimeout) && !errors.Is(err, ErrLinkLost) {
			t.Fatalf("Read: %v", err)
		}
	case err := <-attached:
		t.Logf("Attach returned: %v", err)
	case <-time.After(3 * time.Second):
		t.Fatalf("3 s after the peer went silent (dead timeout %v) the link is not declared dead; the stream's Read still blocks; links: %+v", cfg.DeadTimeout, n.Links())
	}
	c2.Close()
	io.Copy(io.Discard, c2)
}

// An upstream peer that sends ACCEPT on a circuit it opened itself is the
// one in the wrong: the router ends that peer's link. It used to pass the
// ACCEPT on, and the downstream node's real ACCEPT then looked like a second
// one, so the router ended its link to the downstream node, with every
// stream on it. DESIGN.md: "A bad frame closes that link ...; other links
// and streams carry on."
func TestAcceptOnUpstreamHalfEndsOnlyItsLink(t *testing.T) {
	a, r, b := line(t, testConfig())
	ln, _ := b.Bind(7, "")
	// An innocent stream between r and b, on the r-b link.
	victim, vpeer := openPair(t, r, b.ID(), ln)

	// a (buggy or hostile) opens a circuit to b through r and, in the same
	// write, sends ACCEPT on that very circuit.
	var ra uint64 // r's link to a
	for _, li := range r.Links() {
		if li.Peer == a.ID() {
			ra = li.ID
		}
	}
	if ra == 0 {
		t.Fatal("r has no link to a")
	}
	al := onlyLink(t, a)
	s := &Stream{link: al, dialed: true, opened: make(chan struct{}), recvWindow: 1 << 20, recvAvail: 1 << 20}
	open, _ := wire.AppendOpen(nil, &wire.Open{SrcNode: uint64(a.ID()), SrcPort: 1 << 24, DstNode: uint64(b.ID()), DstPort: 7, Window: 1 << 20, Hops: 4})
	al.mu.Lock()
	if err := al.register(s); err != nil {
		al.mu.Unlock()
		t.Fatal(err)
	}
	al.ctl = al.appendFrame(al.ctl, wire.TypeOpen, s.id, open)
	al.ctl = al.appendFrame(al.ctl, wire.TypeAccept, s.id, wire.AppendAccept(nil, wire.Accept{Node: uint64(a.ID()), Port: 1 << 24, Window: 1 << 20}))
	al.mu.Unlock()
	al.signal()
	go ln.AcceptStream() // b's listener takes the forwarded stream

	// The bad frame ends the a-r link (a re-dials it: watch the link id)...
	waitFor(t, 5*time.Second, "r to end the link the bad ACCEPT came on", func() bool {
		for _, li := range r.Links() {
			if li.ID == ra {
				return false
			}
		}
		return true
	})
	// ...and only that one: the r-b link still carries the victim's bytes.
	carries(t, vpeer, victim, "a stream on the r-b link, after a's bad frame")
}
