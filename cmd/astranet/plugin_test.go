package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestNodePluginOptions: -discovery-opt reaches the discovery plugin. The
// file plugin refuses to start without its path option; with it, the node
// knows the service the file lists.
func TestNodePluginOptions(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "astranet-discovery-file")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/astranet-go/astranet/plugins/cmd/astranet-discovery-file").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	file := filepath.Join(dir, "services.json")
	const services = `{"services": [{"name": "from-the-file", "node": "00000000000000b2", "port": 7}]}`
	if err := os.WriteFile(file, []byte(services), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var out, errs syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- runContext(ctx, []string{"node", "-listen", "tcp4://127.0.0.1:0", "-status-interval", "50ms",
			"-discovery-plugin", bin, "-discovery-opt", "path=" + file, "-discovery-opt", "poll=20ms"}, &out, &errs)
	}()
	defer func() {
		cancel()
		select {
		case code := <-exited:
			if code != 0 {
				t.Errorf("node exited %d\n%s", code, errs.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("node did not stop within 10 s")
		}
	}()
	out.waitFor(t, `service from-the-file\s+at 00000000000000b2:7`)
}
