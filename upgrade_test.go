package astranet

import (
	"testing"
	"time"
)

// TestDirectUpgrade: a - r - b. With direct upgrade, a dial from a to b's
// service through r makes a join b directly; without it, a stays behind r.
func TestDirectUpgrade(t *testing.T) {
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "off", true: "on"}[on]
		t.Run(name, func(t *testing.T) {
			var opts []Option
			if on {
				opts = append(opts, WithDirectUpgrade())
			}
			m := newMesh(t, 3, opts...) // 0 = a, 1 = r, 2 = b
			m.link(0, 1, "tcp4")
			m.link(2, 1, "tcp4")
			if _, err := m.nodes[2].(*node).ListenAddr("tcp4", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			m.converge(10 * time.Second)
			m.serveEcho(2, "svc")
			a, b := m.nodes[0], m.nodes[2]
			c, err := a.DialTimeout("", "svc", 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			direct := func() bool {
				for _, r := range a.Routes() {
					if r.Host == b.ID() && r.Upstream == b.ID() {
						return true
					}
				}
				return false
			}
			deadline := time.Now().Add(5 * time.Second)
			for on && !direct() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if !on {
				time.Sleep(300 * time.Millisecond) // a join, had one started, completes in a few ms here
			}
			if direct() != on {
				t.Fatalf("direct link from a to b: %v, want %v; a's routes: %v", direct(), on, a.Routes())
			}
			echoHash(t, a, "svc", 64<<10)
		})
	}
}

// TestUpgraderDue: a peer is looked at most once per upgradeEvery, and the
// record of attempts holds only the last upgradeEvery's peers.
func TestUpgraderDue(t *testing.T) {
	var u upgrader
	t0 := time.Now()
	if !u.due(1, t0) || u.due(1, t0.Add(upgradeEvery/2)) {
		t.Fatal("peer 1: want one attempt per upgradeEvery")
	}
	for p := NodeID(2); p < 1000; p++ {
		u.due(p, t0)
	}
	later := t0.Add(upgradeEvery)
	if !u.due(1, later) {
		t.Fatal("peer 1 not due again after upgradeEvery")
	}
	if len(u.tried) != 1 {
		t.Fatalf("%d peers remembered after they all aged out, want 1", len(u.tried))
	}
	u.close()
	if u.due(5, later.Add(upgradeEvery)) {
		t.Fatal("an attempt after close")
	}
}
