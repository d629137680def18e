package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExample builds the plugin and the host and runs the host on the
// plugin: it must exit 0 within 30 s and print what it shows.
func TestExample(t *testing.T) {
	bin := t.TempDir()
	plugin, host := filepath.Join(bin, "plugin"), filepath.Join(bin, "host")
	for out, pkg := range map[string]string{plugin: "./plugin", host: "."} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, host, plugin).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{`bound service "hello" through the discovery plugin`,
		`the plugin publishes "hello"`, `client dialled "hello": hello from behind a plugin`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
