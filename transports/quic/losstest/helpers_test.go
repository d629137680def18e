package losstest

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/transports/quic"
	"go.uber.org/goleak"
)

// pair is two nodes, b listening on QUIC behind a relay that a joins through.
type pair struct {
	a, b  *core.Node
	relay *Relay
	wg    sync.WaitGroup // the servers' goroutines
}

// newPair starts b listening on QUIC and a relay in front of it; a has not
// joined yet. The nodes use the quic transport of this module, or what
// transport returns if it is not nil. Cleanup closes the nodes (and the
// transports, if they are io.Closers) while the relay, now lossless, still
// carries their closing packets, waits for the QUIC goroutines to end, then
// closes the relay.
func newPair(t testing.TB, cfg core.Config, rc RelayConfig, transport func() core.Transport) *pair {
	t.Helper()
	before := goleak.IgnoreCurrent()
	if transport == nil {
		transport = func() core.Transport { return quic.New() }
	}
	trA, trB := transport(), transport()
	p := &pair{a: newNode(t, cfg, trA), b: newNode(t, cfg, trB)}
	addr, err := p.b.ListenAndServe("quic", "127.0.0.1:0")
	if err != nil {
		p.a.Close()
		p.b.Close()
		t.Fatalf("ListenAndServe: %v", err)
	}
	p.relay, err = NewRelay(addr.String(), rc)
	if err != nil {
		p.a.Close()
		p.b.Close()
		t.Fatalf("NewRelay: %v", err)
	}
	t.Cleanup(func() {
		p.relay.SetLoss(0)
		p.a.Close()
		p.b.Close()
		p.wg.Wait()
		for _, tr := range []core.Transport{trA, trB} {
			if c, ok := tr.(io.Closer); ok {
				c.Close()
			}
		}
		settle(t, 5*time.Second, before,
			goleak.IgnoreAnyFunction("github.com/astranet-go/astranet/transports/quic/losstest.(*Relay).readClients"),
			goleak.IgnoreAnyFunction("github.com/astranet-go/astranet/transports/quic/losstest.(*Relay).readTarget"),
			goleak.IgnoreAnyFunction("github.com/astranet-go/astranet/transports/quic/losstest.(*Relay).deliver"),
		)
		p.relay.Close()
	})
	return p
}

func newNode(t testing.TB, cfg core.Config, tr core.Transport) *core.Node {
	t.Helper()
	n, err := core.New(core.Options{
		Config:     cfg,
		Transports: map[string]core.Transport{"quic": tr},
	})
	if err != nil {
		t.Fatalf("core.New: %v", err)
	}
	return n
}

// settle waits, at most limit, until no goroutine but those opts ignore is
// left, so that QUIC connections finish closing while the relay still runs.
// What is left after limit is goleak's to report at the end.
func settle(t testing.TB, limit time.Duration, opts ...goleak.Option) {
	t.Helper()
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		if goleak.Find(opts...) == nil {
			return
		}
	}
	t.Logf("goroutines still running %v after closing the nodes", limit)
}

// join adds lanes links from a to b through the relay.
func (p *pair) join(t testing.TB, lanes int) {
	t.Helper()
	for i := range lanes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := p.a.Join(ctx, "quic", p.relay.Addr())
		cancel()
		if err != nil {
			t.Fatalf("Join %d: %v", i, err)
		}
	}
}

// serve binds port on b and runs handle on every accepted stream, closing it
// afterwards. The goroutines end when b closes.
func (p *pair) serve(t testing.TB, port uint32, handle func(net.Conn)) {
	t.Helper()
	ln, err := p.b.Bind(port, "")
	if err != nil {
		t.Fatalf("Bind %d: %v", port, err)
	}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
}

// dial opens a stream from a to port on b.
func (p *pair) dial(t testing.TB, port uint32) *core.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := p.a.Dial(ctx, core.Target{Node: p.b.ID(), Port: port})
	if err != nil {
		t.Fatalf("Dial %d: %v", port, err)
	}
	return s
}

func echo(c net.Conn) { io.Copy(c, c) }

// pingPong sends msg on s and reads it back.
func pingPong(s net.Conn, msg []byte) error {
	if _, err := s.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil {
		return err
	}
	if string(got) != string(msg) {
		return errors.New("echo came back different")
	}
	return nil
}
