package core

import (
	"io"
	"testing"
	"time"
)

// Streams still in a listener's backlog when it closes are refused, and
// nobody can Read or Close them: the bytes they had received must go, with
// their link credit. They used to stay, and enough of them stalled the
// whole link.
func TestListenerCloseReturnsLinkCredit(t *testing.T) {
	cfg := testConfig()
	cfg.StreamWindow, cfg.MaxStreamWindow, cfg.LinkWindow = 16<<10, 16<<10, 64<<10
	a, b := newNode(t, cfg), newNode(t, cfg)
	connect(t, a, b)
	bl := onlyLink(t, b)
	ln, err := b.Bind(7, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Write(make([]byte, 16<<10)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "64 KiB buffered at b", func() bool { return bl.buffered.Load() == 64<<10 })
	ln.Close() // the four streams were never accepted
	time.Sleep(100 * time.Millisecond)
	t.Logf("after Listener.Close: b buffers %d bytes; a's link credit %d", bl.buffered.Load(), func() int64 {
		al := onlyLink(t, a)
		al.mu.Lock()
		defer al.mu.Unlock()
		return al.sendCredit
	}())

	ln2, err := b.Bind(8, "")
	if err != nil {
		t.Fatal(err)
	}
	s, peer := openPair(t, a, b.ID(), ln2)
	carries(t, s, peer, "a new stream on the same link after Listener.Close")
}

// A FIN carries no bytes, so it needs no link credit. The writer used to
// send nothing from its ready lists while the link credit was 0: once
// unread streams held the whole link window, CloseWrite on another stream
// never reached the peer, whose Read waited for EOF for ever.
func TestFinNeedsNoLinkCredit(t *testing.T) {
	cfg := testConfig()
	cfg.StreamWindow, cfg.MaxStreamWindow, cfg.LinkWindow = 64<<10, 64<<10, 64<<10
	a, b := newNode(t, cfg), newNode(t, cfg)
	connect(t, a, b)
	ln, _ := b.Bind(7, "")
	s1, _ := openPair(t, a, b.ID(), ln) // its reader reads later
	s2, p2 := openPair(t, a, b.ID(), ln)
	if _, err := s1.Write(make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	bl := onlyLink(t, b)
	waitFor(t, 5*time.Second, "the link window full at b", func() bool { return bl.buffered.Load() == 64<<10 })
	s2.CloseWrite()
	p2.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := p2.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("Read after the peer's CloseWrite: %v, want io.EOF", err)
	}
}
