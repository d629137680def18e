package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/plugins"
	"github.com/astranet-go/astranet/sdk"
	"github.com/astranet-go/astranet/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

var pluginBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "astranet-discovery-file-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginBin = filepath.Join(dir, "astranet-discovery-file")
	if out, err := exec.Command("go", "build", "-o", pluginBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the plugin: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		// go-plugin's client leaves its stdio copier running for a moment
		// after Kill; it ends when the plugin's pipes close.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/hashicorp/go-plugin.(*GRPCStdioClient).Run")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeFile(t *testing.T, path string, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newTestDiscovery(t *testing.T, body string) *fileDiscovery {
	path := filepath.Join(t.TempDir(), "services.json")
	writeFile(t, path, body)
	f := newFileDiscovery(hclog.NewNullLogger())
	if err := f.Configure(map[string]string{"path": path, "poll": "20ms"}); err != nil {
		t.Fatal(err)
	}
	return f
}

const emptyFile = `{"services": []}`

func TestConformance(t *testing.T) {
	sdktest.Discovery(t, func() core.Discovery { return newTestDiscovery(t, emptyFile) })
}

func TestConformanceOverGRPC(t *testing.T) {
	sdktest.Discovery(t, func() core.Discovery {
		g, err := sdktest.OverGRPC(newTestDiscovery(t, emptyFile), sdk.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return g
	})
}

func TestConformanceSubprocess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services.json")
	writeFile(t, path, emptyFile)
	sdktest.Discovery(t, func() core.Discovery {
		cfg := plugins.DefaultConfig(pluginBin)
		cfg.Options = map[string]string{"path": path, "poll": "20ms"}
		d, err := plugins.LoadDiscovery(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

// view records what a discovery publishes.
type view struct {
	mu   sync.Mutex
	last []core.Service
}

func (v *view) publish(ss []core.Service) {
	v.mu.Lock()
	v.last = ss
	v.mu.Unlock()
}

func (v *view) waitFor(t *testing.T, what string, ok func([]core.Service) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v.mu.Lock()
		last := v.last
		v.mu.Unlock()
		if ok(last) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no view with %s; last: %v", what, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func names(ss []core.Service) map[string]bool {
	m := map[string]bool{}
	for _, s := range ss {
		m[s.Name] = true
	}
	return m
}

func TestReload(t *testing.T) {
	f := newTestDiscovery(t, `{"services": [{"name": "a", "node": "00000000000000b2", "port": 7, "metadata": {"zone": "z"}}]}`)
	var v view
	if err := f.Start(sdktest.NewMesh(), v.publish); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v.waitFor(t, "a", func(ss []core.Service) bool {
		return len(ss) == 1 && ss[0].Name == "a" && ss[0].Node == 0xb2 && ss[0].Port == 7 && ss[0].Metadata["zone"] == "z"
	})
	if err := f.Register(core.Service{Name: "local", Node: 1, Port: 9}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.path, `{"services": [{"name": "b", "node": "00000000000000b3", "port": 8}]}`)
	v.waitFor(t, "b and local, without a", func(ss []core.Service) bool {
		n := names(ss)
		return n["b"] && n["local"] && !n["a"]
	})
	writeFile(t, f.path, `{"services": [ not json`)
	time.Sleep(100 * time.Millisecond)
	v.waitFor(t, "the last good file kept", func(ss []core.Service) bool { n := names(ss); return n["b"] && n["local"] })
	writeFile(t, f.path, `{"services": [{"name": "c", "node": "00000000000000b4", "port": 1}]}`)
	v.waitFor(t, "c after a bad file", func(ss []core.Service) bool { n := names(ss); return n["c"] && !n["b"] })
}

func TestParseRejects(t *testing.T) {
	for _, body := range []string{
		`{"services": [{"name": "a", "node": "xyz", "port": 7}]}`,
		`{"services": [{"name": "a", "node": "b2", "port": 7}]}`,
		`[]`,
		`{"services": [{"name": "a", "node": "00000000000000b2", "port": -1}]}`,
	} {
		if _, err := parse(strings.NewReader(body)); err == nil {
			t.Errorf("parse(%s) accepted", body)
		}
	}
}

// TestParseRejectsUnusableServices: a service the host would drop (no port,
// no name or a bad one, metadata past core's bounds) fails the whole file,
// with an error that names the service by its place in the file.
func TestParseRejectsUnusableServices(t *testing.T) {
	for _, tc := range []struct{ svc, want string }{
		{`{"name": "a", "node": "00000000000000b2"}`, `service 1: "a" has port 0`},
		{`{"node": "00000000000000b2", "port": 7}`, "service 1: port 7 has no name"},
		{`{"name": "a b", "node": "00000000000000b2", "port": 7}`, `service name "a b": byte 0x20 not allowed`},
		{`{"name": "` + strings.Repeat("n", 256) + `", "node": "00000000000000b2", "port": 7}`, "exceeds 255"},
		{`{"name": "a", "node": "00000000000000b2", "port": 7, "metadata": {"": "v"}}`, `service 1: "a": metadata ""`},
	} {
		body := `{"services": [{"name": "ok", "node": "00000000000000b2", "port": 1}, ` + tc.svc + `]}`
		ss, err := parse(strings.NewReader(body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parse(%.80s) = %v, %v; want an error saying %q", tc.svc, ss, err, tc.want)
		}
	}
}

func TestConfigure(t *testing.T) {
	f := newFileDiscovery(hclog.NewNullLogger())
	for _, opts := range []map[string]string{{}, {"path": "x", "poll": "1ms"}, {"path": "x", "poll": "soon"}} {
		if err := f.Configure(opts); err == nil {
			t.Errorf("Configure(%v) accepted", opts)
		}
	}
}
