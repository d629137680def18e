package core

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core/wire"
	"github.com/hashicorp/go-hclog"
)

func fastKeepAlive() Config {
	c := testConfig()
	c.KeepAlive = 50 * time.Millisecond
	c.DeadTimeout = 300 * time.Millisecond
	return c
}

// TestSilentLinkFailsStreams: when the path goes silent (no close, no RST),
// keep-alive declares the link dead and blocked Reads and Writes fail.
func TestSilentLinkFailsStreams(t *testing.T) {
	a, b := newNode(t, fastKeepAlive()), newNode(t, fastKeepAlive())
	r := joinViaRelay(t, a, b)
	ln, _ := b.Bind(7, "")
	s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	peer, _ := ln.AcceptStream()
	waitFor(t, 2*time.Second, "RTT measured", func() bool { ls := a.Links(); return len(ls) > 0 && ls[0].RTT > 0 })
	t.Logf("RTT %v", a.Links()[0].RTT)

	readErr := make(chan error, 1)
	go func() { _, err := s.Read(make([]byte, 1)); readErr <- err }()
	writeErr := make(chan error, 1)
	go func() { // the peer never reads: this Write blocks until the link dies
		_, err := s.Write(make([]byte, 16<<20))
		writeErr <- err
	}()
	r.goSilent()
	start := time.Now()
	for _, ch := range []chan error{readErr, writeErr} {
		select {
		case err := <-ch:
			if !errors.Is(err, ErrLinkLost) {
				t.Fatalf("blocked call: %v, want ErrLinkLost", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("blocked call still blocked 3 s after the path went silent")
		}
	}
	t.Logf("streams failed %v after the path went silent (dead timeout %v)", time.Since(start), fastKeepAlive().DeadTimeout)
	if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, ErrLinkLost) {
		t.Fatalf("far end read: %v, want ErrLinkLost", err)
	}
}

// TestJoinRedials: a joined link that drops comes back by itself.
func TestJoinRedials(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	addr, _ := b.ListenAndServe("tcp", "127.0.0.1:0")
	r := newRelay(t, addr.String())
	if err := a.Join(context.Background(), "tcp", r.addr()); err != nil {
		t.Fatal(err)
	}
	ln, _ := b.Bind(7, "")
	echo(t, ln)
	for i := range 3 {
		waitFor(t, 5*time.Second, "link up", func() bool { return len(a.Links()) == 1 })
		s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := roundTrip(s, []byte("ping")); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		r.cut()
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, ErrLinkLost) {
			t.Fatalf("round %d: read after cut: %v, want ErrLinkLost", i, err)
		}
		s.Close()
	}
}

func TestBacklogFullRefuses(t *testing.T) {
	cfg := testConfig()
	cfg.Backlog = 2
	a, b := newNode(t, testConfig()), newNode(t, cfg)
	connect(t, a, b)
	ln, _ := b.Bind(7, "")
	ctx := ctxTimeout(t, 5*time.Second)
	for range 2 {
		if _, err := a.Dial(ctx, Target{Node: b.ID(), Port: 7}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.Dial(ctx, Target{Node: b.ID(), Port: 7})
	if !errors.Is(err, ErrBacklog) {
		t.Fatalf("third dial: %v, want ErrBacklog", err)
	}
	ln.AcceptStream()
	if _, err := a.Dial(ctx, Target{Node: b.ID(), Port: 7}); err != nil {
		t.Fatalf("dial after an Accept made room: %v", err)
	}
}

func TestStreamLimit(t *testing.T) {
	small := testConfig()
	small.MaxStreams = 3
	for _, tc := range []struct {
		name       string
		dialer, fa Config
	}{
		{"dialler's limit", small, testConfig()},
		{"acceptor's limit", testConfig(), small},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newNode(t, tc.dialer), newNode(t, tc.fa)
			connect(t, a, b)
			b.Bind(7, "")
			ctx := ctxTimeout(t, 5*time.Second)
			for range 3 {
				if _, err := a.Dial(ctx, Target{Node: b.ID(), Port: 7}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.Dial(ctx, Target{Node: b.ID(), Port: 7}); !errors.Is(err, ErrTooManyStreams) {
				t.Fatalf("fourth dial: %v, want ErrTooManyStreams", err)
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	b.Bind(7, "echo")
	ctx := ctxTimeout(t, 5*time.Second)
	for _, tc := range []struct {
		target Target
		want   error
	}{
		{Target{Node: b.ID(), Port: 8}, ErrRefused},
		{Target{Service: "nope"}, ErrNoService},
		{Target{Node: b.ID(), Port: 8, Service: ""}, ErrRefused},
		{Target{Service: "echo", Port: 8}, ErrNoService},
		{Target{Node: 12345, Port: 7}, ErrNoRoute},
		{Target{Node: a.ID(), Port: 7}, ErrNoRoute}, // itself, without loopback
	} {
		_, err := a.Dial(ctx, tc.target)
		var op *net.OpError
		if !errors.Is(err, tc.want) || !errors.As(err, &op) {
			t.Errorf("dial %v: %v, want %v in a *net.OpError", tc.target, err, tc.want)
		}
	}
	if _, err := a.Dial(ctx, Target{Service: "echo", Port: 7}); err != nil {
		t.Errorf("dial echo:7: %v", err)
	}
}

// TestDialBadName: a dial by a name that cannot be bound fails as a dial,
// saying what is wrong with the name.
func TestDialBadName(t *testing.T) {
	a := newNode(t, testConfig())
	for _, tc := range []struct{ name, want string }{
		{"a b", `service name "a b": byte 0x20 not allowed`},
		{"0123456789abcdef", `service name "0123456789abcdef" would read as a node id`},
	} {
		_, err := a.Dial(ctxTimeout(t, time.Second), Target{Service: tc.name, Port: 7})
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "bind") {
			t.Errorf("dial %q: %v; want a dial error saying %q", tc.name, err, tc.want)
		}
	}
}

// fakePeer completes a greeting on conn as node id and then does what the test
// says; it reads and discards everything else.
func fakePeer(t *testing.T, conn net.Conn, id uint64) *bytes.Buffer {
	t.Helper()
	g := wire.Greeting{Node: id, Caps: wire.CapClient, MaxFrame: 64 << 10, LinkWindow: 1 << 20, StreamWindow: 256 << 10}
	go conn.Write(wire.AppendGreeting(nil, g))
	if _, err := wire.ReadGreeting(conn); err != nil {
		t.Fatal(err)
	}
	return nil
}

// TestDialHonoursContext: a peer that never answers OPEN cannot hold Dial past
// its context.
func TestDialHonoursContext(t *testing.T) {
	a := newNode(t, testConfig())
	c1, c2 := net.Pipe()
	defer c2.Close()
	done := make(chan error, 1)
	go func() { done <- a.Attach(c1) }()
	fakePeer(t, c2, 99)
	go io.Copy(io.Discard, c2)
	waitFor(t, time.Second, "link up", func() bool { return len(a.Links()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a.Dial(ctx, Target{Node: 99, Port: 7})
	var ne net.Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial: %v, want a timeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("dial returned after %v", d)
	}
	if n := a.Links()[0].Streams; n != 0 {
		t.Fatalf("%d circuits left after the cancelled dial", n)
	}
	c2.Close()
	<-done
}

// TestDialCancelledContextOpensNothing: as net.Dialer, a dial whose context
// is already done fails without reaching the far node: its listener must not
// queue a stream that the dialler has given up on.
func TestDialCancelledContextOpensNothing(t *testing.T) {
	a, b, ln := linkedPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for range 3 {
		if _, err := a.Dial(ctx, Target{Node: b.ID(), Port: 7}); !errors.Is(err, context.Canceled) {
			t.Fatalf("dial with a cancelled context: %v, want context.Canceled", err)
		}
	}
	// The link is ordered: an OPEN of the cancelled dials would be queued
	// ahead of this one.
	s, peer := openPair(t, a, b.ID(), ln)
	if got, want := peer.RemoteAddr().(Addr).Port, s.LocalAddr().(Addr).Port; got != want {
		t.Fatalf("the listener's first stream comes from port %d, a cancelled dial; want %d", got, want)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.HandshakeTimeout = 100 * time.Millisecond
	a := newNode(t, cfg)
	addr, _ := a.ListenAndServe("tcp", "127.0.0.1:0")
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.Copy(io.Discard, c) // the node's greeting, then the close
	if err != nil {
		t.Fatalf("the silent client was not disconnected: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("disconnected after %v, handshake timeout %v", d, cfg.HandshakeTimeout)
	}
}

// TestCloseDuringHandshake: Node.Close does not wait out the handshake
// timeout of a peer that has connected and not greeted, inbound or
// outbound (Join).
func TestCloseDuringHandshake(t *testing.T) {
	cfg := testConfig()
	cfg.HandshakeTimeout = 10 * time.Second
	a := newNode(t, cfg)
	addr, _ := a.ListenAndServe("tcp", "127.0.0.1:0")
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts (in the kernel) and never greets
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	joined := make(chan error, 1)
	go func() { joined <- a.Join(context.Background(), "tcp", silent.Addr().String()) }()
	time.Sleep(100 * time.Millisecond) // both handshakes under way
	start := time.Now()
	a.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v with a handshake under way (handshake timeout %v)", d, cfg.HandshakeTimeout)
	}
	select {
	case err := <-joined:
		if err == nil {
			t.Fatal("Join succeeded on a closed node")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Join still in its handshake 2 s after Close")
	}
}

// TestBadInput sends garbage of several kinds to a node. Each bad link closes
// with an error that says what was wrong; the node keeps serving its other
// link.
func TestBadInput(t *testing.T) {
	greeting := wire.AppendGreeting(nil, wire.Greeting{Node: 77, Caps: wire.CapClient, MaxFrame: 64 << 10, LinkWindow: 1 << 20, StreamWindow: 256 << 10})
	frame := func(h wire.Header, p []byte) []byte { return append(wire.AppendHeader(nil, h), p...) }
	cases := []struct {
		name  string
		input []byte
		want  string // a regexp the error the link ends with must match
	}{
		{"random bytes", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02"), "bad magic"},
		{"wrong version", append([]byte("ASTN\x09\x00"), greeting[6:]...), "unsupported version"},
		{"unknown frame type", append(greeting, 0, 0, 0, 0x7f, 0, 0, 0, 0, 0), "unknown frame type 0x7f"},
		{"oversized frame", append(greeting, frame(wire.Header{Length: 1 << 20, Type: wire.TypeData, Circuit: 2}, nil)...), "exceeds the 65536-byte limit"},
		{"data on circuit 0", append(greeting, frame(wire.Header{Length: 1, Type: wire.TypeData}, []byte{1})...), "DATA on circuit 0"},
		{"truncated frame", append(greeting, frame(wire.Header{Length: 100, Type: wire.TypeControl}, []byte{1, 2})...), "reading CONTROL|closed pipe"}, // the reader or the writer notices the close first
		{"window of zero", append(greeting, frame(wire.Header{Length: 4, Type: wire.TypeWindow}, []byte{0, 0, 0, 0})...), "WINDOW increment of 0"},
	}
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	// A stream to a port nobody reads from, then more data than its credit
	// allows. (An echo would read, return credit and make the data legal.)
	if _, err := a.Bind(9, ""); err != nil {
		t.Fatal(err)
	}
	open, _ := wire.AppendOpen(nil, &wire.Open{SrcNode: 77, SrcPort: 1 << 24, DstNode: uint64(a.ID()), DstPort: 9, Window: 1 << 20, Hops: 1})
	overrun := append(greeting, frame(wire.Header{Length: uint32(len(open)), Type: wire.TypeOpen, Circuit: 1}, open)...)
	for range 5 { // 320 KiB against a 256 KiB window
		overrun = append(overrun, frame(wire.Header{Length: 64 << 10, Type: wire.TypeData, Circuit: 1}, make([]byte, 64<<10))...)
	}
	cases = append(cases, struct {
		name  string
		input []byte
		want  string
	}{"data over stream credit", overrun, "exceeds the stream credit"})
	// Credit must fit in 32 bits (PROTOCOL.md 4.5): a WINDOW that raises a
	// credit to exactly 2^32 is as wrong as one that raises it further. The
	// greeting grants a 1 MiB link window; OPEN grants the stream 1 MiB.
	toLimit := wire.AppendWindow(nil, 1<<32-1<<20)
	cases = append(cases, []struct {
		name  string
		input []byte
		want  string
	}{
		{"link credit of 2^32", append(greeting[:len(greeting):len(greeting)], frame(wire.Header{Length: 4, Type: wire.TypeWindow}, toLimit)...), "link credit to 4294967296, above 2\\^32-1"},
		{"stream credit of 2^32", append(append(greeting[:len(greeting):len(greeting)], frame(wire.Header{Length: uint32(len(open)), Type: wire.TypeOpen, Circuit: 1}, open)...),
			frame(wire.Header{Length: 4, Type: wire.TypeWindow, Circuit: 1}, toLimit)...), "circuit 1 to 4294967296, above 2\\^32-1"},
	}...)
	connect(t, a, b)
	ln, _ := a.Bind(7, "")
	echo(t, ln)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c1, c2 := net.Pipe()
			done := make(chan error, 1)
			go func() { done <- a.Attach(c1) }()
			var got bytes.Buffer
			read := make(chan struct{})
			go func() { io.Copy(&got, c2); close(read) }()
			go func() {
				c2.Write(tc.input)
				if tc.name == "truncated frame" {
					c2.Close()
				}
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("link did not close within 5 s")
			}
			c2.Close()
			<-read
			if err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Fatalf("link ended with %v, want an error matching %q", err, tc.want)
			}
			var perr *wire.ProtocolError
			if errors.As(err, &perr) && !regexp.MustCompile(tc.want).Match(got.Bytes()) {
				t.Errorf("the GOAWAY sent back does not say %q; peer received % x", tc.want, got.Bytes())
			}
			// The healthy link still carries streams.
			s, err := b.Dial(ctxTimeout(t, 5*time.Second), Target{Node: a.ID(), Port: 7})
			if err != nil {
				t.Fatalf("healthy link after bad input: %v", err)
			}
			if err := roundTrip(s, []byte("ok")); err != nil {
				t.Fatal(err)
			}
			s.Close()
		})
	}
}

func TestLoopBack(t *testing.T) {
	a := newNode(t, testConfig(), func(o *Options) { o.LoopBack = true })
	ln, _ := a.Bind(7, "self")
	echo(t, ln)
	ctx := ctxTimeout(t, 5*time.Second)
	for _, target := range []Target{{Node: a.ID(), Port: 7}, {Service: "self"}} {
		s, err := a.Dial(ctx, target)
		if err != nil {
			t.Fatalf("dial %v: %v", target, err)
		}
		if err := roundTrip(s, []byte("me")); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

// TestCloseFailsPeerStreams: a node that closes fails the streams at the far
// end promptly, with ErrLinkLost.
func TestCloseFailsPeerStreams(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	connect(t, a, b)
	ln, _ := b.Bind(7, "")
	s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
	if err != nil {
		t.Fatal(err)
	}
	ln.AcceptStream()
	errc := make(chan error, 1)
	go func() { _, err := s.Read(make([]byte, 1)); errc <- err }()
	b.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrLinkLost) {
			t.Fatalf("read: %v, want ErrLinkLost", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("read still blocked 2 s after the far node closed")
	}
	if _, err := b.Bind(9, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("bind on a closed node: %v", err)
	}
}

// TestQuietLogs: nothing is logged per stream or per frame at Info.
func TestQuietLogs(t *testing.T) {
	var buf lockedBuffer
	cfg := testConfig()
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	a, b := newNode(t, cfg), newNode(t, cfg)
	connect(t, a, b)
	ln, _ := b.Bind(7, "")
	echo(t, ln)
	for range 200 {
		s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(s, bytes.Repeat([]byte("x"), 100<<10))
		s.Close()
	}
	if lines := strings.Count(buf.String(), "\n"); lines > 0 {
		t.Fatalf("%d log lines at Info for 200 streams:\n%s", lines, buf.String())
	}
}

func TestBindRules(t *testing.T) {
	a := newNode(t, testConfig())
	if _, err := a.Bind(7, "x"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		port uint32
		name string
		want string
	}{
		{7, "", "port 7 is already bound"},
		{8, "x", `service "x" is already bound`},
		{9, "0123456789abcdef", "would read as a node id"},
		{12, "0000000000000000", "would read as a node id"},
		{10, "a:b", "not allowed"},
		{11, strings.Repeat("n", 300), "exceeds"},
	} {
		if _, err := a.Bind(tc.port, tc.name); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Bind(%d, %.20q): %v, want %q", tc.port, tc.name, err, tc.want)
		}
	}
	ln, err := a.Bind(0, "")
	if err != nil || ln.Addr().(Addr).Port < ephemeralPorts {
		t.Fatalf("ephemeral bind: %v %v", ln, err)
	}
}

// A dial to a name that Bind would refuse says what is wrong with the name,
// and does not call itself a bind.
func TestDialBadNameIsNotABind(t *testing.T) {
	a := newNode(t, testConfig())
	for _, name := range []string{"a b", "a:b"} {
		_, err := a.Dial(context.Background(), Target{Service: name})
		if err == nil || !strings.Contains(err.Error(), "not allowed") || strings.Contains(err.Error(), "bind") {
			t.Errorf("Dial(%q): %v, want an error that the name is not allowed, without \"bind\"", name, err)
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLanesShareStreams: several links to one peer (lanes) share the streams.
func TestLanesShareStreams(t *testing.T) {
	a, b := newNode(t, testConfig()), newNode(t, testConfig())
	addr, _ := b.ListenAndServe("tcp", "127.0.0.1:0")
	for range 3 {
		if err := a.Join(context.Background(), "tcp", addr.String()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "3 links", func() bool { return len(a.Links()) == 3 })
	b.Bind(7, "")
	for range 30 {
		if _, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: b.ID(), Port: 7}); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range a.Links() {
		if l.Streams != 10 {
			t.Fatalf("lane %d carries %d streams, want 10 of 30", l.ID, l.Streams)
		}
	}
}

// TestIDCollision: a peer with this node's id is refused with a GOAWAY that
// names the collision.
func TestIDCollision(t *testing.T) {
	a := newNode(t, testConfig())
	c1, c2 := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- a.Attach(c1) }()
	var got bytes.Buffer
	read := make(chan struct{})
	go func() { io.Copy(&got, c2); close(read) }()
	g := wire.Greeting{Node: uint64(a.ID()), Caps: wire.CapClient, MaxFrame: 64 << 10, LinkWindow: 1 << 20, StreamWindow: 256 << 10}
	c2.Write(wire.AppendGreeting(nil, g))
	err := <-done
	c2.Close()
	<-read
	if err == nil || !strings.Contains(err.Error(), "id collision") {
		t.Fatalf("link ended with %v, want an id collision", err)
	}
	if !bytes.Contains(got.Bytes(), []byte("id collision")) {
		t.Fatalf("no GOAWAY naming the collision; peer got % x", got.Bytes())
	}
}

// TestLinkLimit: past MaxLinks, an inbound link is closed before its greeting
// and the node keeps its other links.
func TestLinkLimit(t *testing.T) {
	cfg := testConfig()
	cfg.MaxLinks = 2
	hub := newNode(t, cfg)
	addr, _ := hub.ListenAndServe("tcp", "127.0.0.1:0")
	for range 2 {
		if err := newNode(t, testConfig()).Join(context.Background(), "tcp", addr.String()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "two links", func() bool { return len(hub.Links()) == 2 })
	err := newNode(t, testConfig()).Join(context.Background(), "tcp", addr.String())
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("third join: %v, want a failed handshake", err)
	}
	if n := len(hub.Links()); n != 2 {
		t.Fatalf("hub has %d links, want 2", n)
	}
}

// answerOpen plays the far end on conn: it answers the first OPEN it reads
// with acc, then reads and drops whatever else comes.
func answerOpen(t *testing.T, conn net.Conn, acc wire.Accept) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	for {
		hdr := make([]byte, wire.HeaderSize)
		if _, err := io.ReadFull(conn, hdr); err != nil {
			t.Fatal(err)
		}
		h, err := wire.ParseHeader(hdr, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(io.Discard, conn, int64(h.Length)); err != nil {
			t.Fatal(err)
		}
		if h.Type == wire.TypeOpen {
			p := wire.AppendAccept(nil, acc)
			go conn.Write(append(wire.AppendHeader(nil, wire.Header{Length: uint32(len(p)), Type: wire.TypeAccept, Circuit: h.Circuit}), p...))
			break
		}
	}
	conn.SetDeadline(time.Time{})
	go io.Copy(io.Discard, conn)
}

// TestAcceptFromWrongPlace: an ACCEPT from a node or port other than the one
// the OPEN asked for is a protocol error that ends the link, and the dial
// fails; the stream must not report a remote address it never reached.
func TestAcceptFromWrongPlace(t *testing.T) {
	for _, tc := range []struct {
		name       string
		node       uint64
		port       uint32
		want       string
		dialTarget Target
	}{
		{"other node", 98, 7, `ACCEPT on circuit \d+ from node 0000000000000062 port 7, but the OPEN asked for node 0000000000000063, port 7`, Target{Node: 99, Port: 7}},
		{"other port", 99, 8, `from node 0000000000000063 port 8, but the OPEN asked for node 0000000000000063, port 7`, Target{Node: 99, Port: 7}},
		{"other port of a named service", 99, 8, `port 8, but the OPEN asked for node 0000000000000063, service "echo", port 7`, Target{Node: 99, Port: 7, Service: "echo"}},
		{"any port of a service", 99, 8, "", Target{Node: 99, Service: "echo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newNode(t, testConfig())
			c1, c2 := net.Pipe()
			defer c2.Close()
			done := make(chan error, 1)
			go func() { done <- a.Attach(c1) }()
			fakePeer(t, c2, 99)
			waitFor(t, time.Second, "link up", func() bool { return len(a.Links()) == 1 })
			dialed := make(chan error, 1)
			go func() {
				s, err := a.Dial(ctxTimeout(t, 5*time.Second), tc.dialTarget)
				if err == nil {
					s.Close()
				}
				dialed <- err
			}()
			answerOpen(t, c2, wire.Accept{Node: tc.node, Port: tc.port, Window: 256 << 10})
			err := <-dialed
			if tc.want == "" {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrLinkLost) {
				t.Fatalf("dial: %v, want ErrLinkLost", err)
			}
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("link did not end within 5 s")
			}
			if err == nil || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
				t.Fatalf("link ended with %v, want an error matching %q", err, tc.want)
			}
		})
	}
}

// TestRouterChecksAccept: a router checks the far end's ACCEPT against the
// OPEN it forwarded, and ends the link it came on.
func TestRouterChecksAccept(t *testing.T) {
	ra := &staticRouting{via: map[NodeID]NodeID{}}
	a := newNode(t, testConfig(), func(o *Options) { o.Routing = ra })
	r := newNode(t, testConfig())
	ra.via[99] = r.ID()
	connect(t, r, a)
	c1, c2 := net.Pipe()
	defer c2.Close()
	done := make(chan error, 1)
	go func() { done <- r.Attach(c1) }()
	fakePeer(t, c2, 99)
	waitFor(t, 5*time.Second, "route to 99", func() bool { return a.reachable(99) && hasLinkTo(r, 99) })

	dialed := make(chan error, 1)
	go func() {
		s, err := a.Dial(ctxTimeout(t, 5*time.Second), Target{Node: 99, Port: 7})
		if err == nil {
			s.Close()
		}
		dialed <- err
	}()
	answerOpen(t, c2, wire.Accept{Node: 98, Port: 7, Window: 256 << 10})
	if err := <-dialed; !errors.Is(err, ErrLinkLost) {
		t.Fatalf("dial: %v, want ErrLinkLost", err)
	}
	select {
	case err := <-done:
		if want := "from node 0000000000000062 port 7, but the OPEN asked for node 0000000000000063, port 7"; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("the router's link ended with %v, want %q", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the router's link did not end within 5 s")
	}
	if !hasLinkTo(r, a.ID()) {
		t.Fatal("the router lost its healthy link too")
	}
}
