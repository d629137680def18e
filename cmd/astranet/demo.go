package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/astranet-go/astranet"
	"github.com/hashicorp/go-hclog"
)

// demoConfig is what the demo command does, from its flags.
type demoConfig struct {
	streams int    // echo streams
	bytes   int    // bytes each echo stream sends and gets back
	idle    int    // streams held open at once
	workers int    // goroutines opening streams
	network string // link network
}

// streamTimeout bounds each stream of the demo, so that nothing can hang.
const streamTimeout = 20 * time.Second

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", "[flags]", stderr)
	var c demoConfig
	fs.IntVar(&c.streams, "streams", 10000, "echo streams to open over the one link")
	fs.IntVar(&c.bytes, "bytes", 1024, "bytes each echo stream writes and reads back")
	fs.IntVar(&c.idle, "idle", 100000, "idle streams to hold open at once, to measure their cost")
	fs.IntVar(&c.workers, "workers", 256, "goroutines opening streams")
	fs.StringVar(&c.network, "network", "tcp4", "link network: pipe, tcp4 or quic")
	verbose := fs.Bool("v", false, "log at Debug level")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	var err error
	switch {
	case c.network != "pipe" && c.network != "tcp4" && c.network != "quic":
		err = fmt.Errorf("-network %q: want pipe, tcp4 or quic", c.network)
	case c.streams < 1 || c.idle < 1 || c.workers < 1:
		err = errors.New("-streams, -idle and -workers must be at least 1")
	case c.bytes < 1 || c.bytes > 64<<20:
		err = errors.New("-bytes must be in [1, 64 MiB]")
	}
	if err != nil {
		fmt.Fprintf(stderr, "astranet demo: %v\n", err)
		fs.Usage()
		return 2
	}
	if err := demo(ctx, c, stdout, newLogger(stderr, *verbose)); err != nil {
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		fmt.Fprintf(stderr, "astranet demo: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// demoSeq makes each demo's pipe address unique in the process.
var demoSeq atomic.Int64

func demo(ctx context.Context, c demoConfig, out io.Writer, log hclog.Logger) error {
	// Deferred calls run last first: listeners close, then the nodes, which
	// ends every stream, then the wait for the echo handlers.
	var servers sync.WaitGroup
	defer servers.Wait()
	a := astranet.New(astranet.WithLogger(log.Named("A")))
	b := astranet.New(astranet.WithLogger(log.Named("B")))
	defer a.Close()
	defer b.Close()

	fmt.Fprintf(out, "astranet demo: two nodes in this process, one %s link between them\n", c.network)
	fmt.Fprintf(out, "  node A %s dials\n", a.ID())
	fmt.Fprintf(out, "  node B %s serves \"echo\" and \"hold\"\n", b.ID())
	addr := "127.0.0.1:0"
	if c.network == "pipe" {
		addr = fmt.Sprintf("astranet-demo-%d", demoSeq.Add(1))
	}
	began := time.Now()
	la, err := b.(listenAddrer).ListenAddr(c.network, addr)
	if err != nil {
		return fmt.Errorf("node B cannot listen on %s %s: %w", c.network, addr, err)
	}
	if err := a.Join(c.network, la.String()); err != nil {
		return fmt.Errorf("node A cannot join node B at %s %s: %w", c.network, la, err)
	}
	if err := waitLinked(ctx, a, b); err != nil {
		return err
	}
	fmt.Fprintf(out, "  link   %s %s, up in %v\n", c.network, la, time.Since(began).Round(time.Microsecond))

	echoL, err := b.Bind("", "echo")
	if err != nil {
		return fmt.Errorf("bind echo: %w", err)
	}
	defer echoL.Close()
	servers.Go(func() { serveEcho(echoL, &servers) })

	holdL, err := b.Bind("", "hold")
	if err != nil {
		return fmt.Errorf("bind hold: %w", err)
	}
	defer holdL.Close()

	runtime.GC()
	goroutinesBefore := runtime.NumGoroutine()
	if err := demoEcho(ctx, c, a, out); err != nil {
		return err
	}
	return demoIdle(ctx, c, a, holdL, goroutinesBefore, out)
}

// waitLinked waits until each node sees the other as a neighbour.
func waitLinked(ctx context.Context, a, b astranet.AstraNet) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for len(a.Routes()) == 0 || len(b.Routes()) == 0 {
		select {
		case <-ctx.Done():
			return errors.New("the nodes did not see each other within 5 s of the link's handshake")
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// serveEcho echoes every stream l accepts until l is closed. Each stream
// being echoed has a goroutine of this application; the library has none.
func serveEcho(l net.Listener, wg *sync.WaitGroup) {
	acceptEach(l, wg, 0, hclog.NewNullLogger(), func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(streamTimeout))
		io.Copy(c, c)
	})
}

// demoEcho opens c.streams streams from a to "echo" with c.workers
// goroutines; each writes c.bytes, reads them back and checks them.
func demoEcho(ctx context.Context, c demoConfig, a astranet.AstraNet, out io.Writer) error {
	fmt.Fprintf(out, "echo: %d streams over the one link, %d at a time, %d B each way per stream\n",
		c.streams, min(c.workers, c.streams), c.bytes)
	var verified atomic.Int64
	began := time.Now()
	err := forEach(ctx, c.streams, c.workers, func(ctx context.Context, i int) error {
		if err := echoOnce(ctx, a, i, c.bytes); err != nil {
			return fmt.Errorf("echo stream %d: %w", i, err)
		}
		verified.Add(1)
		return nil
	})
	elapsed := time.Since(began)
	if err != nil {
		return err
	}
	n := verified.Load()
	total := float64(n) * float64(c.bytes)
	fmt.Fprintf(out, "  opened %d streams; echoed %d bytes and verified them: %d of %d streams verified\n",
		n, int64(total), n, c.streams)
	fmt.Fprintf(out, "  %v: %.0f streams/s, %.1f MB/s (payload, both directions)\n",
		elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), 2*total/elapsed.Seconds()/1e6)
	return nil
}

// echoChunk is how much echoOnce writes before reading it back, so that a
// large -bytes never has both ends blocked writing.
const echoChunk = 32 << 10

// echoOnce opens one stream to "echo", sends size bytes of a pattern unique to
// stream i in chunks, checks each chunk comes back, then half-closes and
// expects the echo to end exactly there.
func echoOnce(ctx context.Context, a astranet.AstraNet, i, size int) error {
	ctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	conn, err := a.DialContext(ctx, "", "echo")
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	buf := make([]byte, min(size, echoChunk))
	got := make([]byte, len(buf))
	for sent := 0; sent < size; {
		n := min(len(buf), size-sent)
		for j := range buf[:n] {
			buf[j] = byte(i*7 + (sent+j)*13)
		}
		if _, err := conn.Write(buf[:n]); err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, got[:n]); err != nil {
			return fmt.Errorf("after %d bytes: %w", sent, err)
		}
		if !bytes.Equal(buf[:n], got[:n]) {
			return fmt.Errorf("bytes %d..%d came back different", sent, sent+n)
		}
		sent += n
	}
	if err := conn.(closeWriter).CloseWrite(); err != nil {
		return err
	}
	if n, err := conn.Read(got[:1]); n != 0 || err != io.EOF {
		return fmt.Errorf("want end of stream after the echo, got %d bytes, %v", n, err)
	}
	return nil
}

// forEach calls f(ctx, i) for i in [0, n) on at most workers goroutines. It
// stops at the first error and returns it.
func forEach(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// demoIdle holds c.idle streams open at once and reports what they cost.
// The hold listener's acceptor keeps every stream in a slice: no goroutine
// per stream at either end.
func demoIdle(ctx context.Context, c demoConfig, a astranet.AstraNet, holdL net.Listener, goroutinesBefore int, out io.Writer) error {
	fmt.Fprintf(out, "idle: %d streams open at once over the same link\n", c.idle)
	dialled := make([]net.Conn, c.idle)
	accepted := make([]net.Conn, 0, c.idle)
	acceptDone := make(chan error, 1)
	closeAll := func() {
		for _, conn := range dialled {
			if conn != nil {
				conn.Close()
			}
		}
		for _, conn := range accepted {
			conn.Close()
		}
	}

	var refused atomic.Int64
	base := memInUse()
	began := time.Now()
	go func() {
		for len(accepted) < c.idle {
			conn, err := holdL.Accept()
			if err != nil {
				acceptDone <- err
				return
			}
			accepted = append(accepted, conn)
		}
		acceptDone <- nil
	}()
	err := forEach(ctx, c.idle, c.workers, func(ctx context.Context, i int) error {
		ctx, cancel := context.WithTimeout(ctx, streamTimeout)
		defer cancel()
		for {
			conn, err := a.DialContext(ctx, "", "hold")
			if errors.Is(err, astranet.ErrBacklog) && ctx.Err() == nil {
				// B's acceptor is behind: the open was refused, not queued. Retry
				// as a client should, after a pause.
				refused.Add(1)
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				return fmt.Errorf("idle stream %d: %w", i, err)
			}
			dialled[i] = conn
			return nil
		}
	})
	if err != nil {
		holdL.Close() // ends the acceptor
		<-acceptDone
		closeAll()
		return err
	}
	select {
	case err = <-acceptDone:
	case <-time.After(streamTimeout):
		holdL.Close()
		err = <-acceptDone
	}
	if err != nil {
		holdL.Close()
		closeAll()
		return fmt.Errorf("node B accepted %d of %d idle streams: %w", len(accepted), c.idle, err)
	}
	elapsed := time.Since(began)
	runtime.GC()
	used := memInUse() - base
	goroutinesIdle := runtime.NumGoroutine()
	fmt.Fprintf(out, "  opened %d streams in %v (%.0f streams/s); B accepted %d\n",
		c.idle, elapsed.Round(time.Millisecond), float64(c.idle)/elapsed.Seconds(), len(accepted))
	if n := refused.Load(); n > 0 {
		fmt.Fprintf(out, "  (%d opens found B's accept backlog full and were retried)\n", n)
	}
	fmt.Fprintf(out, "  goroutines: %d before any stream, %d while %d streams are open (none per stream)\n",
		goroutinesBefore, goroutinesIdle, c.idle)
	fmt.Fprintf(out, "  memory: %.1f MB heap+stack in use for %d streams = %d B per idle stream\n",
		float64(used)/1e6, c.idle, used/int64(c.idle))
	fmt.Fprintln(out, "          (both ends are in this process, so that is the cost of a stream at A plus at B)")

	checked, err := checkAlive(dialled, accepted)
	if err != nil {
		closeAll()
		return err
	}
	fmt.Fprintf(out, "  still open: a byte written on %d of them at A arrived at B\n", checked)
	began = time.Now()
	closeAll()
	fmt.Fprintf(out, "  closed all %d streams at both ends in %v\n", c.idle, time.Since(began).Round(time.Millisecond))
	return nil
}

// checkAlive sends a byte on a few of the idle streams and reads it at the
// other end, to show they are open streams and not just memory.
func checkAlive(dialled, accepted []net.Conn) (checked int, err error) {
	byAddr := make(map[string]net.Conn, len(accepted))
	for _, conn := range accepted {
		byAddr[conn.RemoteAddr().String()] = conn
	}
	step := max(1, len(dialled)/8)
	for i := 0; i < len(dialled); i += step {
		d := dialled[i]
		peer := byAddr[d.LocalAddr().String()]
		if peer == nil {
			return checked, fmt.Errorf("idle stream %d (%s) has no accepted end at B", i, d.LocalAddr())
		}
		deadline := time.Now().Add(5 * time.Second)
		d.SetWriteDeadline(deadline)
		peer.SetReadDeadline(deadline)
		b := []byte{byte(i)}
		if _, err := d.Write(b); err != nil {
			return checked, fmt.Errorf("idle stream %d: write: %w", i, err)
		}
		if _, err := io.ReadFull(peer, b); err != nil || b[0] != byte(i) {
			return checked, fmt.Errorf("idle stream %d: read at B: %v (byte %d)", i, err, b[0])
		}
		checked++
	}
	return checked, nil
}

// memInUse is the heap and stack memory in use, after a collection.
func memInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
