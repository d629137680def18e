package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet"
)

// proxied is what proxyNode set up: the local addresses forwarded to each
// service, and what the "greet" service read from each client.
type proxied struct {
	echo, sink, greet string
	greeted           chan string
}

// proxyNode runs "node" with extra flags, forwarding a local TCP port to each
// of the services "echo" (echoes), "sink" (reads and discards) and "greet"
// (writes "hi" and half-closes, then reads to the end and reports what it
// read) on a test node linked to it.
func proxyNode(t *testing.T, flags ...string) proxied {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errs syncBuffer
	exited := make(chan int, 1)
	args := append([]string{"node", "-listen", "tcp4://127.0.0.1:0",
		"-forward", "127.0.0.1:0=echo", "-forward", "127.0.0.1:0=sink", "-forward", "127.0.0.1:0=greet"}, flags...)
	go func() { exited <- runContext(ctx, args, &out, &errs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Error("node did not stop within 10 s")
		}
	})
	listenAddr := out.waitFor(t, `listening on tcp4://(\S+)`)
	p := proxied{greeted: make(chan string, 8)}
	p.echo = out.waitFor(t, `forwarding tcp://(\S+) -> service "echo"`)
	p.sink = out.waitFor(t, `forwarding tcp://(\S+) -> service "sink"`)
	p.greet = out.waitFor(t, `forwarding tcp://(\S+) -> service "greet"`)
	out.waitFor(t, `running;`)

	peer := astranet.New()
	var handlers sync.WaitGroup
	t.Cleanup(func() {
		peer.Close()
		handlers.Wait()
	})
	if err := peer.Join("tcp4", listenAddr); err != nil {
		t.Fatal(err)
	}
	for name, handle := range map[string]func(net.Conn){
		"echo": func(c net.Conn) { io.Copy(c, c) },
		"sink": func(c net.Conn) { io.Copy(io.Discard, c) },
		"greet": func(c net.Conn) {
			io.WriteString(c, "hi")
			c.(closeWriter).CloseWrite()
			b, _ := io.ReadAll(c)
			p.greeted <- string(b)
		},
	} {
		serveName(t, peer, name, &handlers, handle)
	}
	// The services are reachable through the node once a first echo works.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.echo, time.Second)
		if err == nil {
			got, err := echoBack(c, "ping", time.Second)
			c.Close()
			if err == nil && got == "ping" {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no echo through the node within 10 s: %v\n%s", err, errs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// echoBack writes msg on c and reads as many bytes back, within d.
func echoBack(c net.Conn, msg string, d time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	b := make([]byte, len(msg))
	_, err := io.ReadFull(c, b)
	return string(b), err
}

// TestNodeMaxConns: with -max-conns 1, a second connection to a forward is
// not proxied while the first is open, and is as soon as the first closes.
func TestNodeMaxConns(t *testing.T) {
	p := proxyNode(t, "-max-conns", "1")
	first, err := net.Dial("tcp", p.echo)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if got, err := echoBack(first, "one", 5*time.Second); err != nil || got != "one" {
		t.Fatalf("first connection: %q, %v", got, err)
	}
	second, err := net.Dial("tcp", p.echo)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := echoBack(second, "two", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("second connection while the first is open: %v, want no answer (a deadline)", err)
	}
	first.Close()
	b := make([]byte, 3)
	second.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(second, b); err != nil || string(b) != "two" {
		t.Fatalf("second connection after the first closed: %q, %v", b, err)
	}
}

// TestNodeIdleTimeout: with -idle-timeout, a proxied connection with no
// traffic is closed after that long, and one with traffic in only one
// direction is not.
func TestNodeIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	p := proxyNode(t, "-idle-timeout", idle.String())

	quiet, err := net.Dial("tcp", p.echo)
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	if got, err := echoBack(quiet, "hello", 5*time.Second); err != nil || got != "hello" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	start := time.Now()
	quiet.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := quiet.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %d, %v; want the node to close it (EOF)", n, err)
	}
	if d := time.Since(start); d < idle-20*time.Millisecond || d > idle+2*time.Second {
		t.Fatalf("idle connection closed after %v, want about %v", d, idle)
	}

	// Bytes go towards the sink only, for 3 idle periods: the connection
	// stays open, and closes once they stop.
	busy, err := net.Dial("tcp", p.sink)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	closed := make(chan time.Time, 1)
	go func() {
		busy.SetReadDeadline(time.Now().Add(10 * time.Second))
		busy.Read(make([]byte, 1))
		closed <- time.Now()
	}()
	stopWriting := time.Now().Add(3 * idle)
	for time.Now().Before(stopWriting) {
		if _, err := busy.Write([]byte{1}); err != nil {
			t.Fatalf("writing to the sink at %v: %v", time.Until(stopWriting), err)
		}
		time.Sleep(idle / 4)
	}
	select {
	case at := <-closed:
		if at.Before(stopWriting) {
			t.Fatalf("a connection busy one way was closed %v before its writes stopped", stopWriting.Sub(at))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a connection was not closed within 5 s of going quiet")
	}
}

// TestNodeServerHalfClose: through a -forward (with its connection limit),
// the service may finish writing first: the client reads to the end, then
// writes on, and the service still gets those bytes.
func TestNodeServerHalfClose(t *testing.T) {
	p := proxyNode(t)
	c, err := net.Dial("tcp", p.greet)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || string(b) != "hi" {
		t.Fatalf("reading the greeting: %q, %v", b, err)
	}
	if _, err := io.WriteString(c, "after the service's half-close"); err != nil {
		t.Fatal(err)
	}
	c.(closeWriter).CloseWrite()
	select {
	case got := <-p.greeted:
		if got != "after the service's half-close" {
			t.Fatalf("the service read %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the service did not finish reading within 10 s")
	}
}

// TestNodeIdleTimeoutStalled: with -idle-timeout, a proxied connection whose
// client stops reading (so that every byte stops, with the proxy blocked in
// writes both ways rather than in reads) is closed after about that long.
func TestNodeIdleTimeoutStalled(t *testing.T) {
	const idle = 200 * time.Millisecond
	p := proxyNode(t, "-idle-timeout", idle.String())
	c, err := net.Dial("tcp", p.echo)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The client writes to the echo and never reads its answer: the echo
	// fills the way back, then stops reading, and the way there fills too.
	// The echo service gives up after 10 s; the node should well before.
	buf := make([]byte, 1<<20)
	stop := time.Now().Add(6 * time.Second)
	c.SetWriteDeadline(stop)
	written := 0
	for {
		n, err := c.Write(buf)
		written += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("after %d MiB the connection stalled and was still open %v later", written>>20, 6*time.Second)
		}
		if err != nil {
			t.Logf("closed by the node after %d MiB: %v", written>>20, err)
			return
		}
	}
}

// TestNodeExposeBacklog: with -max-conns 1, an -expose queues further
// streams in its listener's backlog (1,024) while one is proxied, and
// refuses the one after with ErrBacklog, as its usage says.
func TestNodeExposeBacklog(t *testing.T) {
	local, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var server sync.WaitGroup
	defer server.Wait()
	defer close(release)
	defer local.Close()
	server.Go(func() { // holds the one proxied connection open
		c, err := local.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		<-release
	})
	ctx, cancel := context.WithCancel(context.Background())
	var out, errs syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- runContext(ctx, []string{"node", "-listen", "tcp4://127.0.0.1:0",
			"-expose", "held=" + local.Addr().String(), "-max-conns", "1"}, &out, &errs)
	}()
	defer func() {
		cancel()
		<-exited
	}()
	listen := out.waitFor(t, `listening on tcp4://(\S+)`)
	out.waitFor(t, `running;`)
	peer := astranet.New()
	defer peer.Close()
	if err := peer.Join("tcp4", listen); err != nil {
		t.Fatal(err)
	}
	var streams []net.Conn
	defer func() {
		for _, s := range streams {
			s.Close()
		}
	}()
	const backlog = 1024 // core.DefaultConfig().Backlog
	for i := range 1 + backlog + 1 {
		s, err := peer.DialTimeout("", "held", 5*time.Second)
		switch {
		case i <= backlog && err != nil:
			t.Fatalf("stream %d: %v", i, err)
		case i > backlog && !errors.Is(err, astranet.ErrBacklog):
			t.Fatalf("stream %d past the backlog: %v, want ErrBacklog", i, err)
		}
		if s != nil {
			streams = append(streams, s)
		}
	}
}

// serveName binds name on n and runs handle on each stream, in a goroutine
// of handlers, under a 10 s deadline, until n closes.
func serveName(t *testing.T, n astranet.AstraNet, name string, handlers *sync.WaitGroup, handle func(net.Conn)) {
	t.Helper()
	l, err := n.Bind("", name)
	if err != nil {
		t.Fatal(err)
	}
	handlers.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			handlers.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			})
		}
	})
}
