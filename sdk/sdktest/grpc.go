package sdktest

import (
	"errors"
	"net"
	"sync"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/sdk"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// GRPCDiscovery is a discovery implementation served by a real gRPC server on
// 127.0.0.1 and reached through the host's client adapter: what a node sees
// of it as a plugin, without the process. Close closes all of it.
type GRPCDiscovery struct {
	*sdk.DiscoveryClient
	server *sdk.DiscoveryServer
	srv    *grpc.Server
	conn   *grpc.ClientConn
	broker *Broker
	wg     sync.WaitGroup
}

// OverGRPC serves impl over gRPC on 127.0.0.1 and returns the client side.
// cfg configures the client adapter (its Logger also serves the server).
func OverGRPC(impl core.Discovery, cfg sdk.ClientConfig) (*GRPCDiscovery, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	g := &GRPCDiscovery{broker: NewBroker(), srv: grpc.NewServer()}
	g.server = sdk.NewDiscoveryServer(impl, g.broker, log.Named("plugin"))
	pluginv1.RegisterDiscoveryServer(g.srv, g.server)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.srv.Serve(ln)
	}()
	g.conn, err = grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		g.srv.Stop()
		g.wg.Wait()
		return nil, err
	}
	g.DiscoveryClient = sdk.NewDiscoveryClient(g.conn, g.broker, cfg)
	return g, nil
}

// Close closes the client adapter, the server adapter (and so impl), the
// gRPC server and the broker.
func (g *GRPCDiscovery) Close() error {
	err := g.DiscoveryClient.Close()
	err = errors.Join(err, g.server.Close())
	g.srv.Stop()
	g.wg.Wait()
	g.conn.Close()
	g.broker.Close()
	return err
}

var _ core.Discovery = (*GRPCDiscovery)(nil)

// GRPCRouting is a routing implementation served over gRPC on 127.0.0.1 and
// reached through the host's client adapter. Close closes all of it.
type GRPCRouting struct {
	*sdk.RoutingClient
	server *sdk.RoutingServer
	srv    *grpc.Server
	conn   *grpc.ClientConn
	broker *Broker
	wg     sync.WaitGroup
}

// OverGRPCRouting serves impl over gRPC on 127.0.0.1 and returns the client
// side.
func OverGRPCRouting(impl core.Routing, cfg sdk.ClientConfig) (*GRPCRouting, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	g := &GRPCRouting{broker: NewBroker(), srv: grpc.NewServer()}
	g.server = sdk.NewRoutingServer(impl, g.broker, log.Named("plugin"))
	pluginv1.RegisterRoutingServer(g.srv, g.server)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.srv.Serve(ln)
	}()
	g.conn, err = grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		g.srv.Stop()
		g.wg.Wait()
		return nil, err
	}
	g.RoutingClient = sdk.NewRoutingClient(g.conn, g.broker, cfg)
	return g, nil
}

// Close closes the client adapter, the server adapter (and so impl), the
// gRPC server and the broker.
func (g *GRPCRouting) Close() error {
	err := g.RoutingClient.Close()
	err = errors.Join(err, g.server.Close())
	g.srv.Stop()
	g.wg.Wait()
	g.conn.Close()
	g.broker.Close()
	return err
}

var _ core.Routing = (*GRPCRouting)(nil)
