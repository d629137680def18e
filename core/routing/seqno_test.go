package routing

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core/wire"
	"github.com/hashicorp/go-hclog"
)

// linkCost saturates: a round trip past what a uint16 holds with the hop
// does not wrap round to a cost below one hop, and Verify refuses a
// MaxRTTCost that would reach Infinity.
func TestLinkCostSaturates(t *testing.T) {
	fast := linkCost(0, 0xFFFF)
	slow := linkCost(7*time.Second, 0xFFFF)
	if slow <= fast {
		t.Fatalf("a link with a 7 s round trip costs %d, a link with none costs %d", slow, fast)
	}
	if err := (Options{MaxRTTCost: Infinity - HopCost}).Verify(); err == nil {
		t.Fatalf("Verify accepts MaxRTTCost %d", Infinity-HopCost)
	}
	if err := (Options{MaxRTTCost: Infinity - HopCost - 1}).Verify(); err != nil {
		t.Fatal(err)
	}
}

// A node restarts with the same id and a random seqno that happens to lie
// half the ring (2^15) from what the others remember. Its updates are then
// unfeasible, and their seqno request (fd+1) is not "newer" than its seqno,
// so it never raises it. The feasibility distance used to be collected only
// once no route was heard, which never happened: the node stayed unreachable
// for ever. Now a destination starved for SourceGC forgets it.
func TestSeqnoHalfRingRecovers(t *testing.T) {
	tn := lineNet(t, Options{HoldDown: 2 * testInterval, SourceGC: 4 * testInterval})

	tn.cut(1, 2)
	tn.restart(2)
	// What node 1 remembers of node 2's seqno.
	r1 := tn.routing[1]
	r1.mu.Lock()
	fd := r1.dests[3].fd.seqno
	r1.mu.Unlock()
	// The restarted node's random seqno, drawn as 2^15 away from it (one draw in
	// 32768 does this; here it is forced).
	r2 := tn.routing[2]
	r2.mu.Lock()
	r2.seqno = fd + 0x8000
	r2.mu.Unlock()
	tn.link(1, 2)

	deadline := time.Now().Add(40 * testInterval) // 10 x SourceGC
	for time.Now().Before(deadline) {
		if tn.snapshot().allPairs() == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	r1.mu.Lock()
	d := r1.dests[3]
	msg := fmt.Sprintf("fd=%+v routes=%d selected=%v own2=%d", d.fd, len(d.routes), d.selected != nil, fd+0x8000)
	r1.mu.Unlock()
	t.Fatalf("node 2 still unreachable %v after relinking (SourceGC %v): %v; %s",
		40*testInterval, 4*testInterval, tn.snapshot().allPairs(), msg)
}

// With RequestHops 1 a router does not pass a seqno request on: the hop
// count it would pass on is 0, which receivers drop as malformed. It used to
// send it anyway (min(hops, RequestHops) - 1).
func TestRequestHopsOneForwardsNothing(t *testing.T) {
	// The nodes log to a file: its writes are safe from many goroutines.
	logs, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	tn := lineNet(t, Options{RequestHops: 1, Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})})
	far := tn.nodes[2].ID()
	r1 := tn.routing[1]
	r1.mu.Lock()
	seq := r1.dests[far].selSeqno
	r1.mu.Unlock()
	// Node 0 asks node 1, with a generous hop count, for a seqno of node 2
	// newer than node 1's route has.
	to := tn.linkTo(0, 1)
	if err := tn.nodes[0].Send(to.ID, wire.KindRouting, appendRequest(nil, request{Dst: far, Seqno: seq + 10, Hops: 16})); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * testInterval)
	got, err := os.ReadFile(logs.Name())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte("hop count 0")) {
		t.Fatalf("a request with hop count 0 went out:\n%s", got)
	}
}
