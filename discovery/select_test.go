package discovery

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/astranet-go/astranet/core"
)

// instances returns n instances of one service on distinct nodes.
func instances(n int) []core.Service {
	ss := make([]core.Service, n)
	for i := range ss {
		ss[i] = core.Service{Name: "svc", Node: core.NodeID(0x1000 + i), Port: uint32(7 + i)}
	}
	return ss
}

// checkSpread fails if some instance got a share of picks outside 20% ± 3%
// (for five instances).
func checkSpread(t *testing.T, what string, counts map[core.NodeID]int, total int) {
	t.Helper()
	for node, c := range counts {
		if share := float64(c) / float64(total); share < 0.17 || share > 0.23 {
			t.Errorf("%s: %v got %.1f%% of %d picks", what, node, 100*share, total)
		}
	}
	if len(counts) != 5 {
		t.Errorf("%s: only %d of 5 instances picked", what, len(counts))
	}
}

func TestRandomSpreads(t *testing.T) {
	ss := instances(5)
	counts := map[core.NodeID]int{}
	for range 10000 {
		counts[Random(ss).Node]++
	}
	checkSpread(t, "random", counts, 10000)
}

func TestRoundRobinCycles(t *testing.T) {
	ss := instances(3)
	pick := RoundRobin()
	for i := range 7 {
		if got := pick(ss); got.Node != ss[i%3].Node {
			t.Fatalf("pick %d: %v, want %v", i, got.Node, ss[i%3].Node)
		}
	}
	// Concurrent picks stay fair: every instance exactly as often.
	pick = RoundRobin()
	var mu sync.Mutex
	var wg sync.WaitGroup
	counts := map[core.NodeID]int{}
	for range 8 {
		wg.Go(func() {
			for range 300 {
				n := pick(ss).Node
				mu.Lock()
				counts[n]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, s := range ss {
		if counts[s.Node] != 800 {
			t.Errorf("%v picked %d times, want 800", s.Node, counts[s.Node])
		}
	}
}

// rendezvousPicks lists, for keys k0..k999, the port Rendezvous picks among
// five instances.
func rendezvousPicks() string {
	ss := instances(5)
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "%d\n", Rendezvous(fmt.Sprint("k", i))(ss).Port)
	}
	return b.String()
}

// TestRendezvousHelperProcess is not a test: TestRendezvousAgrees runs it in a
// child process to compare picks across processes.
func TestRendezvousHelperProcess(t *testing.T) {
	if os.Getenv("DISCOVERY_RENDEZVOUS_HELPER") != "1" {
		t.Skip("helper process for TestRendezvousAgrees")
	}
	fmt.Print("PICKS\n" + rendezvousPicks())
}

func TestRendezvousAgrees(t *testing.T) {
	ss := instances(5)
	// Two selectors, and any order of the instances, give the same pick.
	for i := range 1000 {
		key := fmt.Sprint("k", i)
		shuffled := slices.Clone(ss)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if a, b := Rendezvous(key)(ss), Rendezvous(key)(shuffled); a.Node != b.Node {
			t.Fatalf("key %q: %v, then %v on shuffled instances", key, a.Node, b.Node)
		}
	}
	// Another process computes the same picks (no per-process seed).
	cmd := exec.Command(os.Args[0], "-test.run=^TestRendezvousHelperProcess$")
	cmd.Env = append(os.Environ(), "DISCOVERY_RENDEZVOUS_HELPER=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper process: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() && sc.Text() != "PICKS" {
	}
	var theirs strings.Builder
	for sc.Scan() && sc.Text() != "PASS" {
		theirs.WriteString(sc.Text() + "\n")
	}
	if mine := rendezvousPicks(); theirs.String() != mine {
		t.Fatalf("another process picked differently:\n%.200s\nthis one:\n%.200s", theirs.String(), mine)
	}
	// And every version of this package: fixed picks for fixed keys.
	for key, port := range map[string]uint32{"k0": 11, "user-42": 8} {
		if got := Rendezvous(key)(ss).Port; got != port {
			t.Errorf("key %q: port %d, want %d", key, got, port)
		}
	}
}

func TestRendezvousSpreads(t *testing.T) {
	ss := instances(5)
	counts := map[core.NodeID]int{}
	for i := range 10000 {
		counts[Rendezvous(fmt.Sprint("key-", i))(ss).Node]++
	}
	checkSpread(t, "rendezvous", counts, 10000)
}

func TestRendezvousStable(t *testing.T) {
	ss := instances(5)
	gone := ss[2]
	rest := slices.Delete(slices.Clone(ss), 2, 3)
	moved := 0
	for i := range 10000 {
		key := fmt.Sprint("key-", i)
		before, after := Rendezvous(key)(ss), Rendezvous(key)(rest)
		switch {
		case before.Node == gone.Node:
			moved++
			if after.Node == gone.Node {
				t.Fatalf("key %q still on the instance that left", key)
			}
		case after.Node != before.Node:
			t.Fatalf("key %q moved from %v to %v though its instance stayed", key, before.Node, after.Node)
		}
	}
	t.Logf("%d of 10000 keys moved when one of 5 instances left", moved)
}
