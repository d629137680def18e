package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/astranet-go/astranet"
	"golang.org/x/sys/unix"
)

// TestNodeForwardOutOfFiles runs "node" as a process with few file
// descriptors: a -forward that runs out of them while accepting must go on
// accepting once connections end and free some, as net/http's Server does.
func TestNodeForwardOutOfFiles(t *testing.T) {
	peer := astranet.New()
	var handlers sync.WaitGroup
	defer handlers.Wait()
	defer peer.Close()
	addr, err := peer.(listenAddrer).ListenAddr("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveName(t, peer, "echo", &handlers, func(c net.Conn) { io.Copy(c, c) })

	var out, errs syncBuffer
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), cmdArgsEnv+"=node -join tcp4://"+addr.String()+" -forward 127.0.0.1:0=echo")
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("node: %v\n%s", err, errs.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("node did not stop within 10 s of SIGTERM")
		}
	}()
	forward := out.waitFor(t, `forwarding tcp://(\S+) -> service "echo"`)
	out.waitFor(t, `running;`)
	echo := func(msg string) error {
		c, err := net.DialTimeout("tcp", forward, 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		got, err := echoBack(c, msg, 5*time.Second)
		if err == nil && got != msg {
			t.Fatalf("echo: got %q, want %q", got, msg)
		}
		return err
	}
	if err := echo("warm"); err != nil {
		t.Fatalf("first echo through the node: %v\n%s", err, errs.String())
	}

	// Leave the node three descriptors more than it holds, then connect more
	// clients than that.
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	limit := uint64(len(fds) + 3)
	if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: limit}, nil); err != nil {
		t.Fatal(err)
	}
	var clients []net.Conn
	for range 10 {
		c, err := net.DialTimeout("tcp", forward, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	errs.waitFor(t, `too many open files`)
	for _, c := range clients {
		c.Close()
	}

	// The clients are gone and their descriptors free: the forward works.
	if err := echo("after"); err != nil {
		t.Fatalf("echo through the node once descriptors are free again: %v\n%s", err, errs.String())
	}
}

// TestNodeStopsWithHalfClosedExpose: a node stops on SIGINT, once its grace
// period is over, even while an -expose proxies a connection whose client
// has half-closed and whose local service has nothing more to say (yet): the
// proxy waits in a read from the local service, which the node's Close does
// not end.
func TestNodeStopsWithHalfClosedExpose(t *testing.T) {
	// The local service reads to the end and then holds the connection open
	// until the test ends.
	local, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	readAll := make(chan string, 1)
	var server sync.WaitGroup
	defer server.Wait()
	defer close(release)
	defer local.Close()
	server.Go(func() {
		c, err := local.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(c)
		readAll <- string(b)
		<-release
	})

	var out, errs syncBuffer
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), cmdArgsEnv+"=node -grace 300ms -listen tcp4://127.0.0.1:0 -expose held="+local.Addr().String())
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()
	listen := out.waitFor(t, `listening on tcp4://(\S+)`)
	out.waitFor(t, `running;`)

	peer := astranet.New()
	defer peer.Close()
	if err := peer.Join("tcp4", listen); err != nil {
		t.Fatal(err)
	}
	s, err := peer.DialTimeout("", "held", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	io.WriteString(s, "request")
	s.(closeWriter).CloseWrite()
	select {
	case got := <-readAll:
		if got != "request" {
			t.Fatalf("the local service read %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the local service got no request within 10 s\n%s", errs.String())
	}

	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Errorf("node: %v\n%s", err, errs.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("node did not stop within 5 s of SIGINT\n%s", out.String())
	}
}

// gracefulNode runs "node" as a process that forwards a local address to the
// "echo" service of an in-test peer, with -grace 30s, and returns the process,
// its exit, its output and the forward's address.
func gracefulNode(t *testing.T) (cmd *exec.Cmd, exited chan error, out, errs *syncBuffer, forward string) {
	t.Helper()
	peer := astranet.New()
	var handlers sync.WaitGroup
	t.Cleanup(handlers.Wait)
	t.Cleanup(func() { peer.Close() })
	addr, err := peer.(listenAddrer).ListenAddr("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveName(t, peer, "echo", &handlers, func(c net.Conn) { io.Copy(c, c) })

	out, errs = new(syncBuffer), new(syncBuffer)
	cmd = exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), cmdArgsEnv+"=node -grace 30s -join tcp4://"+addr.String()+" -forward 127.0.0.1:0=echo")
	cmd.Stdout, cmd.Stderr = out, errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})
	forward = out.waitFor(t, `forwarding tcp://(\S+) -> service "echo"`)
	out.waitFor(t, `running;`)
	return cmd, exited, out, errs, forward
}

// echoThrough connects to forward and echoes msg through it, and returns the
// connection, which closes when the test ends.
func echoThrough(t *testing.T, forward, msg string, errs *syncBuffer) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", forward, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if got, err := echoBack(c, msg, 5*time.Second); err != nil || got != msg {
		t.Fatalf("echo %q through the node: got %q, %v\n%s", msg, got, err, errs.String())
	}
	return c
}

// waitExit waits up to d for the node process to exit, and fails the test
// unless it exited with status 0.
func waitExit(t *testing.T, exited chan error, errs *syncBuffer, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("node: %v\n%s", err, errs.String())
		}
	case <-time.After(d):
		t.Fatalf("node did not stop within %v of %s\n%s", d, what, errs.String())
	}
}

// TestNodeGracefulStop: on SIGTERM a node stops taking connections, lets the
// open one carry on, and exits as soon as it closes, well before -grace ends.
func TestNodeGracefulStop(t *testing.T) {
	cmd, exited, out, errs, forward := gracefulNode(t)
	c := echoThrough(t, forward, "before", errs)

	cmd.Process.Signal(syscall.SIGTERM)
	out.waitFor(t, `stopping: open connections have (30s) to finish`)
	if got, err := echoBack(c, "during", 5*time.Second); err != nil || got != "during" {
		t.Fatalf("echo on the open connection while stopping: %q, %v\n%s", got, err, errs.String())
	}
	if c2, err := net.DialTimeout("tcp", forward, 5*time.Second); err == nil {
		c2.Close()
		t.Fatal("a new connection to the forward was accepted while stopping")
	}
	select {
	case err := <-exited:
		t.Fatalf("node exited (%v) with a connection open, inside its grace period\n%s", err, errs.String())
	case <-time.After(200 * time.Millisecond):
	}

	c.Close()
	waitExit(t, exited, errs, 5*time.Second, "its last connection closing")
	if strings.Contains(errs.String(), "closing the connections still open") {
		t.Errorf("node cut connections although all had finished:\n%s", errs.String())
	}
	if !strings.Contains(out.String(), "stopped") {
		t.Errorf("node did not say it stopped:\n%s", out.String())
	}
}

// TestNodeSecondSignalStops: a second signal ends the grace period at once.
func TestNodeSecondSignalStops(t *testing.T) {
	cmd, exited, out, errs, forward := gracefulNode(t)
	c := echoThrough(t, forward, "held", errs)
	cmd.Process.Signal(syscall.SIGTERM)
	out.waitFor(t, `stopping: open connections have (30s) to finish`)
	cmd.Process.Signal(syscall.SIGTERM)
	waitExit(t, exited, errs, 5*time.Second, "a second SIGTERM")
	if !strings.Contains(errs.String(), "signalled again") {
		t.Errorf("node did not say why it cut the open connection:\n%s", errs.String())
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the open connection did not end cleanly when the node stopped: %v", err)
	}
}

// TestNodeQuickSecondSignal: a second signal that comes right after the
// first, before the node has begun to drain, is not lost (nor does it kill
// the process): it ends the grace period too. (SIGTERM then SIGINT: two of
// the same signal can merge while pending.)
func TestNodeQuickSecondSignal(t *testing.T) {
	cmd, exited, _, errs, forward := gracefulNode(t)
	echoThrough(t, forward, "held", errs) // an open connection holds the grace period
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Process.Signal(syscall.SIGINT)
	waitExit(t, exited, errs, 5*time.Second, "two signals")
}
