// Command astranet-discovery-file is an astranet discovery plugin that reads
// the services of the mesh from a JSON file, and re-reads it when it changes:
//
//	{"services": [
//	  {"name": "echo", "node": "00000000000000b2", "port": 7, "metadata": {"zone": "a"}}
//	]}
//
// node is the serving node's id in its 16-hex-digit form. Each service needs
// a port, a name the wire accepts and metadata within core's bounds
// (core.CheckService); a file with one that does not is refused whole. The
// node's own registrations are published beside the file's services. The
// file's modification time and size are polled every 500 ms (option "poll");
// a file that does not parse is logged and the last good one kept.
//
// Options (plugins.Config.Options): "path" (required), "poll" (a Go
// duration, at least 10ms).
//
// It is a plugin, started by a host through package plugins; run by hand it
// says so and exits.
package main

import (
	"os"

	"github.com/astranet-go/astranet/sdk"
	"github.com/hashicorp/go-hclog"
)

func main() {
	log := hclog.New(&hclog.LoggerOptions{Name: "discovery-file", Output: os.Stderr, JSONFormat: true,
		Level: hclog.LevelFromString(os.Getenv("ASTRANET_PLUGIN_LOG_LEVEL"))})
	if err := sdk.Serve(sdk.ServeConfig{Discovery: newFileDiscovery(log), Logger: log}); err != nil {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}
