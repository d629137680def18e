package astranet

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"testing"
	"time"
)

// Through the face, over TCP: a client that writes, closes its stream and
// shuts down delivers every byte, even to a server that reads late; Close
// would have dropped what still waited for the server's credit.
func TestShutdownDeliversWrites(t *testing.T) {
	server, client := New(), New()
	defer server.Close()
	defer client.Close()
	addr, err := server.(*node).ListenAddr("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Join("tcp4", addr.String()); err != nil {
		t.Fatal(err)
	}
	ln, err := server.Bind("", "sink")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := client.DialTimeout("", "sink", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("shutdown"), 1<<20) // 8 MiB: many stream windows
	go func() {
		conn.Write(msg)
		conn.Close()
	}()

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- client.Shutdown(ctx)
	}()

	time.Sleep(50 * time.Millisecond) // the server reads late
	in, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(in)
	in.Close()
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("server got %d of %d bytes (error %v)", len(got), len(msg), err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := client.Dial("", "sink"); err == nil {
		t.Fatal("Dial after Shutdown succeeded")
	}
}

// A node never used has nothing to drain.
func TestShutdownUnusedNode(t *testing.T) {
	if err := New().Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown of an unused node: %v", err)
	}
}

// Shutdown lets a stream finish: here the server answers a request that is
// under way when the server starts to shut down, while new dials to it fail.
func ExampleAstraNet_Shutdown() {
	server, client := New(), New()
	defer client.Close()
	if err := server.ListenAndServe("pipe", "example-shutdown"); err != nil {
		log.Fatal(err)
	}
	if err := client.Join("pipe", "example-shutdown"); err != nil {
		log.Fatal(err)
	}
	ln, err := server.Bind("", "greeter")
	if err != nil {
		log.Fatal(err)
	}
	conn, err := client.Dial("", "greeter")
	if err != nil {
		log.Fatal(err)
	}
	in, err := ln.Accept()
	if err != nil {
		log.Fatal(err)
	}

	done := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- server.Shutdown(ctx) // waits for the stream below
	}()

	// The open stream still works both ways.
	fmt.Fprintln(conn, "hello")
	line := make([]byte, 6)
	io.ReadFull(in, line)
	fmt.Fprintf(in, "hi, you said %s", line)
	in.Close()
	reply, _ := io.ReadAll(conn)
	conn.Close()
	fmt.Print(string(reply))
	fmt.Println("shutdown:", <-done)
	_, err = client.DialTimeout("", "greeter", 100*time.Millisecond)
	fmt.Println("dial after shutdown failed:", err != nil)
	// Output:
	// hi, you said hello
	// shutdown: <nil>
	// dial after shutdown failed: true
}

// A router that shuts down is routed around while it drains: in a diamond,
// new streams take the other router at once, while the stream through the
// draining one carries on until it closes.
func TestShutdownRouterIsRoutedAround(t *testing.T) {
	const a, r1, r2, b = 0, 1, 2, 3
	m := newMesh(t, 4)
	m.link(a, r1, "tcp4")
	m.link(a, r2, "tcp4")
	m.link(b, r1, "tcp4")
	m.link(b, r2, "tcp4")
	m.converge(10 * time.Second)
	m.serveEcho(b, "echo")
	ca, err := m.nodes[a].(*node).engine()
	if err != nil {
		t.Fatal(err)
	}
	bID := m.nodes[b].ID()
	nextHop := func() NodeID {
		for _, rt := range ca.Routes() {
			if rt.Dst == bID {
				return rt.NextHop
			}
		}
		return 0
	}
	via, other := r1, r2
	if nextHop() == m.nodes[r2].ID() {
		via, other = r2, r1
	}

	held, err := m.nodes[a].DialTimeout("", "echo", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	roundTrip := func(c net.Conn, msg string) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if string(got) != msg {
			return fmt.Errorf("echo %q, want %q", got, msg)
		}
		return nil
	}
	if err := roundTrip(held, "before"); err != nil {
		t.Fatal(err)
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- m.nodes[via].Shutdown(ctx)
	}()
	deadline := time.Now().Add(3 * time.Second)
	for nextHop() != m.nodes[other].ID() {
		if time.Now().After(deadline) {
			t.Fatalf("a still routes to b through the draining router after 3 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	c, err := m.nodes[a].DialTimeout("", "echo", 5*time.Second)
	if err != nil {
		t.Fatalf("dial while a router drains: %v", err)
	}
	if err := roundTrip(c, "around"); err != nil {
		t.Fatalf("stream around the draining router: %v", err)
	}
	c.Close()
	if err := roundTrip(held, "during"); err != nil {
		t.Fatalf("the stream through the draining router: %v", err)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a stream crossed the router", err)
	default:
	}
	held.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return within 10 s of the last stream closing")
	}
}
