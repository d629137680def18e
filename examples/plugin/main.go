// Command plugin shows a node whose discovery is a plugin process: it loads
// the example discovery plugin (in ./plugin), binds a service, sees it in the
// view the plugin publishes, and has a second node dial it by name.
//
// Run it from the repository root; without an argument it builds the plugin
// first with `go build`:
//
//	go run ./examples/plugin
//	go run ./examples/plugin /path/to/a/built/plugin
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/plugins"
	"github.com/hashicorp/go-hclog"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run() error {
	bin, cleanup, err := pluginBinary()
	if err != nil {
		return err
	}
	defer cleanup()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log := hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Warn})
	cfg := plugins.DefaultConfig(bin)
	cfg.Logger = log
	disc, err := plugins.LoadDiscovery(ctx, cfg)
	if err != nil {
		return err
	}
	server, err := core.New(core.Options{Config: core.DefaultConfig(), Discovery: disc})
	if err != nil {
		disc.Close()
		return err
	}
	defer server.Close()
	client, err := core.New(core.Options{Config: core.DefaultConfig()})
	if err != nil {
		return err
	}
	defer client.Close()
	a, b := net.Pipe()
	go server.Attach(a)
	go client.Attach(b)

	ln, err := server.Bind(0, "hello")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("server %s bound service %q through the discovery plugin\n", server.ID(), "hello")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from behind a plugin")
			c.Close()
		}
	}()

	for len(server.Services()) == 0 {
		if ctx.Err() != nil {
			return fmt.Errorf("the plugin published no services: %w", ctx.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, s := range server.Services() {
		fmt.Printf("the plugin publishes %q on node %s port %d\n", s.Name, s.Node, s.Port)
	}

	conn, err := client.Dial(ctx, core.Target{Service: "hello"})
	if err != nil {
		return err
	}
	defer conn.Close()
	msg, err := io.ReadAll(conn)
	if err != nil {
		return err
	}
	fmt.Printf("client dialled %q: %s\n", "hello", msg)
	return nil
}

// pluginBinary returns the plugin path from the command line, or builds it.
func pluginBinary() (string, func(), error) {
	if len(os.Args) > 1 {
		return os.Args[1], func() {}, nil
	}
	dir, err := os.MkdirTemp("", "astranet-example-plugin")
	if err != nil {
		return "", nil, err
	}
	bin := filepath.Join(dir, "plugin")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/astranet-go/astranet/examples/plugin/plugin")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building the plugin: %w", err)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}
