package quic_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"time"

	"github.com/astranet-go/astranet/transports/quic"
)

// Example opens one link over QUIC on loopback and echoes a message over it.
// With nil TLS the link is encrypted but not authenticated.
func Example() {
	tr := quic.New()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	ln, err := tr.Listen(ctx, "quic", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		link, err := ln.Accept()
		if err != nil {
			return
		}
		defer link.Close()
		io.Copy(link, link) // echo until the dialler closes
	}()

	link, err := tr.Dial(ctx, "quic", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer link.Close()
	// The dialler writes first: that is what makes the link visible to Accept.
	if _, err := link.Write([]byte("hello over QUIC")); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, len("hello over QUIC"))
	if _, err := io.ReadFull(link, buf); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (ALPN %s)\n", buf, link.(*quic.Link).QUICConn().ConnectionState().TLS.NegotiatedProtocol)
	// Output: hello over QUIC (ALPN astranet/1)
}
