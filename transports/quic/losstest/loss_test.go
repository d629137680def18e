package losstest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
)

// The experiment of docs/QUIC.md: does spreading astranet streams over
// several QUIC links (lanes) to one peer lower the latency of a small
// request/response stream that shares the path with bulk streams, when
// packets are lost?
const (
	bulkStreams = 8
	bulkChunk   = 32 << 10
	echoSize    = 64
	warmUp      = 500 * time.Millisecond // not measured: slow start
	measure     = 5 * time.Second
	oneWayDelay = 5 * time.Millisecond
	budget      = 60 * time.Second // the whole experiment
	maxSamples  = 1 << 20
	echoLate    = 500 * time.Millisecond
)

const (
	portSink = 1
	portEcho = 2
)

// A mapping of lanes onto QUIC.
const (
	mapLinks   = "links"   // transports/quic: each lane its own QUIC connection
	mapStreams = "streams" // streamLanes: the lanes are QUIC streams of one connection
)

type lossResult struct {
	mapping      string
	lanes        int
	loss         float64
	samples      int
	p50, p99, mx time.Duration
	mbps         float64 // bulk payload received per second, MB/s (10^6)
	lanesLoad    []int   // streams on each lane, in link order
	relay        Stats
	kernelDrops  int64  // UDP receive-buffer drops on the host during the run; -1 if unknown
	load         string // the host's 1-minute load average after the run (Linux), "?" if unknown
	unfinished   int    // pings cut off echoLate after the end
	echoErr      error
}

// TestLossLanes runs the experiment. It takes about 55 s, so it runs only
// with ASTRANET_LOSS=1:
//
//	ASTRANET_LOSS=1 go test -run TestLossLanes -v -count=1 ./transports/quic/losstest/
func TestLossLanes(t *testing.T) {
	if testing.Short() {
		t.Skip("loss experiment: not in -short")
	}
	if os.Getenv("ASTRANET_LOSS") != "1" {
		t.Skip("loss experiment: set ASTRANET_LOSS=1 to run it (about 55 s)")
	}
	began := time.Now()
	var results []lossResult
	runs := []struct {
		mapping string
		lanes   int
	}{{mapLinks, 1}, {mapLinks, 4}, {mapStreams, 4}}
	for _, run := range runs {
		for _, loss := range []float64{0, 0.01, 0.03} {
			if time.Since(began)+warmUp+measure+echoLate > budget {
				t.Errorf("time budget of %v spent; skipping %d %s at %.0f%% loss", budget, run.lanes, run.mapping, loss*100)
				continue
			}
			t.Run(fmt.Sprintf("%s=%d/loss=%.0f%%", run.mapping, run.lanes, loss*100), func(t *testing.T) {
				results = append(results, runLoss(t, run.mapping, run.lanes, loss))
			})
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d bulk streams x %d KiB writes, 1 echo stream x %d B; %v one-way delay each way; %v measured after %v warm-up\n",
		bulkStreams, bulkChunk>>10, echoSize, oneWayDelay, measure, warmUp)
	fmt.Fprintf(&b, "| lanes | loss | echo p50 | echo p99 | echo max | echoes | bulk MB/s | dropped by relay | kernel drops | streams per lane | load |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	// lanes: "1 link", "4 links" (one QUIC connection each), "4 streams" (of one QUIC connection).
	label := func(r lossResult) string {
		if r.lanes == 1 {
			return "1 " + strings.TrimSuffix(r.mapping, "s")
		}
		return fmt.Sprintf("%d %s", r.lanes, r.mapping)
	}
	for _, r := range results {
		drop := 0.0
		if n := r.relay.Forwarded + r.relay.Dropped + r.relay.Overflow; n > 0 {
			drop = float64(r.relay.Dropped+r.relay.Overflow) / float64(n) * 100
		}
		cut := ""
		if r.unfinished > 0 {
			cut = fmt.Sprintf(" (%d cut off)", r.unfinished)
		}
		fmt.Fprintf(&b, "| %s | %.0f%% | %v | %v | %v | %d%s | %.1f | %.2f%% (%d, %d overflow) | %d | %v | %s |\n",
			label(r), r.loss*100, round(r.p50), round(r.p99), round(r.mx), r.samples, cut, r.mbps,
			drop, r.relay.Dropped, r.relay.Overflow, r.kernelDrops, r.lanesLoad, r.load)
	}
	t.Log(b.String())
	t.Logf("total %v; %d CPUs. The load column is the host's 1-minute load average: the relay and both nodes share the CPUs with whatever else runs, and a busy host skews every figure.",
		time.Since(began).Round(time.Second), runtime.NumCPU())
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

func runLoss(t *testing.T, mapping string, lanes int, loss float64) lossResult {
	res := lossResult{mapping: mapping, lanes: lanes, loss: loss}
	var transport func() core.Transport // nil: transports/quic
	if mapping == mapStreams {
		transport = newStreamLanes
	}
	p := newPair(t, core.DefaultConfig(), RelayConfig{Loss: loss, Delay: oneWayDelay, Seed: 1}, transport)
	var sunk atomic.Int64
	p.serve(t, portSink, func(c net.Conn) {
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			sunk.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	p.serve(t, portEcho, echo)
	p.join(t, lanes)

	bulk := make([]*core.Stream, bulkStreams)
	for i := range bulk {
		bulk[i] = p.dial(t, portSink)
		defer bulk[i].Close()
	}
	es := p.dial(t, portEcho)
	defer es.Close()
	for _, l := range p.a.Links() {
		res.lanesLoad = append(res.lanesLoad, l.Streams)
	}

	kernel0 := udpRcvbufErrors()
	start := time.Now()
	from, end := start.Add(warmUp), start.Add(warmUp+measure)

	// Bulk: write until the deadline, each stream on its own goroutine.
	var wg sync.WaitGroup
	chunk := make([]byte, bulkChunk)
	for _, s := range bulk {
		s.SetWriteDeadline(end)
		wg.Go(func() {
			for range 1 << 24 { // ends at the write deadline long before
				if _, err := s.Write(chunk); err != nil {
					return
				}
			}
		})
	}
	// Bytes the far side received in the measured window.
	var sunkFrom, sunkEnd int64
	wg.Go(func() {
		time.Sleep(time.Until(from))
		sunkFrom = sunk.Load()
		time.Sleep(time.Until(end))
		sunkEnd = sunk.Load()
	})

	// Echo: ping-pong until the end; only pings sent after the warm-up count.
	// A ping still unanswered echoLate after the end is counted with the time
	// it has waited so far (a lower bound), so that a run ends in time.
	es.SetDeadline(end.Add(echoLate))
	msg := make([]byte, echoSize)
	lat := make([]time.Duration, 0, 1<<16)
	for i := 0; i < maxSamples && time.Now().Before(end); i++ {
		msg[0], msg[1] = byte(i), byte(i>>8)
		t0 := time.Now()
		if err := pingPong(es, msg); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				res.unfinished++
				if t0.After(from) {
					lat = append(lat, time.Since(t0))
				}
				break
			}
			res.echoErr = err
			t.Errorf("echo %d: %v", i, err)
			break
		}
		if t0.After(from) {
			lat = append(lat, time.Since(t0))
		}
	}
	wg.Wait()
	res.kernelDrops = -1
	if k1 := udpRcvbufErrors(); kernel0 >= 0 && k1 >= 0 {
		res.kernelDrops = k1 - kernel0
	}
	res.relay = p.relay.Stats()
	res.load = loadAverage()
	res.mbps = float64(sunkEnd-sunkFrom) / measure.Seconds() / 1e6
	res.samples = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		res.p50 = lat[len(lat)/2]
		res.p99 = lat[len(lat)*99/100]
		res.mx = lat[len(lat)-1]
	}
	t.Logf("%d %s, loss %.0f%%: echo p50 %v p99 %v max %v (%d), bulk %.1f MB/s, relay %+v, kernel drops %d, streams per lane %v",
		lanes, mapping, loss*100, round(res.p50), round(res.p99), round(res.mx), res.samples, res.mbps, res.relay, res.kernelDrops, res.lanesLoad)
	return res
}

// udpRcvbufErrors reads the host's count of UDP datagrams dropped for a full
// receive buffer (Linux), or -1. Drops there are loss the relay did not
// choose; the table shows them so that a run where they matter can be told.
func udpRcvbufErrors() int64 {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return -1
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, name := range names {
			if name == "RcvbufErrors" && i < len(fields) {
				n, err := strconv.ParseInt(fields[i], 10, 64)
				if err != nil {
					return -1
				}
				return n
			}
		}
		return -1
	}
	return -1
}

// loadAverage returns the host's 1-minute load average (Linux), or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
