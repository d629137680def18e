package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet"
	"go.uber.org/goleak"
)

// cmdArgsEnv, when set, makes this test binary the command itself, run with
// the arguments it holds: for tests that need the command as a process.
const cmdArgsEnv = "ASTRANET_TEST_CMD_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(cmdArgsEnv); ok {
		os.Exit(run(strings.Fields(args), os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer that a command may write while a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits up to 10 s for pattern to appear and returns its first
// group (or the whole match).
func (s *syncBuffer) waitFor(t *testing.T, pattern string) string {
	t.Helper()
	re := regexp.MustCompile(pattern)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if m := re.FindStringSubmatch(s.String()); m != nil {
			return m[len(m)-1]
		}
	}
	t.Fatalf("no %q in the output within 10 s:\n%s", pattern, s)
	return ""
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // in stdout+stderr
	}{
		{nil, 2, "Commands:"},
		{[]string{"help"}, 0, "Commands:"},
		{[]string{"-h"}, 0, "Commands:"},
		{[]string{"--help"}, 0, "Commands:"},
		{[]string{"help", "demo"}, 0, "-streams"},
		{[]string{"help", "nope"}, 2, `unknown command "nope"`},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"demo", "-h"}, 0, "-network"},
		{[]string{"bench", "-h"}, 0, "-quick"},
		{[]string{"node", "-h"}, 0, "-forward"},
		{[]string{"demo", "-network", "carrier-pigeon"}, 2, "want pipe, tcp4 or quic"},
		{[]string{"demo", "-no-such-flag"}, 2, "flag provided but not defined"},
		{[]string{"demo", "stray"}, 2, `unexpected argument "stray"`},
		{[]string{"node"}, 2, "at least one -listen or -join"},
		{[]string{"node", "-listen", "smoke://:1"}, 2, `unknown network "smoke"`},
		{[]string{"node", "-listen", "tcp4://127.0.0.1:0", "-expose", "noequals"}, 2, "want name=host:port"},
		{[]string{"node", "-listen", "tcp4://127.0.0.1:0", "-expose", "web=nohost"}, 2, `-expose "nohost": want host:port`},
		{[]string{"node", "-listen", "tcp4://127.0.0.1:0", "-expose", "web=localhost:"}, 2, `-expose "localhost:": no port`},
		{[]string{"node", "-join", "tcp4://127.0.0.1:1", "-forward", "9000=web"}, 2, `-forward "9000": want host:port`},
		{[]string{"node", "-listen", "pipe://hub"}, 2, `unknown network "pipe" (want one of tcp, tcp4, tcp6, quic)`},
		{[]string{"node", "-join", "tcp4://127.0.0.1:1", "-discovery-opt", "path=x"}, 2, "-discovery-opt without -discovery-plugin"},
		{[]string{"node", "-listen", "tcp4://127.0.0.1:0", "-discovery-plugin", "/nonexistent/plugin"}, 1, "astranet node: starting the node: astranet: discovery:"},
		{[]string{"node", "-join", "tcp4://127.0.0.1:1", "-routing-plugin", "/nonexistent", "-routing-opt", "novalue"}, 2, `-routing-opt "novalue": want key=value`},
		{[]string{"node", "-join", "tcp4://127.0.0.1:1", "-routing-plugin", "/nonexistent", "-routing-opt", "a=1", "-routing-opt", "a=2"}, 2, `"a" given twice`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			if code := run(tc.args, &out, &out); code != tc.code || !strings.Contains(out.String(), tc.want) ||
				code == 0 && strings.Contains(out.String(), "unknown command") {
				t.Errorf("exit %d, want %d; want %q in:\n%s", code, tc.code, tc.want, out.String())
			}
		})
	}
	var out bytes.Buffer
	run([]string{"bench", "-h"}, &out, &out)
	if strings.Contains(out.String(), "bulk-bytes") {
		t.Errorf("bench -h shows a hidden flag:\n%s", out.String())
	}
}

func TestDemo(t *testing.T) {
	for _, network := range []string{"tcp4", "pipe", "quic"} {
		t.Run(network, func(t *testing.T) {
			var out, errs syncBuffer
			code := run([]string{"demo", "-network", network, "-streams", "500", "-bytes", "40000", "-idle", "3000"}, &out, &errs)
			if code != 0 {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
			}
			for _, want := range []string{
				"one " + network + " link",
				"500 of 500 streams verified",
				"B accepted 3000",
				"B per idle stream",
				"\nok\n",
			} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("no %q in the output:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestBench(t *testing.T) {
	var out, errs syncBuffer
	code := run([]string{"bench", "-quick", "-bulk-bytes", "1048576", "-rtt-rounds", "50", "-open-streams", "100"}, &out, &errs)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errs.String())
	}
	num := `\s+\d+(\.\d+)?`
	for _, row := range []string{`bulk\s+MB/s ↑`, `rtt\s+p50 µs ↓`, `rtt\s+p99 µs ↓`, `open\s+streams/s ↑`} {
		if !regexp.MustCompile(`(?m)^` + row + num + num + num + `$`).MatchString(out.String()) {
			t.Errorf("no row %q with three numbers in:\n%s", row, out.String())
		}
	}
	if !strings.Contains(errs.String(), "bench: bulk astranet") {
		t.Errorf("no progress on stderr:\n%s", errs.String())
	}
}

// TestNode runs "node" in-process, links a test node to it, and sends bytes
// both ways through it: test node -> node -expose -> a local TCP echo server,
// and a local TCP client -> node -forward -> a service on the test node.
func TestNode(t *testing.T) {
	echoAddr := serveTCPEcho(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errs syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- runContext(ctx, []string{"node", "-listen", "tcp4://127.0.0.1:0",
			"-expose", "echo=" + echoAddr, "-forward", "127.0.0.1:0=back", "-status-interval", "20ms"}, &out, &errs)
	}()
	stopped := false
	defer func() {
		if !stopped {
			cancel()
			<-exited
		}
	}()
	listenAddr := out.waitFor(t, `listening on tcp4://(\S+)`)
	forwardAddr := out.waitFor(t, `forwarding tcp://(\S+) -> service "back"`)
	out.waitFor(t, `running;`)

	peer := astranet.New()
	defer peer.Close()
	if err := peer.Join("tcp4", listenAddr); err != nil {
		t.Fatal(err)
	}
	back, err := peer.Bind("", "back")
	if err != nil {
		t.Fatal(err)
	}
	var handlers sync.WaitGroup
	defer handlers.Wait()
	defer back.Close()
	handlers.Go(func() {
		for {
			c, err := back.Accept()
			if err != nil {
				return
			}
			handlers.Go(func() { // answers "back:" + all it read
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				b, err := io.ReadAll(c)
				if err == nil {
					c.Write(append([]byte("back:"), b...))
				}
			})
		}
	})

	// The status lists the test node as a route.
	out.waitFor(t, `route\s+`+peer.ID().String())

	s, err := peer.DialTimeout("", "echo", 5*time.Second)
	if err != nil {
		t.Fatalf("dial echo through the node: %v\n%s", err, errs.String())
	}
	if got := roundTrip(t, s, "through -expose"); got != "through -expose" {
		t.Errorf("expose: got %q", got)
	}

	c, err := net.DialTimeout("tcp", forwardAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, c, "through -forward"); got != "back:through -forward" {
		t.Errorf("forward: got %q", got)
	}

	cancel()
	stopped = true
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("node exited %d\n%s", code, errs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node did not stop within 10 s of its context's end")
	}
	if !strings.HasSuffix(out.String(), "stopped\n") {
		t.Errorf("no \"stopped\" at the end of:\n%s", out.String())
	}
}

// roundTrip writes msg on c, half-closes, reads to the end and closes c.
func roundTrip(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	if err := c.(closeWriter).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// serveTCPEcho runs a TCP echo server on 127.0.0.1 until the test ends.
func serveTCPEcho(t *testing.T) string {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.Copy(c, c)
			})
		}
	})
	return l.Addr().String()
}
