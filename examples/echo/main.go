// Echo is the smallest astranet program: two nodes in one process, linked
// over TCP on the loopback address; one binds an echo service under a name,
// the other opens a stream to that name and gets its bytes back.
package main

import (
	"fmt"
	"io"
	"net"
	"os"

	"github.com/astranet-go/astranet"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

func run() error {
	server := astranet.New()
	defer server.Close()
	// ListenAndServe would do; ListenAddr also says which port ":0" chose.
	addr, err := server.(interface {
		ListenAddr(network, addr string) (net.Addr, error)
	}).ListenAddr("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("server node %s accepts links on tcp4 %s\n", server.ID(), addr)

	l, err := server.Bind("", "echo")
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // l was closed
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	fmt.Println("server bound service \"echo\"")

	client := astranet.New()
	defer client.Close()
	if err := client.Join("tcp4", addr.String()); err != nil {
		return err
	}
	fmt.Printf("client node %s joined the server\n", client.ID())

	conn, err := client.Dial("", "echo")
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Printf("stream %s -> %s opened by name\n", conn.LocalAddr(), conn.RemoteAddr())

	msg := "hello, astranet"
	if _, err := io.WriteString(conn, msg); err != nil {
		return err
	}
	// A stream half-closes like a TCP connection: the echo sees the end of
	// the data, finishes, and closes its side.
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		return err
	}
	reply, err := io.ReadAll(conn)
	if err != nil {
		return err
	}
	fmt.Printf("sent %q, got back %q\n", msg, reply)
	if string(reply) != msg {
		return fmt.Errorf("the echo differs")
	}
	return nil
}
