package astranet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/transports/pipe"
)

func TestTargetParsing(t *testing.T) {
	n := New().WithEnv("prod").(*node)
	for _, tc := range []struct {
		network, hp string
		want        string // Target.String(), or the error text
		hashed      bool
	}{
		{"", "0123456789abcdef:7", "0123456789abcdef:7", false},
		{"", "echo", "echo.prod", false},
		{"", "echo:9", "echo.prod:9", false},
		{"tcp", "echo", "echo.prod", false},
		{"registry://users", "echo", "echo.prod", true},
		{"vport2registry", "echo:9", "echo.prod:9", true},
		{"", "0123456789abcdef", "a node id needs a port", false},
		{"", "0000000000000000:7", "not all zero", false},
		{"", ":7", "names no node and no service", false},
		{"", "echo:x", `port "x" is not a number`, false},
		{"", "echo:0", `port "0" is not a number`, false},
	} {
		got, err := n.target(tc.network, tc.hp)
		s := got.String()
		if err != nil {
			s = err.Error()
		}
		if !strings.Contains(s, tc.want) || (tc.hashed != (got.Pick != nil)) {
			t.Errorf("target(%q, %q) = %q (hashed %v), want %q (hashed %v)", tc.network, tc.hp, s, got.Pick != nil, tc.want, tc.hashed)
		}
	}
}

// TestTargetRefusesBadNames: a dial address whose service name (with the
// environment) the wire would refuse fails as a bad address, naming the
// address and what is wrong with the name, not as a bind.
func TestTargetRefusesBadNames(t *testing.T) {
	n := New(WithRouting(nil), WithDiscovery(nil)).WithEnv("prod").(*node)
	defer n.Close()
	for _, tc := range []struct{ hp, want string }{
		{"has space:7", `service name "has space.prod": byte 0x20 not allowed`},
		{"a:b:7", `service name "a:b.prod": byte 0x3a not allowed`},
		{" ", `service name " .prod": byte 0x20 not allowed`},
		{strings.Repeat("n", 251), "service name of 256 bytes exceeds 255"},
	} {
		if got, err := n.target("", tc.hp); err == nil {
			t.Errorf("target(%q) = %v, want an error", tc.hp, got)
		}
		_, err := n.Dial("", tc.hp)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("address %q: ", tc.hp)) ||
			!strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "bind") {
			t.Errorf("Dial(%q): %v; want the address and %q", tc.hp, err, tc.want)
		}
	}
}

func TestBindForms(t *testing.T) {
	n := New().WithEnv("a", "b")
	defer n.Close()
	for _, tc := range []struct {
		hp, want string
	}{
		{":7", ":7"},
		{"echo", "echo.a.b"},
		{"web:8080", "web.a.b"},
	} {
		l, err := n.Bind("", tc.hp)
		if err != nil {
			t.Fatalf("Bind(%q): %v", tc.hp, err)
		}
		if got := l.Addr().String(); !strings.Contains(got, strings.TrimPrefix(tc.want, ":")) && !strings.Contains(tc.want, ".") {
			t.Errorf("Bind(%q) addr %s", tc.hp, got)
		}
	}
	for _, hp := range []string{"", "0123456789abcdef", "x:y", "echo"} {
		if _, err := n.Bind("", hp); err == nil {
			t.Errorf("Bind(%q) succeeded, want an error", hp)
		}
	}
	var names []string
	for _, s := range n.Services() {
		names = append(names, s.Service)
	}
	if got := strings.Join(names, ","); got != ",echo.a.b,web.a.b" {
		t.Errorf("services %q, want the port-only listener, echo.a.b and web.a.b", got)
	}
}

// TestEnvScopesNames: the environment suffix is part of the name on the wire,
// so a client in env prod does not reach a service bound outside prod.
func TestEnvScopesNames(t *testing.T) {
	a, b := pair(t, "pipe")
	if _, err := b.Bind("", "svc"); err != nil {
		t.Fatal(err)
	}
	client := a.(*node)
	client.s.env = ".prod"
	if _, err := client.DialTimeout("", "svc", time.Second); !errors.Is(err, ErrNoService) {
		t.Fatalf("prod client dialled a service bound outside prod: %v", err)
	}
	client.s.env = ""
	c, err := client.DialTimeout("", "svc", time.Second)
	if err != nil {
		t.Fatalf("unscoped dial: %v", err)
	}
	c.Close()
}

func TestRegistryWatch(t *testing.T) {
	a, b := pair(t, "pipe")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := b.ServiceMap().Watch(ctx)
	first := <-w
	if len(first) != 0 {
		t.Fatalf("first snapshot %v, want empty", first)
	}
	l, err := b.Bind("", "watched")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-w:
		if len(got) != 1 || got[0].Service != "watched" || got[0].Host != b.ID() {
			t.Fatalf("after Bind: %v", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no snapshot after Bind")
	}
	l.Close()
	select {
	case got := <-w:
		if len(got) != 0 {
			t.Fatalf("after Close: %v", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no snapshot after the listener closed")
	}
	routes := a.RoutesMap().Snapshot()
	if len(routes) != 1 || routes[0].Host != b.ID() || routes[0].Upstream != b.ID() {
		t.Fatalf("routes of a: %v, want b as a direct neighbour", routes)
	}
	cancel()
	for range w { // closes once ctx ends
	}
}

func TestDiscoverTimeout(t *testing.T) {
	n := New()
	defer n.Close()
	start := time.Now()
	if _, err := n.ServiceMap().DiscoverTimeout("late", 50*time.Millisecond); !errors.Is(err, ErrNoService) {
		t.Fatalf("DiscoverTimeout of a missing name: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("DiscoverTimeout(50ms) returned after %v", d)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		n.Bind("", "late")
	}()
	got, err := n.ServiceMap().DiscoverTimeout("late", 5*time.Second)
	if err != nil || len(got) != 1 {
		t.Fatalf("DiscoverTimeout: %v %v", got, err)
	}
}

func TestHTTPOverStreams(t *testing.T) {
	a, b := pair(t, "tcp4")
	l, err := b.Bind("", "hello")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hi from "+r.URL.Path)
	})}
	go srv.Serve(l)
	defer srv.Close()
	// HttpDial drops http.Transport's ":80" and dials the service by name.
	c, err := a.HttpDial("tcp", "hello:80")
	if err != nil {
		t.Fatalf("HttpDial: %v", err)
	}
	c.Close()
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return a.DialContext(ctx, "", strings.TrimSuffix(addr, ":80"))
		},
	}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://hello/path")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hi from /path" {
		t.Fatalf("body %q", body)
	}
}

func TestLoopBackNode(t *testing.T) {
	n := New().WithLoopBack()
	defer n.Close()
	l, err := n.Bind("", "self")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	c, err := n.DialTimeout("", "self", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("me"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "me" {
		t.Fatalf("loopback echo %q %v", buf, err)
	}
	c.Close()
}

// A node without loopback (WithLoopBack) that dials a name only it serves
// waits for the name, as for any name, but its error says why it never came:
// a new user's first test (one node, Bind, Dial) must not read as a missing
// service.
func TestDialOwnNameWithoutLoopBackSaysSo(t *testing.T) {
	n := New()
	defer n.Close()
	if _, err := n.Bind("", "self"); err != nil {
		t.Fatal(err)
	}
	_, err := n.DialTimeout("", "self", 200*time.Millisecond)
	if !errors.Is(err, ErrNoService) || !strings.Contains(err.Error(), "needs loopback") {
		t.Fatalf("dial of a name bound only on this node: %v; want ErrNoService, saying that it needs loopback", err)
	}
}

// TestFailedDialReturnsNilConn: a failed dial's net.Conn is nil, not a nil
// *core.Stream inside a non-nil interface.
func TestFailedDialReturnsNilConn(t *testing.T) {
	n := New()
	defer n.Close()
	c, err := n.DialTimeout("", "0123456789abcdef:7", time.Second)
	if err == nil || c != nil {
		t.Fatalf("dial to an unknown node: conn %#v, err %v; want a nil conn and an error", c, err)
	}
	n.Bind("", ":7")
	l, err := n.Bind("", ":7")
	if err == nil || l != nil {
		t.Fatalf("second bind of a port: listener %#v, err %v; want a nil listener and an error", l, err)
	}
}

// TestCloseEndsDialWaitingForName: a dial by a name discovery does not know
// waits for it, bounded only by its context; the node's Close must end it.
func TestCloseEndsDialWaitingForName(t *testing.T) {
	n := New()
	defer n.Close()
	n.ID() // start the engine
	done := make(chan error, 1)
	go func() {
		_, err := n.DialContext(context.Background(), "", "nobody")
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	n.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("dial on a closing node: %v, want %v", err, ErrClosed)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("dial still waiting for the name 3 s after Close")
	}
	if _, err := n.DialContext(context.Background(), "", "nobody"); !errors.Is(err, ErrClosed) {
		t.Fatalf("dial on a closed node: %v, want %v", err, ErrClosed)
	}
}

// TestHttpDialNodePort80: http.Transport hands HttpDial "<node-id>:80" for
// http://<node-id>/; port 80 of that node is what it means, and a node id
// without a port is not an address.
func TestHttpDialNodePort80(t *testing.T) {
	a, b := pair(t, "tcp4")
	l, err := b.Bind("", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := a.HttpDial("tcp", b.ID().String()+":80")
	if err != nil {
		t.Fatalf("HttpDial to port 80 of a node: %v", err)
	}
	defer c.Close()
	if got := c.RemoteAddr().(core.Addr); got.Node != b.ID() || got.Port != 80 {
		t.Fatalf("HttpDial reached %v, want %v:80", got, b.ID())
	}
}

// TestCloseDuringJoinDial: Close does not leave a Join waiting out its
// transport's dial; here a pipe listener whose backlog is full holds it.
func TestCloseDuringJoinDial(t *testing.T) {
	tr := pipe.New()
	name := fmt.Sprintf("full-%d", pipeSeq.Add(1))
	ln, err := tr.Listen(context.Background(), "pipe", name) // never accepts
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for range 1000 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		c, err := tr.Dial(ctx, "pipe", name)
		cancel()
		if err != nil {
			break // the backlog is full
		}
		defer c.Close()
	}
	n := New()
	defer n.Close()
	n.ID() // start the engine
	joined := make(chan error, 1)
	go func() { joined <- n.Join("pipe", name) }()
	time.Sleep(100 * time.Millisecond)
	n.Close()
	select {
	case err := <-joined:
		if err == nil {
			t.Fatal("Join succeeded on a closed node")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Join still dialling 2 s after Close")
	}
}

// A dial by a name that does not appear before the deadline fails with
// ErrNoService and, as a dial that times out waiting for ACCEPT, is a
// net.Error whose Timeout is true, so that retry-on-timeout code treats the
// two alike.
func TestNameWaitTimeoutIsTimeout(t *testing.T) {
	n := New()
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := n.DialContext(ctx, "", "nobody")
	var ne net.Error
	if !errors.Is(err, ErrNoService) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial by a name that never appears: %v; want ErrNoService and context.DeadlineExceeded, with Timeout() true", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = n.DialContext(ctx, "", "nobody")
	if !errors.Is(err, ErrNoService) || !errors.Is(err, context.Canceled) || !errors.As(err, &ne) || ne.Timeout() {
		t.Fatalf("dial by a name with a cancelled context: %v; want ErrNoService and context.Canceled, not a timeout", err)
	}
}

// Start reports why the engine cannot start, before any other call would.
func TestStartReportsEngineError(t *testing.T) {
	good := New()
	defer good.Close()
	if err := good.(*node).Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	bad := New(WithConfig(func(c *core.Config) { c.MaxFrame = 1 }))
	defer bad.Close()
	if err := bad.(*node).Start(); err == nil || !strings.Contains(err.Error(), "MaxFrame") {
		t.Fatalf("Start with a bad config: %v, want the config's error", err)
	}
}
