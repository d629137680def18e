// Command astranet-discovery-etcd is an astranet discovery plugin backed by
// etcd, for deployments whose nodes span networks that the mesh does not
// join: every node writes its services to etcd and watches everyone's.
//
// Each node holds one lease, kept alive while the plugin runs and revoked
// when it closes (so a node that dies takes its services with it after the
// lease's TTL). Each registered service is one key under the prefix,
//
//	<prefix><name>/<node id>/<port>   (the name path-escaped)
//
// whose value is JSON: name, node, port, metadata and the node's listen
// addresses, which the host passes in the "addrs" option and which appear in
// the published metadata under "addrs". The plugin watches the prefix from
// the revision of its snapshot; when etcd has compacted past that revision,
// or its revision went back (restored from an older backup, or replaced),
// it tells the host to reset its view and sends a fresh snapshot. A key of
// the node's own that another client deletes is written again.
//
// A record the host would refuse (core.CheckService, with the addrs counted
// in the metadata) is skipped by the nodes that read it, and refused by
// Register on the node that would write it; a port-only listener is not
// announced.
//
// Options (plugins.Config.Options): "endpoints" (comma-separated, required),
// "prefix" (default /astranet/services/), "ttl" (lease seconds, default 10,
// at most 9,000,000,000, the longest lease etcd grants),
// "addrs" (comma-separated, at most 256 bytes in all: a metadata value),
// "dial_timeout" (a Go duration, default 5s).
package main

import (
	"os"

	"github.com/astranet-go/astranet/sdk"
	"github.com/hashicorp/go-hclog"
)

func main() {
	log := hclog.New(&hclog.LoggerOptions{Name: "discovery-etcd", Output: os.Stderr, JSONFormat: true,
		Level: hclog.LevelFromString(os.Getenv("ASTRANET_PLUGIN_LOG_LEVEL"))})
	if err := sdk.Serve(sdk.ServeConfig{Discovery: newEtcdDiscovery(log), Logger: log}); err != nil {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}
