package astranet

import (
	"testing"
	"time"
)

// TestSelectorsAndMetadata: three instances of one name; each selector picked
// by Dial's network behaves as documented, and metadata reaches other nodes.
func TestSelectorsAndMetadata(t *testing.T) {
	// 0 and 1 are clients; 2, 3, 4 serve "multi". 0 links to 2 directly, and
	// to 3 and 4 only through 1.
	m := newMesh(t, 5)
	m.link(0, 1, "pipe")
	m.link(0, 2, "pipe")
	m.link(1, 3, "pipe")
	m.link(1, 4, "pipe")
	m.converge(10 * time.Second)
	for i := 2; i <= 4; i++ {
		l, err := m.nodes[i].BindMeta("", "multi", map[string]string{"zone": "z" + string(rune('0'+i))})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		t.Cleanup(func() { l.Close() })
	}
	for _, c := range m.nodes[:2] {
		deadline := time.Now().Add(10 * time.Second)
		for len(c.ServiceMap().Lookup("multi")) < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("instances seen: %v", c.ServiceMap().Lookup("multi"))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, id := range m.nodes[0].ServiceMap().Lookup("multi") {
		if id.Metadata["zone"] == "" {
			t.Fatalf("instance %v arrived without its metadata", id)
		}
	}
	host := func(client AstraNet, network string) NodeID {
		t.Helper()
		c, err := client.DialTimeout(network, "multi", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		id, _ := ParseNodeID(c.RemoteAddr().String()[:16])
		return id
	}
	seen := map[NodeID]int{}
	for range 6 {
		seen[host(m.nodes[0], "roundrobin")]++
	}
	if len(seen) != 3 {
		t.Fatalf("roundrobin over 6 dials reached %v, want each of 3 instances twice", seen)
	}
	for range 5 {
		if got := host(m.nodes[0], "nearest"); got != m.nodes[2].ID() {
			t.Fatalf("nearest reached %v, want the direct neighbour %v", got, m.nodes[2].ID())
		}
	}
	for _, key := range []string{"registry://alice", "registry://bob", "registry://carol"} {
		a, b := host(m.nodes[0], key), host(m.nodes[1], key)
		if a != b {
			t.Fatalf("%s: nodes 0 and 1 reached different instances (%v, %v)", key, a, b)
		}
	}
}
