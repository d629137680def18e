package core

import (
	"context"
	"net"
)

// Transport turns an address into links. A link is any reliable, ordered byte
// stream; transports know nothing of astranet frames. The tcp, quic and pipe
// packages under transports/ implement it; any type with these two methods does.
type Transport interface {
	// Dial opens one link to addr on network (for example "tcp4",
	// "127.0.0.1:10000"). It must honour ctx's deadline and cancellation.
	Dial(ctx context.Context, network, addr string) (net.Conn, error)
	// Listen accepts links on addr. Closing the listener stops it.
	Listen(ctx context.Context, network, addr string) (net.Listener, error)
}
