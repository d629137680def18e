// Package sdk is astranet's plugin contract, for both sides of it.
//
// A discovery or routing plugin is a separate process that the host node
// starts and speaks to over gRPC through hashicorp/go-plugin. The contract is
// the .proto files under proto/ (generated Go code in package pluginv1): the
// Discovery and Routing services the plugin serves, and the Host service the
// node hands the plugin once, through go-plugin's broker, so that the plugin
// can send and receive control messages over the mesh.
//
// Plugin authors implement core.Discovery or core.Routing, exactly as an
// in-process implementation would, and call Serve from main. The adapters here
// translate between those interfaces and gRPC on both sides: NewDiscoveryServer
// and NewRoutingServer in the plugin, DiscoveryClient and RoutingClient in the
// host. The host side's loading and supervision (restarts, replays, stale
// snapshots) lives in package plugins; the conformance suite plugin authors run
// against their implementation lives in sdk/sdktest.
package sdk
