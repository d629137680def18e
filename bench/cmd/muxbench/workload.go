package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// Sizes are the knobs of every workload. The defaults are the full run;
// quickSizes shrink them for a smoke run. Any field can be overridden with
// -sizes '{"IdleBigN":300000}'.
type Sizes struct {
	BulkBytes   int64    // bulk1 and bulk100: bytes sent in total
	BulkStreams int      // bulk100: streams sharing BulkBytes
	RTTRounds   int      // rtt: measured round trips (after RTTWarmup)
	RTTWarmup   int      // rtt: unmeasured round trips first
	OpenSeq     int      // open: sequential open/echo/close cycles
	OpenPar     int      // open: cycles spread over OpenWorkers goroutines
	OpenWorkers int      // open: parallel workers
	IdleN       int      // idle: streams held open
	IdleBigN    int      // idle1m: streams held open
	IdleOpeners int      // idle, idle1m: goroutines opening streams
	ManyStreams int      // manyactive: streams
	ManyBytes   int      // manyactive: bytes per stream
	BusyStreams int      // busyecho: bulk streams
	BusyFor     Duration // busyecho: how long the echoes run under load
	SlowStreams int      // slowreaders: streams nobody reads
	SlowBytes   int64    // slowreaders: bytes each writer tries to push
	SlowEchoes  int      // slowreaders: echoes on the fresh stream
}

func defaultSizes() Sizes {
	return Sizes{
		BulkBytes:   1 << 30,
		BulkStreams: 100,
		RTTRounds:   20000,
		RTTWarmup:   1000,
		OpenSeq:     5000,
		OpenPar:     50000,
		OpenWorkers: 64,
		IdleN:       100000,
		IdleBigN:    1000000,
		IdleOpeners: 16,
		ManyStreams: 10000,
		ManyBytes:   16 << 10,
		BusyStreams: 10000,
		BusyFor:     Duration(5 * time.Second),
		SlowStreams: 100,
		SlowBytes:   8 << 20,
		SlowEchoes:  100,
	}
}

func quickSizes() Sizes {
	s := defaultSizes()
	s.BulkBytes = 32 << 20
	s.RTTRounds = 2000
	s.RTTWarmup = 100
	s.OpenSeq = 200
	s.OpenPar = 2000
	s.IdleN = 2000
	s.IdleBigN = 5000
	s.ManyStreams = 300
	s.BusyStreams = 200
	s.BusyFor = Duration(time.Second)
	s.SlowStreams = 10
	s.SlowBytes = 1 << 20
	s.SlowEchoes = 20
	return s
}

// Duration is a time.Duration that reads and writes as "5s" in JSON.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Metric is one row of the table.
type Metric struct {
	Key    string
	Label  string
	Better int // +1: higher is better, -1: lower is better
}

// env is what a workload gets besides the library and sizes.
type env struct {
	sz       Sizes
	deadline time.Time // every blocking step gives up by then
}

// Workload is one scenario, run once per library in its own process.
type Workload struct {
	Name    string
	Metrics []Metric
	Timeout time.Duration // the child is killed after this
	Note    string        // printed under the table
	Run     func(lib Lib, e env, r *Result) error
}

const bothEnds = "both ends run in one process, so figures cover client and server together"

var workloads = []Workload{
	{
		Name: "bulk1", Timeout: 3 * time.Minute,
		Metrics: []Metric{{"mbps", "MB/s", +1}, {"cpu", "CPU s/GiB", -1}},
		Note:    "one stream, 32 KiB writes; CPU is user+system of the whole process (" + bothEnds + ")",
		Run:     func(l Lib, e env, r *Result) error { return runBulk(l, e, r, 1) },
	},
	{
		Name: "bulk100", Timeout: 3 * time.Minute,
		Metrics: []Metric{{"mbps", "MB/s", +1}, {"cpu", "CPU s/GiB", -1}, {"jain", "Jain fairness", +1}},
		Note:    "100 streams share the same total; fairness is Jain's index over per-stream MB/s",
		Run:     func(l Lib, e env, r *Result) error { return runBulk(l, e, r, e.sz.BulkStreams) },
	},
	{
		Name: "rtt", Timeout: 3 * time.Minute,
		Metrics: []Metric{{"p50", "p50 µs", -1}, {"p99", "p99 µs", -1}},
		Note:    "one stream, 64-byte ping-pong after warm-up",
		Run:     runRTT,
	},
	{
		Name: "open", Timeout: 3 * time.Minute,
		Metrics: []Metric{{"seq", "sequential streams/s", +1}, {"par", "64 workers streams/s", +1}},
		Note:    "open, 1-byte echo, close; the server handles each stream in its own goroutine",
		Run:     runOpen,
	},
	{
		Name: "idle", Timeout: 3 * time.Minute,
		Metrics: idleMetrics,
		Note:    "streams held open with no goroutine per stream in the application; bytes per stream = growth / streams, " + bothEnds,
		Run:     func(l Lib, e env, r *Result) error { return runIdle(l, e, r, e.sz.IdleN) },
	},
	{
		Name: "idle1m", Timeout: 5 * time.Minute,
		Metrics: idleMetrics,
		Note:    "as idle, with 1M streams",
		Run:     func(l Lib, e env, r *Result) error { return runIdle(l, e, r, e.sz.IdleBigN) },
	},
	{
		Name: "manyactive", Timeout: 3 * time.Minute,
		Metrics: []Metric{{"secs", "total s", -1}, {"mbps", "MB/s", +1}},
		Note:    "all streams opened first, then each writes 16 KiB at once and closes; time until the server has read everything",
		Run:     runManyActive,
	},
	{
		Name: "busyecho", Timeout: 3 * time.Minute,
		Metrics: []Metric{{"p50", "echo p50 ms", -1}, {"p99", "echo p99 ms", -1}, {"mbps", "bulk MB/s", +1}},
		Note:    "64-byte echoes on one stream while 10k streams send bulk data",
		Run:     runBusyEcho,
	},
	{
		Name: "slowreaders", Timeout: 3 * time.Minute,
		Metrics: []Metric{{"p50", "echo p50 ms", -1}, {"heap", "heap growth MiB", -1}, {"written", "MiB accepted by writers", 0}},
		Note:    "100 streams whose reader never reads, then echoes on a fresh stream (stalled: not done in 5 s); heap growth is Go heap only (kernel socket buffers are not counted)",
		Run:     runSlowReaders,
	},
	{
		Name: "routed", Timeout: 2 * time.Minute,
		Metrics: []Metric{{"mbps", "bulk1 via a router MB/s", +1}, {"p50", "rtt via a router p50 µs", -1}, {"p99", "rtt via a router p99 µs", -1}},
		Note:    "bulk1 and rtt through a third node that forwards (astranet only: the peers do not route)",
		Run:     runRouted,
	},
}

// runRouted runs bulk1 and rtt over astranet with a router in the path.
func runRouted(lib Lib, e env, r *Result) error {
	if lib.Name() != "astranet" {
		return errNA("no routing")
	}
	via := astranetLib{routed: true}
	var bulk, rtt Result
	if err := runBulk(via, e, &bulk, 1); err != nil {
		return fmt.Errorf("bulk1: %w", err)
	}
	if err := runRTT(via, e, &rtt); err != nil {
		return fmt.Errorf("rtt: %w", err)
	}
	r.Cells = map[string]Cell{"mbps": bulk.Cells["mbps"], "p50": rtt.Cells["p50"], "p99": rtt.Cells["p99"]}
	return nil
}

var idleMetrics = []Metric{
	{"reached", "streams reached", +1},
	{"rate", "open streams/s", +1},
	{"heap", "heap+stack B/stream", -1},
	{"rss", "RSS B/stream", -1},
}

func findWorkload(name string) (Workload, bool) {
	for _, w := range workloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// errNA marks a workload that does not apply to a library.
type errNA string

func (e errNA) Error() string { return "n/a: " + string(e) }

// needStreams returns errNA if lib cannot hold n streams at once here.
func needStreams(lib Lib, n int) error {
	if l, ok := lib.(streamLimiter); ok {
		if max, why := l.MaxStreams(); n > max {
			return errNA(why)
		}
	}
	return nil
}

// serve accepts streams until the acceptor fails, handing each to handle
// in its own goroutine.
func serve(a Acceptor, handle func(net.Conn)) {
	for {
		c, err := a.Accept()
		if err != nil {
			return
		}
		go handle(c)
	}
}

const chunkSize = 32 << 10

// chunk is shared by all writers; nobody modifies it.
var chunk = make([]byte, chunkSize)

// writeN writes n bytes of chunk-sized writes, adding progress to sent.
func writeN(c net.Conn, n int64, sent func(int)) error {
	for n > 0 {
		p := chunk
		if int64(len(p)) > n {
			p = p[:n]
		}
		w, err := c.Write(p)
		if sent != nil {
			sent(w)
		}
		if err != nil {
			return err
		}
		n -= int64(w)
	}
	return nil
}

// drain reads c to EOF, adding progress to got, and returns the byte count.
func drain(c net.Conn, got func(int)) (int64, error) {
	buf := make([]byte, chunkSize)
	var n int64
	for {
		k, err := c.Read(buf)
		n += int64(k)
		if got != nil && k > 0 {
			got(k)
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// echo answers size-byte messages until c fails.
func echo(c net.Conn, size int) {
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// waitGroup waits for wg or until d passes; it reports whether wg finished.
func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
