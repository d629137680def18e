package tcp_test

import (
	"context"
	"fmt"
	"io"

	"github.com/astranet-go/astranet/transports/tcp"
)

func ExampleTransport() {
	ctx := context.Background()
	tr := tcp.New() // set tr.TLS to secure the links

	l, err := tr.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	go func() { // echo one link
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()

	c, err := tr.Dial(ctx, "tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	reply := make([]byte, 5)
	io.ReadFull(c, reply)
	fmt.Println(string(reply))
	// Output: hello
}
