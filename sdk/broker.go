package sdk

import (
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Broker carries the Host service across the plugin boundary: the host serves
// it under an id it sends in Configure, and the plugin dials that id.
// go-plugin's GRPCBroker is the usual one (GoPluginBroker); sdktest has one
// over 127.0.0.1 for tests that run both sides in one process.
type Broker interface {
	// ServeHost serves the services register adds to a new gRPC server, under
	// a new id, until stop is called.
	ServeHost(register func(*grpc.Server)) (id uint32, stop func(), err error)
	// DialHost connects to what the other side serves under id.
	DialHost(id uint32) (*grpc.ClientConn, error)
}

// GoPluginBroker adapts go-plugin's broker, which carries TLS when the
// client uses AutoMTLS.
func GoPluginBroker(b *plugin.GRPCBroker) Broker { return goPluginBroker{b} }

type goPluginBroker struct{ b *plugin.GRPCBroker }

func (g goPluginBroker) ServeHost(register func(*grpc.Server)) (uint32, func(), error) {
	id := g.b.NextId()
	var (
		mu      sync.Mutex
		srv     *grpc.Server
		stopped bool
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.b.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
			s := grpc.NewServer(opts...)
			register(s)
			mu.Lock()
			srv = s
			if stopped {
				// Serve returns at once on a stopped server.
				s.Stop()
			}
			mu.Unlock()
			return s
		})
	}()
	stop := func() {
		mu.Lock()
		stopped = true
		s := srv
		mu.Unlock()
		if s != nil {
			s.Stop()
		}
		// AcceptAndServe returns once Serve does; it never blocks long, but a
		// broker that lost its plugin must not hold up the caller either.
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
	return id, stop, nil
}

func (g goPluginBroker) DialHost(id uint32) (*grpc.ClientConn, error) { return g.b.Dial(id) }
