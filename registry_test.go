package astranet

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/plugins"
)

// TestSameEntryMetadata: Watch reports a change that touches only an
// instance's metadata, and ignores only Updated.
func TestSameEntryMetadata(t *testing.T) {
	a := ServiceId{Service: "svc", Host: 1, Port: 7, Metadata: map[string]string{"v": "1"}}
	b := a
	b.Metadata = map[string]string{"v": "2"}
	if sameEntry(a, b) {
		t.Error("entries that differ in metadata count as the same")
	}
	c := a
	c.Metadata = map[string]string{"v": "1"}
	if !sameEntry(a, c) {
		t.Error("equal entries count as different")
	}
}

// TestCloseUnusedNodeStartsNothing: closing a node that was never used does
// not start its engine (here, a discovery plugin whose binary does not
// exist), and the node stays closed.
func TestCloseUnusedNodeStartsNothing(t *testing.T) {
	n := New(WithDiscoveryPlugin(plugins.DefaultConfig("/nonexistent/astranet-plugin")))
	if err := n.Close(); err != nil {
		t.Fatalf("Close of an unused node: %v (did it start the plugin?)", err)
	}
	if _, err := n.DialTimeout("", "svc", time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Close: %v, want ErrClosed", err)
	}
}

// TestDialErrorIsOpErrorBeforeStart: a dial that fails because the node
// cannot start, or was closed before its first use, returns a *net.OpError
// as every other dial error does.
func TestDialErrorIsOpErrorBeforeStart(t *testing.T) {
	closed := New()
	closed.Close()
	broken := New(WithConfig(func(c *core.Config) { c.StreamWindow = 0 }))
	defer broken.Close()
	for name, n := range map[string]AstraNet{"closed": closed, "broken": broken} {
		_, err := n.DialTimeout("", "svc", time.Second)
		var op *net.OpError
		if !errors.As(err, &op) {
			t.Errorf("Dial on a %s node: %v (%T), want a *net.OpError", name, err, err)
		}
	}
	if _, err := closed.DialTimeout("", "svc", time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Dial on a closed node: %v, want ErrClosed", err)
	}
}
