package main

import "testing"

// TestMediansCountStalled: a "stalled" echo is worse than any latency, so
// runs that stalled move the median towards the slow end; they are not
// simply left out.
func TestMediansCountStalled(t *testing.T) {
	run := func(cells map[string]Cell) Result {
		return Result{Lib: "x", Workload: "slowreaders", Cells: cells}
	}
	num := func(v float64) map[string]Cell { return map[string]Cell{"p50": {Value: v}} }
	stalled := map[string]Cell{"p50": {Text: "stalled"}}
	for _, tc := range []struct {
		name string
		runs []Result
		want Cell
	}{
		{"5 runs, 2 stalled", []Result{run(num(1)), run(stalled), run(num(2)), run(stalled), run(num(3))}, Cell{Value: 3}},
		{"4 runs, 1 stalled", []Result{run(num(1)), run(num(2)), run(stalled), run(num(3))}, Cell{Value: 2.5}},
		{"4 runs, 2 stalled", []Result{run(num(1)), run(stalled), run(stalled), run(num(3))}, Cell{Text: "stalled"}},
		{"3 runs, 1 stalled", []Result{run(num(1)), run(stalled), run(num(2))}, Cell{Value: 2}},
		{"3 runs, 2 stalled", []Result{run(num(1)), run(stalled), run(stalled)}, Cell{Text: "stalled"}},
		{"3 runs, none stalled", []Result{run(num(3)), run(num(1)), run(num(2))}, Cell{Value: 2}},
	} {
		got := medians(tc.runs)[0].Cells["p50"]
		if got != tc.want {
			t.Errorf("%s: median %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestMediansHigherIsBetter: for a metric where higher is better, the
// median is still the middle value.
func TestMediansHigherIsBetter(t *testing.T) {
	var rs []Result
	for _, v := range []float64{5, 1, 4, 2, 3} {
		rs = append(rs, Result{Lib: "x", Workload: "bulk1", Cells: map[string]Cell{"mbps": {Value: v}}})
	}
	if got := medians(rs)[0].Cells["mbps"]; got.Value != 3 {
		t.Errorf("median %v, want 3", got.Value)
	}
	// An even count takes the mean of the middle two, favouring neither end.
	if got := medians(rs[:4])[0].Cells["mbps"]; got.Value != 3 {
		t.Errorf("median of 5 1 4 2: %v, want 3", got.Value)
	}
}
