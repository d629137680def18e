// Command astranet-routing-policy is an astranet routing plugin that routes
// by policy: a small distance-vector protocol whose link costs come from
// rules on the links' labels, with destinations that may be pinned to a
// neighbour.
//
// A link's labels are "network:<transport network>" and "peer:<node id>".
// Every node that runs the plugin tells its neighbours, each interval, the
// nodes it reaches and at what metric (as routing control messages, through
// the host); a route's metric is the neighbour's plus the cost of the link
// to it: 1 for a preferred link, 100 for an avoided one, 10 otherwise.
// Routes not heard of for 3.5 intervals expire; a route is never offered
// back to the neighbour it goes through. A pinned destination is reached
// through the given neighbour whenever a link to it is up, whatever the
// metrics say.
//
// Options (plugins.Config.Options): "prefer" and "avoid" (comma-separated
// labels), "pin" (comma-separated <destination node id>=<neighbour node id>),
// "interval" (a Go duration from 10ms to 24h, default 1s).
//
// All the nodes of a mesh that route by policy run it: its messages are not
// the embedded routing's.
package main

import (
	"os"

	"github.com/astranet-go/astranet/sdk"
	"github.com/hashicorp/go-hclog"
)

func main() {
	log := hclog.New(&hclog.LoggerOptions{Name: "routing-policy", Output: os.Stderr, JSONFormat: true,
		Level: hclog.LevelFromString(os.Getenv("ASTRANET_PLUGIN_LOG_LEVEL"))})
	if err := sdk.Serve(sdk.ServeConfig{Routing: newPolicy(log), Logger: log}); err != nil {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}
