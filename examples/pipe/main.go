// Pipe builds an in-memory network with the pipe transport: no sockets, all
// in one process. A hub listens on the pipe address "hub", three spokes join
// it, each spoke binds its own service, and the hub dials each one by name.
// (Names are found on direct neighbours: the hub reaches every spoke.)
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/astranet-go/astranet"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pipe:", err)
		os.Exit(1)
	}
}

func run() error {
	hub := astranet.New()
	defer hub.Close()
	if err := hub.ListenAndServe("pipe", "hub"); err != nil {
		return err
	}
	fmt.Printf("hub %s listens on pipe address \"hub\"\n", hub.ID())

	for i := 1; i <= 3; i++ {
		spoke := astranet.New()
		defer spoke.Close()
		name := fmt.Sprintf("spoke-%d", i)
		l, err := spoke.Bind("", name)
		if err != nil {
			return err
		}
		defer l.Close()
		go greet(l, fmt.Sprintf("hello from %s on node %s", name, spoke.ID()))
		if err := spoke.Join("pipe", "hub"); err != nil {
			return err
		}
		fmt.Printf("%s: node %s joined the hub and bound service %q\n", name, spoke.ID(), name)
	}

	// Join returns once the spoke's end of the link is up; give the hub a
	// moment to register the last link at its end too.
	for deadline := time.Now().Add(5 * time.Second); len(hub.Routes()) < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the hub sees %d spokes, want 3", len(hub.Routes()))
		}
	}
	for _, r := range hub.Routes() {
		fmt.Printf("hub route: node %s via %s\n", r.Host, r.Upstream)
	}

	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("spoke-%d", i)
		conn, err := hub.DialTimeout("", name, 5*time.Second)
		if err != nil {
			return err
		}
		// The hub has nothing to say: it half-closes and reads the greeting.
		conn.(interface{ CloseWrite() error }).CloseWrite()
		greeting, err := io.ReadAll(conn)
		conn.Close()
		if err != nil {
			return err
		}
		fmt.Printf("hub dialled %q: %s\n", name, greeting)
	}
	return nil
}

// greet answers every stream l accepts with msg. It half-closes after msg
// and waits for the dialler's end of data before closing: closing a stream
// whose peer has not finished writing would reset it.
func greet(l net.Listener, msg string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return // l was closed
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, msg)
			c.(interface{ CloseWrite() error }).CloseWrite()
			io.Copy(io.Discard, c)
		}()
	}
}
