package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/astranet-go/astranet"
	"github.com/hashicorp/go-hclog"
)

// benchSizes is how much each bench workload does.
type benchSizes struct {
	bulkBytes   int64 // bytes sent on the one bulk stream
	rttRounds   int   // 64-byte round trips
	openStreams int   // streams opened, echoed once and closed
}

const (
	bulkWrite   = 32 << 10 // bytes per Write in bulk
	rttSize     = 64
	openWorkers = 64
	// workloadTimeout bounds each workload on each side; past it the
	// workload fails rather than hang.
	workloadTimeout = 60 * time.Second
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", "[-quick]", stderr, "bulk-bytes", "rtt-rounds", "open-streams")
	quick := fs.Bool("quick", false, "smaller sizes: 32 MiB bulk, 1,000 round trips, 1,000 opens")
	verbose := fs.Bool("v", false, "log at Debug level")
	// Hidden: the tests shrink the sizes further.
	bulkBytes := fs.Int64("bulk-bytes", 0, "bytes on the bulk stream")
	rttRounds := fs.Int("rtt-rounds", 0, "round trips of the rtt workload")
	openStreams := fs.Int("open-streams", 0, "streams of the open workload")
	if code, done := parseFlags(fs, args); done {
		return code
	}
	sizes := benchSizes{bulkBytes: 256 << 20, rttRounds: 10000, openStreams: 10000}
	if *quick {
		sizes = benchSizes{bulkBytes: 32 << 20, rttRounds: 1000, openStreams: 1000}
	}
	if *bulkBytes > 0 {
		sizes.bulkBytes = *bulkBytes
	}
	if *rttRounds > 0 {
		sizes.rttRounds = *rttRounds
	}
	if *openStreams > 0 {
		sizes.openStreams = *openStreams
	}

	results, err := bench(ctx, sizes, stdout, stderr, newLogger(stderr, *verbose))
	if err != nil {
		fmt.Fprintf(stderr, "astranet bench: %v\n", err)
		return 1
	}
	printTable(stdout, results)
	for _, r := range results {
		if r.err != nil {
			return 1
		}
	}
	return 0
}

// side is one thing measured: it makes a listener for a workload and a way
// to open connections to it.
type side struct {
	name   string
	listen func(name string) (net.Listener, dialFunc, error)
}

type dialFunc func(ctx context.Context) (net.Conn, error)

// result is one row of the table.
type result struct {
	workload, metric string
	higherIsBetter   bool
	astranet, raw    float64
	err              error // the first error of either side
}

// bench runs every workload on astranet and on raw TCP.
func bench(ctx context.Context, sizes benchSizes, stdout, stderr io.Writer, log hclog.Logger) ([]result, error) {
	a := astranet.New(astranet.WithLogger(log.Named("A")))
	b := astranet.New(astranet.WithLogger(log.Named("B")))
	defer a.Close()
	defer b.Close()
	la, err := b.(listenAddrer).ListenAddr("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("astranet listen: %w", err)
	}
	if err := a.Join("tcp4", la.String()); err != nil {
		return nil, fmt.Errorf("astranet join: %w", err)
	}
	if err := waitLinked(ctx, a, b); err != nil {
		return nil, err
	}
	astra := side{name: "astranet", listen: func(name string) (net.Listener, dialFunc, error) {
		l, err := b.Bind("", name)
		return l, func(ctx context.Context) (net.Conn, error) { return a.DialContext(ctx, "", name) }, err
	}}
	raw := side{name: "raw TCP", listen: func(string) (net.Listener, dialFunc, error) {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		var d net.Dialer
		return l, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp4", l.Addr().String()) }, nil
	}}

	fmt.Fprintf(stdout, "astranet bench: %s/%s, %d CPUs, GOMAXPROCS %d, all over 127.0.0.1\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	fmt.Fprintln(stdout, "  astranet: two nodes in this process, every stream over one tcp4 link between them")
	fmt.Fprintln(stdout, "  raw TCP:  one TCP connection per stream")
	fmt.Fprintf(stdout, "  bulk: one stream, %s in %d KiB writes; rtt: %d B ping-pong x %d; open: open + 1 B echo + close x %d, %d workers\n",
		mib(sizes.bulkBytes), bulkWrite>>10, rttSize, sizes.rttRounds, sizes.openStreams, openWorkers)

	workloads := []struct {
		name string
		run  func(ctx context.Context, s side, sizes benchSizes, p *progress) ([]float64, error)
		rows []result
	}{
		{"bulk", benchBulk, []result{{workload: "bulk", metric: "MB/s", higherIsBetter: true}}},
		{"rtt", benchRTT, []result{{workload: "rtt", metric: "p50 µs"}, {workload: "rtt", metric: "p99 µs"}}},
		{"open", benchOpen, []result{{workload: "open", metric: "streams/s", higherIsBetter: true}}},
	}
	var results []result
	for _, w := range workloads {
		for _, s := range []side{astra, raw} {
			p := newProgress(stderr, "bench: "+w.name+" "+s.name)
			ctx, cancel := context.WithTimeout(ctx, workloadTimeout)
			figures, err := w.run(ctx, s, sizes, p)
			cancel()
			p.finish()
			for i := range w.rows {
				r := &w.rows[i]
				switch {
				case err != nil && r.err == nil:
					r.err = fmt.Errorf("%s %s: %w", w.name, s.name, err)
				case err == nil && s.name == astra.name:
					r.astranet = figures[i]
				case err == nil:
					r.raw = figures[i]
				}
			}
		}
		results = append(results, w.rows...)
	}
	return results, nil
}

// acceptEach accepts from l until it fails, handling each connection in a
// goroutine of wg (the application's, not the library's), and returns
// Accept's error. With max > 0, at most max handlers run at once: while max
// are running it accepts no more, and further connections wait in the
// listener's backlog. Running out of file descriptors does not end it: it
// logs that to log and waits for connections to end and free some.
func acceptEach(l net.Listener, wg *sync.WaitGroup, max int, log hclog.Logger, handle func(net.Conn)) error {
	var slots chan struct{}
	if max > 0 {
		slots = make(chan struct{}, max)
	}
	for {
		if slots != nil {
			slots <- struct{}{} // freed when a handler returns
		}
		c, err := accept(l, log)
		if err != nil {
			return err
		}
		wg.Go(func() {
			if slots != nil {
				defer func() { <-slots }()
			}
			handle(c)
		})
	}
}

// accept is l.Accept, except that while the process has no file descriptor
// left it retries, as net/http's Server does, pausing longer each time up to
// a second: they come back as connections end.
func accept(l net.Listener, log hclog.Logger) (net.Conn, error) {
	pause := 5 * time.Millisecond
	for {
		c, err := l.Accept()
		if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
			return c, err
		}
		log.Warn("accept: out of file descriptors; retrying", "addr", l.Addr(), "error", err, "pause", pause)
		time.Sleep(pause)
		pause = min(2*pause, time.Second)
	}
}

// serve runs handle on every connection l accepts, in a goroutine each,
// until l is closed; the returned func closes l and waits for the handlers.
func serve(l net.Listener, handle func(net.Conn)) (stop func()) {
	var wg sync.WaitGroup
	wg.Go(func() {
		acceptEach(l, &wg, 0, hclog.NewNullLogger(), func(c net.Conn) {
			defer c.Close()
			c.SetDeadline(time.Now().Add(workloadTimeout))
			handle(c)
		})
	})
	return func() {
		l.Close()
		wg.Wait()
	}
}

// benchBulk sends sizes.bulkBytes on one stream; the far end reads them all,
// then answers with how many it read, which must be all. It returns MB/s.
func benchBulk(ctx context.Context, s side, sizes benchSizes, p *progress) ([]float64, error) {
	n := sizes.bulkBytes
	l, dial, err := s.listen("bench-bulk")
	if err != nil {
		return nil, err
	}
	stop := serve(l, func(c net.Conn) {
		buf := make([]byte, bulkWrite)
		var got uint64
		for {
			k, err := c.Read(buf)
			got += uint64(k)
			if err != nil {
				if err == io.EOF {
					c.Write(binary.BigEndian.AppendUint64(nil, got))
				}
				return
			}
		}
	})
	defer stop()
	c, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	buf := make([]byte, bulkWrite)
	began := time.Now()
	for sent := int64(0); sent < n; {
		m := int(min(int64(len(buf)), n-sent))
		if _, err := c.Write(buf[:m]); err != nil {
			return nil, fmt.Errorf("after %d bytes: %w", sent, err)
		}
		sent += int64(m)
		p.update(sent, n)
	}
	if err := c.(closeWriter).CloseWrite(); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(c, buf[:8]); err != nil {
		return nil, fmt.Errorf("waiting for the receiver to finish: %w", err)
	}
	if got := binary.BigEndian.Uint64(buf); got != uint64(n) {
		return nil, fmt.Errorf("the receiver read %d bytes of %d", got, n)
	}
	return []float64{float64(n) / time.Since(began).Seconds() / 1e6}, nil
}

// benchRTT times sizes.rttRounds 64-byte ping-pongs on one stream, after a
// short warm-up. It returns p50 and p99 in microseconds.
func benchRTT(ctx context.Context, s side, sizes benchSizes, p *progress) ([]float64, error) {
	rounds := sizes.rttRounds
	l, dial, err := s.listen("bench-rtt")
	if err != nil {
		return nil, err
	}
	stop := serve(l, func(c net.Conn) {
		buf := make([]byte, rttSize)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	defer stop()
	c, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	warmup := max(10, rounds/10)
	times := make([]time.Duration, 0, rounds)
	buf := make([]byte, rttSize)
	for i := range warmup + rounds {
		began := time.Now()
		if _, err := c.Write(buf); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		if i >= warmup {
			times = append(times, time.Since(began))
			p.update(int64(len(times)), int64(rounds))
		}
	}
	slices.Sort(times)
	pct := func(q float64) float64 {
		return float64(times[min(len(times)-1, int(q*float64(len(times))))].Nanoseconds()) / 1e3
	}
	return []float64{pct(0.50), pct(0.99)}, nil
}

// benchOpen opens sizes.openStreams streams with openWorkers goroutines; each
// sends a byte, reads it back and closes. It returns streams/s.
func benchOpen(ctx context.Context, s side, sizes benchSizes, p *progress) ([]float64, error) {
	n := sizes.openStreams
	l, dial, err := s.listen("bench-open")
	if err != nil {
		return nil, err
	}
	stop := serve(l, func(c net.Conn) {
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			return
		}
		if _, err := c.Write(b); err != nil {
			return
		}
		c.Read(b) // until the opener closes
	})
	defer stop()
	var done atomic.Int64
	began := time.Now()
	err = forEach(ctx, n, openWorkers, func(ctx context.Context, i int) error {
		c, err := dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		deadline, _ := ctx.Deadline()
		c.SetDeadline(deadline)
		b := []byte{byte(i)}
		if _, err := c.Write(b); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return err
		}
		if b[0] != byte(i) {
			return errors.New("the echo came back different")
		}
		p.update(done.Add(1), int64(n))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []float64{float64(n) / time.Since(began).Seconds()}, nil
}

// printTable writes the results with a ratio column, astranet / raw TCP.
func printTable(w io.Writer, results []result) {
	const row = "%-9s %-12s %10s %10s %13s\n"
	fmt.Fprintln(w)
	fmt.Fprintf(w, row, "workload", "metric", "astranet", "raw TCP", "astranet/TCP")
	for _, r := range results {
		metric := r.metric + " ↓"
		if r.higherIsBetter {
			metric = r.metric + " ↑"
		}
		if r.err != nil {
			fmt.Fprintf(w, row, r.workload, metric, "error", "error", "-")
			continue
		}
		fmt.Fprintf(w, row, r.workload, metric, figure(r.astranet), figure(r.raw),
			fmt.Sprintf("%.2f", r.astranet/r.raw))
	}
	fmt.Fprintln(w, "↑ higher is better, ↓ lower is better")
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(w, "error: %v\n", r.err)
		}
	}
}

func figure(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

// progress reports how far a workload is on stderr: rewriting one line on a
// terminal, a line per quarter otherwise. It is safe for concurrent use.
type progress struct {
	mu     sync.Mutex
	w      io.Writer
	label  string
	tty    bool
	shown  int // last percentage shown
	shownT time.Time
}

func newProgress(w io.Writer, label string) *progress {
	f, ok := w.(*os.File)
	tty := false
	if ok {
		if fi, err := f.Stat(); err == nil {
			tty = fi.Mode()&os.ModeCharDevice != 0
		}
	}
	p := &progress{w: w, label: label, tty: tty, shown: -100}
	p.update(0, 1)
	return p
}

func (p *progress) update(done, total int64) {
	pct := int(done * 100 / total)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.tty && pct != p.shown && (pct == 100 || time.Since(p.shownT) > 100*time.Millisecond):
		fmt.Fprintf(p.w, "\r%s %3d%%", p.label, pct)
	case !p.tty && pct/25 != p.shown/25:
		fmt.Fprintf(p.w, "%s %d%%\n", p.label, pct/25*25)
	default:
		return
	}
	p.shown, p.shownT = pct, time.Now()
}

// finish ends the progress line on a terminal.
func (p *progress) finish() {
	if p.tty {
		fmt.Fprintf(p.w, "\r%s done\033[K\n", p.label)
	}
}
