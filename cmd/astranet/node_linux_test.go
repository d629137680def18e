package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
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

// TestNodeStopsWithHalfClosedExpose: a node stops on SIGINT even while an
// -expose proxies a connection whose client has half-closed and whose local
// service has nothing more to say (yet): the proxy waits in a read from the
// local service, which the node's Close does not end.
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
	cmd.Env = append(os.Environ(), cmdArgsEnv+"=node -listen tcp4://127.0.0.1:0 -expose held="+local.Addr().String())
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
