package plugins_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/hashicorp/go-hclog"
)

// pair is two nodes joined by an in-memory link; b serves "echo".
type pair struct {
	a, b *core.Node
	ln   *core.Listener
	wg   sync.WaitGroup
}

// newPair builds b (with bDisc) and its echo listener, then a with the
// discovery makeA returns once it knows where echo is.
func newPair(tb testing.TB, bDisc core.Discovery, makeA func(echo core.Service) core.Discovery) *pair {
	tb.Helper()
	p := &pair{}
	var err error
	if p.b, err = core.New(core.Options{Config: quiet(), Discovery: bDisc}); err != nil {
		tb.Fatal(err)
	}
	if p.ln, err = p.b.Bind(0, "echo"); err != nil {
		tb.Fatal(err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	echo := core.Service{Name: "echo", Node: p.b.ID(), Port: p.ln.Addr().(core.Addr).Port}
	if p.a, err = core.New(core.Options{Config: quiet(), Discovery: makeA(echo)}); err != nil {
		tb.Fatal(err)
	}
	x, y := net.Pipe()
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.a.Attach(x) }()
	go func() { defer p.wg.Done(); p.b.Attach(y) }()
	return p
}

func (p *pair) close() {
	p.a.Close()
	p.b.Close()
	p.wg.Wait()
}

func quiet() core.Config {
	c := core.DefaultConfig()
	c.Logger = hclog.NewNullLogger()
	return c
}

// writeServices writes a file for the file plugin.
func writeServices(tb testing.TB, path string, ss ...core.Service) {
	tb.Helper()
	type entry struct {
		Name string `json:"name"`
		Node string `json:"node"`
		Port uint32 `json:"port"`
	}
	var f struct {
		Services []entry `json:"services"`
	}
	for _, s := range ss {
		f.Services = append(f.Services, entry{s.Name, s.Node.String(), s.Port})
	}
	b, _ := json.Marshal(f)
	tmp := filepath.Join(filepath.Dir(path), ".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}

func hasService(n *core.Node, name string, node core.NodeID) bool {
	for _, s := range n.Services() {
		if s.Name == name && (node == 0 || s.Node == node) {
			return true
		}
	}
	return false
}

func waitUntil(tb testing.TB, what string, d time.Duration, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func dialEcho(ctx context.Context, n *core.Node) error {
	s, err := n.Dial(ctx, core.Target{Service: "echo"})
	if err != nil {
		return err
	}
	_, err = io.ReadAll(s)
	s.Close()
	return err
}
