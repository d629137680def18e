package astranet

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// mesh builds nodes and links between them; links made with cut-able pipes
// can be killed by the test.
type mesh struct {
	t     *testing.T
	nodes []AstraNet
	cuts  map[[2]int]func()
}

func newMesh(t *testing.T, n int, opts ...Option) *mesh {
	m := &mesh{t: t, cuts: map[[2]int]func(){}}
	for range n {
		node := New(opts...)
		m.nodes = append(m.nodes, node)
		t.Cleanup(func() { node.Close() })
	}
	return m
}

// link joins nodes i and j over network ("attach" makes a pipe the test can cut).
func (m *mesh) link(i, j int, network string) {
	m.t.Helper()
	a, b := m.nodes[i], m.nodes[j]
	switch network {
	case "attach":
		c1, c2 := net.Pipe()
		go a.Attach(c1)
		go b.Attach(c2)
		m.cuts[[2]int{i, j}] = func() { c1.Close() }
	default:
		addr := "127.0.0.1:0"
		if network == "pipe" {
			addr = fmt.Sprintf("mesh-%d", pipeSeq.Add(1))
		}
		la, err := b.(*node).ListenAddr(network, addr)
		if err != nil {
			m.t.Fatal(err)
		}
		if err := a.Join(network, la.String()); err != nil {
			m.t.Fatal(err)
		}
	}
}

// converge waits until every node has a route to every other.
func (m *mesh) converge(d time.Duration) time.Duration {
	m.t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		ok := true
		for _, n := range m.nodes {
			if len(n.Routes()) < len(m.nodes)-1 {
				ok = false
				break
			}
		}
		if ok {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.t.Fatalf("routes did not converge within %v", d)
	return 0
}

// serveEcho binds name on node i and echoes every stream.
func (m *mesh) serveEcho(i int, name string) net.Listener {
	m.t.Helper()
	l, err := m.nodes[i].Bind("", name)
	if err != nil {
		m.t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	m.t.Cleanup(func() { l.Close() })
	return l
}

// echoHash sends size random bytes through the echo at name and checks the
// SHA-256 of what comes back.
func echoHash(t *testing.T, from AstraNet, name string, size int) {
	t.Helper()
	c, err := from.DialTimeout("", name, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, size)
	rand.Read(msg)
	go func() {
		c.Write(msg)
		c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil || n != int64(size) {
		t.Fatalf("echo: %d of %d bytes, %v", n, size, err)
	}
	want := sha256.Sum256(msg)
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("echo through the mesh: SHA-256 differs")
	}
}

func TestLineOfFive(t *testing.T) {
	for _, network := range []string{"pipe", "tcp4", "quic"} {
		t.Run(network, func(t *testing.T) {
			m := newMesh(t, 5)
			for i := range 4 {
				m.link(i, i+1, network)
			}
			t.Logf("routes converged in %v", m.converge(10*time.Second))
			m.serveEcho(4, "far")
			echoHash(t, m.nodes[0], "far", 1<<20)
			if c, err := m.nodes[0].Dial("", m.nodes[4].ID().String()+":9"); !errors.Is(err, ErrRefused) {
				t.Fatalf("unbound port four hops away: %v %v, want ErrRefused", c, err)
			}
		})
	}
}

func TestMixedTCPAndQUIC(t *testing.T) {
	m := newMesh(t, 4)
	m.link(0, 1, "tcp4")
	m.link(1, 2, "quic")
	m.link(2, 3, "tcp4")
	m.converge(10 * time.Second)
	m.serveEcho(3, "mixed")
	echoHash(t, m.nodes[0], "mixed", 1<<20)
}

// TestRingCut: a ring of 8; cut a link on the path in use; new dials take the
// other way round.
func TestRingCut(t *testing.T) {
	m := newMesh(t, 8)
	for i := range 8 {
		m.link(i, (i+1)%8, "attach")
	}
	t.Logf("ring converged in %v", m.converge(10*time.Second))
	m.serveEcho(2, "ring")
	echoHash(t, m.nodes[0], "ring", 64<<10)
	m.cuts[[2]int{1, 2}]() // 0 -> 1 -> 2 is the short way
	start := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := m.nodes[0].DialTimeout("", "ring", time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dial across the cut ring within 10 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("dials work again %v after the cut", time.Since(start))
	echoHash(t, m.nodes[0], "ring", 64<<10)
	for _, r := range m.nodes[0].Routes() {
		if r.Host == m.nodes[2].ID() && r.Upstream == m.nodes[1].ID() {
			t.Fatalf("route to node 2 still through node 1 after the cut: %v", r)
		}
	}
}

// TestParallelRouterDies: a - r1 - b and a - r2 - b. The router carrying a
// transfer dies: the stream fails at both ends, new dials succeed.
func TestParallelRouterDies(t *testing.T) {
	m := newMesh(t, 4) // 0 = a, 1 = r1, 2 = r2, 3 = b
	m.link(0, 1, "tcp4")
	m.link(1, 3, "tcp4")
	m.link(0, 2, "tcp4")
	m.link(2, 3, "tcp4")
	m.converge(10 * time.Second)
	l := m.serveEcho(3, "b")
	_ = l
	c, err := m.nodes[0].DialTimeout("", "b", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var via int
	for _, r := range m.nodes[0].Routes() {
		if r.Host == m.nodes[3].ID() {
			for i := 1; i <= 2; i++ {
				if r.Upstream == m.nodes[i].ID() {
					via = i
				}
			}
		}
	}
	if via == 0 {
		t.Fatal("no route from a to b through a router")
	}
	// Mid-transfer: bytes are flowing when the router dies.
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 32<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				errc <- err
				return
			}
			if _, err := io.ReadFull(c, buf); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	m.nodes[via].Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrLinkLost) && !errors.Is(err, ErrReset) {
			t.Fatalf("stream through the dead router: %v, want a link-lost failure", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream through the dead router still running 5 s later")
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := m.nodes[0].DialTimeout("", "b", time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dial through the surviving router: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	echoHash(t, m.nodes[0], "b", 256<<10)
}

// TestEnvIsolationAcrossRouter: prod and staging share a router; each sees
// only its own environment's instance of a name.
func TestEnvIsolationAcrossRouter(t *testing.T) {
	m := newMesh(t, 1)
	router := m.nodes[0]
	prodSrv, stagingSrv, prodCli := New().WithEnv("prod"), New().WithEnv("staging"), New().WithEnv("prod")
	m.nodes = append(m.nodes, prodSrv, stagingSrv, prodCli)
	for _, n := range m.nodes[1:] {
		t.Cleanup(func() { n.Close() })
	}
	for i := 1; i <= 3; i++ {
		m.link(i, 0, "pipe")
	}
	m.converge(10 * time.Second)
	m.serveEcho(2, "svc") // staging
	if _, err := prodCli.DialTimeout("", "svc", 500*time.Millisecond); !errors.Is(err, ErrNoService) {
		t.Fatalf("prod client reached staging's svc: %v", err)
	}
	m.serveEcho(1, "svc") // prod
	c, err := prodCli.DialTimeout("", "svc", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.RemoteAddr().(interface{ String() string }).String(); got[:16] != prodSrv.ID().String() {
		t.Fatalf("prod client reached %s, want the prod server %v", got, prodSrv.ID())
	}
	c.Close()
	_ = router
}
