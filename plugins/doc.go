// Package plugins is the host side of astranet's discovery and routing
// plugins: it starts a plugin binary through hashicorp/go-plugin (gRPC only,
// the versioned handshake of package sdk), and returns a core.Discovery or
// core.Routing that a node runs as if it were in-process.
//
// The host supervises each plugin. It notices a crash within milliseconds
// (the plugin's streams break and go-plugin sees the process exit), keeps
// serving the last snapshot the plugin published (Stale reports it), restarts
// the plugin with backoff (50 ms doubling to 5 s), and replays the node's
// registrations into the new process. The node's data plane never waits on a
// plugin: the proxies publish snapshots into the node, and Register and
// Deregister only record what the node wants and return, while a worker
// brings the plugin in line with calls that each have a timeout.
//
// The shipped plugins are main packages under cmd/: astranet-discovery-etcd,
// astranet-discovery-file and astranet-routing-policy.
package plugins
