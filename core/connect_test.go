package core

import (
	"context"
	"testing"
	"time"
)

// TestConnectDoesNotRedial: a link made with Connect is served until it
// ends and then left down, while Join's comes back when the peer returns at
// the same address.
func TestConnectDoesNotRedial(t *testing.T) {
	for _, join := range []bool{false, true} {
		name := map[bool]string{false: "connect", true: "join"}[join]
		t.Run(name, func(t *testing.T) {
			a := newNode(t, testConfig())
			b := newNode(t, testConfig())
			addr, err := b.ListenAndServe("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			dial := a.Connect
			if join {
				dial = a.Join
			}
			if err := dial(context.Background(), "tcp", addr.String()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "link up", func() bool { return len(a.Links()) == 1 })
			b.Close()
			waitFor(t, 5*time.Second, "link down", func() bool { return len(a.Links()) == 0 })
			b2 := newNode(t, testConfig())
			if _, err := b2.ListenAndServe("tcp", addr.String()); err != nil {
				t.Skipf("cannot listen on %v again: %v", addr, err)
			}
			// Join re-dials after 50-150 ms at first; give it ample time.
			time.Sleep(time.Second)
			if got, want := len(a.Links()), map[bool]int{false: 0, true: 1}[join]; got != want {
				t.Fatalf("%d links after the peer came back, want %d", got, want)
			}
		})
	}
}
