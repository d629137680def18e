package astranet

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/astranet-go/astranet/plugins"
)

// TestDiscoveryPluginOption runs the example discovery plugin as a real
// subprocess through WithDiscoveryPlugin. With discovery set, a dial by name
// reads only discovery's snapshot, so the dial succeeding shows the plugin
// published the service.
func TestDiscoveryPluginOption(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "plugin")
	if out, err := exec.Command("go", "build", "-o", bin, "./examples/plugin/plugin").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	n := New(WithDiscoveryPlugin(plugins.DefaultConfig(bin))).WithLoopBack()
	defer n.Close()
	l, err := n.Bind("", "viaplugin")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got, err := n.ServiceMap().DiscoverTimeout("viaplugin", 10*time.Second)
	if err != nil || len(got) != 1 || got[0].Host != n.ID() {
		t.Fatalf("service through the plugin: %v, %v", got, err)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := n.DialTimeout("", "viaplugin", 5*time.Second)
	if err != nil {
		t.Fatalf("dial by a name the plugin published: %v", err)
	}
	c.Close()
}
