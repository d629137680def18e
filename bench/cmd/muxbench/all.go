package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"
)

// cmdAll runs every chosen (library, workload) pair in its own child process
// and prints a Markdown table.
func cmdAll(args []string) error {
	fs := flag.NewFlagSet("all", flag.ExitOnError)
	libList := fs.String("libs", strings.Join(availableLibs(), ","), "libraries, comma-separated")
	wlList := fs.String("workloads", "", "workloads, comma-separated (default: all)")
	quick := fs.Bool("quick", false, "small sizes for a smoke run")
	overrides := fs.String("sizes", "", `JSON object overriding sizes, e.g. {"IdleBigN":300000}`)
	jsonOut := fs.String("json", "", "also write every result as a JSON line to this file")
	runs := fs.Int("runs", 1, "run everything this many times and report medians")
	fs.Parse(args)

	chosenLibs := splitList(*libList)
	for _, l := range chosenLibs {
		if _, ok := libs[l]; !ok {
			return fmt.Errorf("unknown library %q (have %s)", l, strings.Join(availableLibs(), ", "))
		}
	}
	var chosen []Workload
	if *wlList == "" {
		chosen = workloads
	} else {
		for _, name := range splitList(*wlList) {
			w, ok := findWorkload(name)
			if !ok {
				return fmt.Errorf("unknown workload %q", name)
			}
			chosen = append(chosen, w)
		}
	}
	if _, err := sizesFor(*quick, *overrides); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}

	var results []Result
	total, k := *runs*len(chosen)*len(chosenLibs), 0
	for pass := range *runs {
		for _, w := range chosen {
			// Each pass starts the libraries at a different one, so that a
			// drift in the machine's speed, or the after-effects of the run
			// before, do not fall on the same library every pass.
			for j := range chosenLibs {
				l := chosenLibs[(pass+j)%len(chosenLibs)]
				k++
				res := runChild(self, l, w, *quick, *overrides)
				fmt.Fprintf(os.Stderr, "[%d/%d] %-9s %-12s %6.1fs %s\n", k, total, l, w.Name, res.Seconds, status(res))
				results = append(results, res)
			}
		}
	}
	if *jsonOut != "" {
		var buf bytes.Buffer
		for _, r := range results {
			b, _ := json.Marshal(r)
			buf.Write(b)
			buf.WriteByte('\n')
		}
		if err := os.WriteFile(*jsonOut, buf.Bytes(), 0o644); err != nil {
			return err
		}
	}
	sizes := "default sizes"
	if *quick {
		sizes = "quick sizes"
	}
	if *overrides != "" {
		sizes += ", overrides " + *overrides
	}
	if *runs > 1 {
		sizes += fmt.Sprintf("; medians of %d runs", *runs)
	}
	writeTable(os.Stdout, chosen, chosenLibs, medians(results), sizes)
	return nil
}

// cmdTable prints the table again from files written by "all -json".
func cmdTable(args []string) error {
	fs := flag.NewFlagSet("table", flag.ExitOnError)
	fs.Parse(args)
	if fs.NArg() == 0 {
		return fmt.Errorf("table: name one or more files written by all -json")
	}
	var results []Result
	for _, name := range fs.Args() {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var r Result
			if err := json.Unmarshal(line, &r); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			results = append(results, r)
		}
	}
	seen := map[string]int{}
	for _, r := range results {
		seen[r.Lib]++
		seen[r.Lib+"/"+r.Workload]++
		seen["w:"+r.Workload]++
	}
	var ls []string
	for _, l := range libOrder {
		if seen[l] > 0 {
			ls = append(ls, l)
		}
	}
	var ws []Workload
	runs := 0
	for _, w := range workloads {
		if seen["w:"+w.Name] > 0 {
			ws = append(ws, w)
		}
		for _, l := range ls {
			runs = max(runs, seen[l+"/"+w.Name])
		}
	}
	sizes := "as run by the command that wrote " + strings.Join(fs.Args(), ", ")
	if runs > 1 {
		sizes += fmt.Sprintf("; medians of up to %d runs", runs)
	}
	writeTable(os.Stdout, ws, ls, medians(results), sizes)
	return nil
}

// medians folds repeated runs of each (library, workload) into one result:
// the median of each figure over the runs that succeeded.
func medians(all []Result) []Result {
	var order []string
	groups := map[string][]Result{}
	for _, r := range all {
		key := r.Lib + "/" + r.Workload
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], r)
	}
	out := make([]Result, 0, len(order))
	for _, key := range order {
		rs := groups[key]
		var good []Result
		var failed []string
		for i, r := range rs {
			if r.Error == "" && !r.Timeout && r.NA == "" {
				good = append(good, r)
			} else if r.NA == "" {
				failed = append(failed, fmt.Sprintf("run %d: %s", i+1, status(r)))
			}
		}
		if len(good) == 0 || len(rs) == 1 {
			out = append(out, rs[0])
			continue
		}
		m := Result{Lib: rs[0].Lib, Workload: rs[0].Workload, Cells: map[string]Cell{}}
		if len(good) < len(rs) {
			m.note("median of %d of %d runs", len(good), len(rs))
			m.Notes = append(m.Notes, failed...)
		}
		m.Notes = append(m.Notes, good[0].Notes...)
		for _, r := range good {
			m.Seconds += r.Seconds
			for k := range r.Cells {
				if _, done := m.Cells[k]; done {
					continue
				}
				m.Cells[k] = medianCell(good, k, metricBetter(rs[0].Workload, k))
			}
		}
		out = append(out, m)
	}
	return out
}

// medianCell is the median of metric k over rs. A cell with a word instead
// of a number ("stalled") ranks as worse than every number, as the outcome
// it stands for is; when the median falls on such a cell, it is the word.
// With an even count the median is the mean of the middle two.
func medianCell(rs []Result, k string, better int) Cell {
	var cells []Cell
	for _, r := range rs {
		if c, ok := r.Cells[k]; ok {
			cells = append(cells, c)
		}
	}
	// less orders from best to worst (without a direction, low to high).
	less := func(a, b Cell) bool {
		switch {
		case a.Text != "" || b.Text != "":
			return a.Text == "" && b.Text != ""
		case better > 0:
			return a.Value > b.Value
		}
		return a.Value < b.Value
	}
	sort.SliceStable(cells, func(i, j int) bool { return less(cells[i], cells[j]) })
	n := len(cells)
	if n == 0 {
		return Cell{}
	}
	lo, hi := cells[(n-1)/2], cells[n/2]
	switch {
	case hi.Text != "":
		return hi
	case lo.Text != "":
		return lo
	}
	return Cell{Value: (lo.Value + hi.Value) / 2}
}

// metricBetter returns the direction of metric key of workload w: +1 when
// higher is better, -1 when lower is, 0 when neither or unknown.
func metricBetter(w, key string) int {
	if wl, ok := findWorkload(w); ok {
		for _, m := range wl.Metrics {
			if m.Key == key {
				return m.Better
			}
		}
	}
	return 0
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func status(r Result) string {
	switch {
	case r.Timeout:
		return "timeout"
	case r.Error != "":
		return "error: " + firstLine(r.Error)
	case r.NA != "":
		return "n/a: " + r.NA
	}
	return "ok"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// runChild runs "self run ..." with a hard timeout a little past the
// workload's own, and reads its JSON line.
func runChild(self, lib string, w Workload, quick bool, overrides string) Result {
	res := Result{Lib: lib, Workload: w.Name}
	args := []string{"run", "-lib", lib, "-workload", w.Name, "-timeout", w.Timeout.String()}
	if quick {
		args = append(args, "-quick")
	}
	if overrides != "" {
		args = append(args, "-sizes", overrides)
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.Timeout+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	start := time.Now()
	err := cmd.Run()
	res.Seconds = time.Since(start).Seconds()
	if ctx.Err() != nil {
		res.Timeout = true
		return res
	}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var line []byte
	for sc.Scan() {
		if b := bytes.TrimSpace(sc.Bytes()); len(b) > 0 && b[0] == '{' {
			line = append(line[:0], b...)
		}
	}
	if line != nil {
		var got Result
		if jerr := json.Unmarshal(line, &got); jerr == nil {
			return got
		}
	}
	msg := "no result"
	if err != nil {
		msg = err.Error()
	}
	if t := strings.TrimSpace(stderr.String()); t != "" {
		lines := strings.Split(t, "\n")
		msg += ": " + lines[len(lines)-1]
	}
	res.Error = msg
	return res
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

// cell renders one library's figure for one metric.
func cell(r *Result, key string) (string, float64, bool) {
	switch {
	case r == nil:
		return "–", 0, false
	case r.Timeout:
		return "timeout", 0, false
	case r.Error != "":
		return "error", 0, false
	case r.NA != "":
		return "n/a (" + r.NA + ")", 0, false
	}
	c, ok := r.Cells[key]
	switch {
	case !ok:
		return "–", 0, false
	case c.Text != "":
		return c.Text, 0, false
	}
	return formatNum(c.Value), c.Value, true
}

func formatNum(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	case a == 0:
		return "0"
	}
	return fmt.Sprintf("%.3g", v)
}

// writeTable prints one row per workload and metric, one column per library,
// and, when astranet is among them, astranet's ratio to raw TCP and to the
// best peer.
func writeTable(out io.Writer, ws []Workload, libNames []string, results []Result, sizes string) {
	byKey := map[string]*Result{}
	for i := range results {
		byKey[results[i].Lib+"/"+results[i].Workload] = &results[i]
	}
	ratios := false
	for _, l := range libNames {
		ratios = ratios || l == "astranet"
	}

	fmt.Fprintf(out, "machine: %s %s/%s, nproc %d, %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	fmt.Fprintf(out, "sizes: %s\n\n", sizes)

	head := []string{"workload", "metric"}
	head = append(head, libNames...)
	if ratios {
		head = append(head, "astranet / tcp", "astranet / best peer")
	}
	fmt.Fprintln(out, "| "+strings.Join(head, " | ")+" |")
	fmt.Fprintln(out, "|"+strings.Repeat("---|", len(head)))
	for _, w := range ws {
		for _, m := range w.Metrics {
			label := m.Label
			switch m.Better {
			case +1:
				label += " ↑"
			case -1:
				label += " ↓"
			}
			row := []string{w.Name, label}
			vals := map[string]float64{}
			for _, l := range libNames {
				s, v, ok := cell(byKey[l+"/"+w.Name], m.Key)
				row = append(row, s)
				if ok {
					vals[l] = v
				}
			}
			if ratios {
				row = append(row, ratio(vals, "tcp", m), ratio(vals, bestPeer(vals, m), m))
			}
			fmt.Fprintln(out, "| "+strings.Join(row, " | ")+" |")
		}
	}

	fmt.Fprint(out, "\n↑ higher is better, ↓ lower is better")
	if ratios {
		fmt.Fprint(out, "; ratios are astranet's figure divided by the other")
	}
	fmt.Fprintln(out, ".")
	fmt.Fprintln(out, "\nNotes:")
	for _, w := range ws {
		fmt.Fprintf(out, "- %s: %s.\n", w.Name, w.Note)
		for _, l := range libNames {
			r := byKey[l+"/"+w.Name]
			if r == nil {
				continue
			}
			var parts []string
			if r.Error != "" {
				parts = append(parts, "error: "+firstLine(r.Error))
			}
			if r.Timeout {
				parts = append(parts, fmt.Sprintf("killed after %.0fs", r.Seconds))
			}
			parts = append(parts, r.Notes...)
			if len(parts) > 0 {
				fmt.Fprintf(out, "  - %s: %s\n", l, strings.Join(parts, "; "))
			}
		}
	}
}

// bestPeer names the peer multiplexer with the best figure for m.
func bestPeer(vals map[string]float64, m Metric) string {
	best := ""
	for l, v := range vals {
		if !peerLibs[l] {
			continue
		}
		if best == "" || (m.Better >= 0 && v > vals[best]) || (m.Better < 0 && v < vals[best]) {
			best = l
		}
	}
	return best
}

func ratio(vals map[string]float64, other string, m Metric) string {
	a, okA := vals["astranet"]
	b, okB := vals[other]
	if !okA || !okB || b == 0 || m.Better == 0 {
		return "–"
	}
	s := fmt.Sprintf("%.2f", a/b)
	if other != "tcp" {
		s += " (" + other + ")"
	}
	return s
}

// cpuModel reads the first "model name" line of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
