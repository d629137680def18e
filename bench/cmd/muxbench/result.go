package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is what one child process prints as a single JSON line.
type Result struct {
	Lib      string          `json:"lib"`
	Workload string          `json:"workload"`
	Cells    map[string]Cell `json:"cells,omitempty"` // by metric key
	NA       string          `json:"na,omitempty"`    // the whole workload does not apply
	Error    string          `json:"error,omitempty"`
	Timeout  bool            `json:"timeout,omitempty"`
	Notes    []string        `json:"notes,omitempty"`
	Seconds  float64         `json:"seconds"` // wall time of the child
}

// Cell is one measured figure: a number, or a word when there is no number
// to give ("stalled").
type Cell struct {
	Value float64 `json:"value"`
	Text  string  `json:"text,omitempty"`
}

func (r *Result) set(key string, v float64) {
	if r.Cells == nil {
		r.Cells = map[string]Cell{}
	}
	r.Cells[key] = Cell{Value: v}
}

func (r *Result) setText(key, text string) {
	if r.Cells == nil {
		r.Cells = map[string]Cell{}
	}
	r.Cells[key] = Cell{Text: text}
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// percentile returns the p-quantile (0 < p <= 1) of d, sorting d in place.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(math.Ceil(p*float64(len(d)))) - 1
	if i < 0 {
		i = 0
	}
	return d[i]
}

// jain is Jain's fairness index (Σx)² / (n·Σx²): 1 when all x are equal,
// 1/n when one of n takes everything.
func jain(x []float64) float64 {
	var sum, sq float64
	for _, v := range x {
		sum += v
		sq += v * v
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(x)) * sq)
}

// cpuSeconds is the user+system CPU time used by this process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// memSnapshot is taken after a full GC: Go heap and stacks in use, and the
// process's resident set size.
type memSnapshot struct {
	heapStack uint64
	rss       uint64
}

func takeMem() memSnapshot {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{heapStack: ms.HeapInuse + ms.StackInuse, rss: rss()}
}

// rss reads the resident set size from /proc/self/statm (second field, pages).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

// delta returns after-before as a signed number of bytes.
func delta(after, before uint64) float64 { return float64(after) - float64(before) }

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mbps is throughput in MB/s (10^6 bytes per second).
func mbps(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / d.Seconds()
}

// fmtBytes writes n in the largest binary unit that keeps it whole-ish.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.4g GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.4g MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.4g KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
