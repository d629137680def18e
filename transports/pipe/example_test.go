package pipe_test

import (
	"context"
	"fmt"
	"io"

	"github.com/astranet-go/astranet/transports/pipe"
)

func ExampleTransport() {
	ctx := context.Background()
	tr := pipe.New()

	l, err := tr.Listen(ctx, "pipe", "example-hub")
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

	c, err := tr.Dial(ctx, "pipe", "example-hub")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.Write([]byte("hello"))
	reply := make([]byte, 5)
	io.ReadFull(c, reply)
	fmt.Println(string(reply), "from", c.RemoteAddr())
	// Output: hello from example-hub
}

func ExamplePipe() {
	a, b := pipe.Pipe()
	a.Write([]byte("buffered")) // returns at once: no reader needed
	a.Close()
	data, err := io.ReadAll(b)
	fmt.Printf("%q %v\n", data, err)
	b.Close()
	// Output: "buffered" <nil>
}
