package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

type result struct {
	Lib      string `json:"lib"`
	Workload string `json:"workload"`
	Cells    map[string]struct {
		Value float64 `json:"value"`
		Text  string  `json:"text"`
	} `json:"cells"`
	NA      string `json:"na"`
	Error   string `json:"error"`
	Timeout bool   `json:"timeout"`
}

// TestQuickRun builds muxbench, runs "muxbench all -quick" and checks that
// every library produced a figure for every workload.
func TestQuickRun(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "muxbench")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/muxbench")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	jsonOut := filepath.Join(dir, "results.json")
	cmd := exec.CommandContext(ctx, bin, "all", "-quick", "-json", jsonOut)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	table, err := cmd.Output()
	if err != nil {
		t.Fatalf("muxbench all: %v\n%s", err, stderr.String())
	}
	t.Logf("\n%s", table)

	raw, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		var r result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad result line %q: %v", sc.Text(), err)
		}
		n++
		name := r.Lib + "/" + r.Workload
		switch {
		case r.Lib == "astranet-quic" && r.NA != "":
			// measured on bulk1, rtt and open only
		case r.Workload == "routed" && r.Lib != "astranet":
			if r.NA == "" {
				t.Errorf("%s: want n/a (the peers do not route), got %+v", name, r)
			}
		case r.Timeout:
			t.Errorf("%s: timed out", name)
		case r.Error != "":
			t.Errorf("%s: %s", name, r.Error)
		case r.NA != "" && !fdLimited(r.Lib, r.NA):
			t.Errorf("%s: n/a (%s) at quick sizes", name, r.NA)
		case len(r.Cells) == 0:
			t.Errorf("%s: no figures", name)
		}
	}
	if n < 7*10 {
		t.Errorf("got %d results, want at least 70 (7 libraries x 10 workloads)", n)
	}

	// Every library cell of every row but routed holds a number, or
	// "stalled" (a measured outcome, not a failure).
	rows, nLibs := 0, 0
	var libCols []string
	for _, line := range strings.Split(string(table), "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if cells[0] == "workload" {
			for _, h := range cells[2:] {
				if !strings.Contains(h, " / ") { // not a ratio column
					libCols = append(libCols, h)
					nLibs++
				}
			}
			continue
		}
		if cells[0] == "routed" {
			continue
		}
		rows++
		for i, c := range cells[2 : 2+nLibs] {
			quicOnly := libCols[i] == "astranet-quic" && c == "n/a (measured on tcp4 only)" // by design
			if _, err := strconv.ParseFloat(c, 64); err != nil && c != "stalled" && !fdLimited("tcp", c) && !quicOnly {
				t.Errorf("row %q: column %d is %q, not a number", cells[0]+" "+cells[1], i, c)
			}
		}
	}
	if rows == 0 {
		t.Error("no table rows in the output")
	}
}

// fdLimited reports whether a raw TCP figure is missing only because this
// machine's descriptor or port limit cannot hold that many connections.
func fdLimited(lib, na string) bool {
	return lib == "tcp" && (strings.Contains(na, "fd limit") || strings.Contains(na, "ephemeral ports"))
}
