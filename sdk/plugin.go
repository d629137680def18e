package sdk

import (
	"context"
	"errors"

	"github.com/astranet-go/astranet/core"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// Handshake is what host and plugin must agree on before they speak: the
// protocol version of this contract and a cookie that tells a plugin binary
// it was started by a host (go-plugin refuses to serve without it).
// ProtocolVersion changes only with an incompatible change to the .proto
// files.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "ASTRANET_PLUGIN",
	MagicCookieValue: "6f1d3c2a9b7e4d58a0c1e2f3b4a59687",
}

// Names under which the plugins are served and dispensed.
const (
	DiscoveryPluginName = "discovery"
	RoutingPluginName   = "routing"
)

// DiscoveryPlugin is the go-plugin glue of a discovery plugin. In the plugin
// process it serves Impl; in the host its GRPCClient returns a
// *DiscoveryClient configured by Config.
type DiscoveryPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl   core.Discovery // plugin side
	Config ClientConfig   // host side
	Logger hclog.Logger

	server *DiscoveryServer
}

// GRPCServer registers the Discovery service.
func (p *DiscoveryPlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("sdk: DiscoveryPlugin without Impl")
	}
	p.server = NewDiscoveryServer(p.Impl, GoPluginBroker(b), p.Logger)
	pluginv1.RegisterDiscoveryServer(s, p.server)
	return nil
}

// GRPCClient returns a *DiscoveryClient over cc.
func (p *DiscoveryPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	cfg := p.Config
	if cfg.Logger == nil {
		cfg.Logger = p.Logger
	}
	return NewDiscoveryClient(cc, GoPluginBroker(b), cfg), nil
}

// RoutingPlugin is the go-plugin glue of a routing plugin: Impl in the
// plugin, a *RoutingClient in the host.
type RoutingPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl   core.Routing // plugin side
	Config ClientConfig // host side
	Logger hclog.Logger

	server *RoutingServer
}

// GRPCServer registers the Routing service.
func (p *RoutingPlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return errors.New("sdk: RoutingPlugin without Impl")
	}
	p.server = NewRoutingServer(p.Impl, GoPluginBroker(b), p.Logger)
	pluginv1.RegisterRoutingServer(s, p.server)
	return nil
}

// GRPCClient returns a *RoutingClient over cc.
func (p *RoutingPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	cfg := p.Config
	if cfg.Logger == nil {
		cfg.Logger = p.Logger
	}
	return NewRoutingClient(cc, GoPluginBroker(b), cfg), nil
}

var (
	_ plugin.GRPCPlugin = (*DiscoveryPlugin)(nil)
	_ plugin.GRPCPlugin = (*RoutingPlugin)(nil)
	_ core.Discovery    = (*DiscoveryClient)(nil)
	_ core.Routing      = (*RoutingClient)(nil)
)
