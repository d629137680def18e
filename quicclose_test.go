package astranet

import (
	"net"
	"testing"
	"time"

	"github.com/astranet-go/astranet/transports/quic/losstest"
	"go.uber.org/goleak"
)

// Close stops every goroutine the node started (DESIGN.md principle 8),
// QUIC links to a peer that has become unreachable included: they used to
// linger, closing in the background, for MaxIdleTimeout (15 s).
func TestCloseStopsQUICLinks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	a, b, _, relay := quicViaRelay(t)
	relay.SetLoss(1) // the path to b goes dark (b crashed, cable pulled)
	b.Close()        // b's goroutines are not what we look at: close it first
	relay.Close()
	time.Sleep(200 * time.Millisecond)
	ignore2 := goleak.IgnoreCurrent() // b's leftovers, whatever they are

	began := time.Now()
	if err := a.Close(); err != nil {
		t.Logf("a.Close: %v", err)
	}
	t.Logf("a.Close took %v", time.Since(began))
	// goleak.Find retries for a while (about 1-2 s) before reporting.
	if err := goleak.Find(ignore, ignore2); err != nil {
		t.Errorf("goroutines still running %v after a.Close returned:\n%v", time.Since(began), err)
	}
}

// After Close, a node's QUIC listening port is free for a new node, as with
// tcp. The accepted links used to keep the UDP socket until their peer
// answered the close (about 100 ms here), or for MaxIdleTimeout (15 s) if it
// was unreachable.
func TestQUICPortFreeAfterClose(t *testing.T) {
	for _, dark := range []bool{false, true} {
		t.Run(map[bool]string{false: "healthy peer", true: "unreachable peer"}[dark], func(t *testing.T) {
			a, b, la, relay := quicViaRelay(t)
			defer a.Close()
			defer relay.Close()
			if dark {
				relay.SetLoss(1)
			}
			if err := b.Close(); err != nil {
				t.Logf("b.Close: %v", err)
			}
			b2 := New()
			defer b2.Close()
			if err := b2.ListenAndServe("quic", la.String()); err != nil {
				t.Errorf("re-listening on %s right after Close: %v", la, err)
			}
		})
	}
}

// quicViaRelay starts two nodes, b listening on QUIC, and links a to b
// through a relay that can drop every packet (the path going dark).
func quicViaRelay(t *testing.T) (a, b AstraNet, listen net.Addr, relay *losstest.Relay) {
	t.Helper()
	a, b = New(), New()
	listen, err := b.(*node).ListenAddr("quic", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	relay, err = losstest.NewRelay(listen.String(), losstest.RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Join("quic", relay.Addr()); err != nil {
		t.Fatal(err)
	}
	waitLinked(t, a, b)
	return a, b, listen, relay
}
