// Command plugin is a minimal astranet discovery plugin, short enough to
// copy: it publishes the services its own node registers. A real one would
// also learn the services of other nodes (from a registry, a file, or its
// neighbours through the core.Mesh it is given) and publish them too.
//
// Build it, then hand its path to the host in the folder above:
//
//	go build -o /tmp/astranet-example-plugin ./examples/plugin/plugin
//	go run ./examples/plugin /tmp/astranet-example-plugin
package main

import (
	"os"
	"sync"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/sdk"
	"github.com/hashicorp/go-hclog"
)

// registry is the whole plugin: a core.Discovery, the same interface an
// in-process discovery implements.
type registry struct {
	log      hclog.Logger
	mu       sync.Mutex
	publish  func([]core.Service)
	services map[[2]any]core.Service // by name and port
}

func (r *registry) Start(_ core.Mesh, publish func([]core.Service)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publish = publish
	r.publishLocked()
	return nil
}

func (r *registry) publishLocked() {
	ss := make([]core.Service, 0, len(r.services))
	for _, s := range r.services {
		ss = append(ss, s)
	}
	r.publish(ss)
}

func (r *registry) Register(s core.Service) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.services[[2]any{s.Name, s.Port}] = s
	r.log.Info("registered", "service", s.Name, "port", s.Port)
	r.publishLocked()
	return nil
}

func (r *registry) Deregister(s core.Service) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.services, [2]any{s.Name, s.Port})
	r.publishLocked()
	return nil
}

// This plugin ignores links and messages from neighbours.
func (r *registry) LinkUp(core.LinkInfo)                {}
func (r *registry) LinkDown(core.LinkInfo)              {}
func (r *registry) HandleControl(core.LinkInfo, []byte) {}
func (r *registry) Close() error                        { return nil }

func main() {
	// Logs go to stderr, which the host reads and re-logs; stdout is
	// go-plugin's, never print there.
	log := hclog.New(&hclog.LoggerOptions{Name: "example-plugin", Output: os.Stderr, JSONFormat: true})
	d := &registry{log: log, services: make(map[[2]any]core.Service)}
	if err := sdk.Serve(sdk.ServeConfig{Discovery: d, Logger: log}); err != nil {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}
