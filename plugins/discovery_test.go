package plugins_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/plugins"
	"github.com/astranet-go/astranet/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
)

func load(tb testing.TB, cfg plugins.Config) *plugins.Discovery {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := plugins.LoadDiscovery(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func TestConformanceExamplePlugin(t *testing.T) {
	sdktest.Discovery(t, func() core.Discovery { return load(t, plugins.DefaultConfig(examplePlugin)) })
}

func TestConformanceAutoMTLS(t *testing.T) {
	cfg := plugins.DefaultConfig(examplePlugin)
	cfg.AutoMTLS = true
	sdktest.Discovery(t, func() core.Discovery { return load(t, cfg) })
}

func TestLoadErrors(t *testing.T) {
	sum := sha256.Sum256([]byte("not the binary"))
	notExec := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	for _, c := range []struct {
		name string
		cfg  plugins.Config
		want string
	}{
		{"no path", plugins.Config{}, "no plugin path"},
		{"missing", plugins.Config{Path: "/nonexistent/plugin"}, "no such file"},
		{"not executable", plugins.Config{Path: notExec}, "not an executable"},
		{"short checksum", plugins.Config{Path: examplePlugin, Checksum: []byte{1, 2}}, "SHA-256"},
		{"wrong checksum", plugins.Config{Path: examplePlugin, Checksum: sum[:]}, "checksum"},
		{"not a plugin", plugins.Config{Path: "/bin/true"}, "plugin"},
		// A plugin sends progress at most every 50 ms: the host would deem
		// it hung after three shorter intervals, and restart it for ever.
		{"progress interval too short", plugins.Config{Path: examplePlugin, ProgressInterval: 10 * time.Millisecond}, "ProgressInterval"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d, err := plugins.LoadDiscovery(ctx, c.cfg)
			if err == nil {
				d.Close()
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestChecksum(t *testing.T) {
	b, err := os.ReadFile(examplePlugin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	cfg := plugins.DefaultConfig(examplePlugin)
	cfg.Checksum = sum[:]
	d := load(t, cfg)
	n, err := core.New(core.Options{Config: quiet(), Discovery: d})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Bind(0, "checked"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the service", 5*time.Second, func() bool { return hasService(n, "checked", n.ID()) })
}

// TestKillRestart kills the discovery plugin with SIGKILL mid-run: the node
// goes on serving the last view (a dial by name still works), the plugin is
// restarted and gets the node's registrations back.
func TestKillRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "services.json")
	var d *plugins.Discovery
	p := newPair(t, nil, func(echo core.Service) core.Discovery {
		writeServices(t, file, echo)
		cfg := plugins.DefaultConfig(filePlugin)
		cfg.Options = map[string]string{"path": file, "poll": "50ms"}
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "host", Output: &testWriter{t}, Level: hclog.Info})
		d = load(t, cfg)
		return d
	})
	defer p.close()
	if _, err := p.a.Bind(0, "local"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "echo and local in a's view", 5*time.Second, func() bool {
		return hasService(p.a, "echo", p.b.ID()) && hasService(p.a, "local", p.a.ID())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := dialEcho(ctx, p.a); err != nil {
		t.Fatal(err)
	}

	for round := 1; round <= 2; round++ {
		pid := d.Pid()
		if pid == 0 {
			t.Fatal("no plugin pid")
		}
		killed := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the crash to be seen", 2*time.Second, d.Stale)
		seen := time.Since(killed)
		if !hasService(p.a, "echo", p.b.ID()) || !hasService(p.a, "local", p.a.ID()) {
			t.Fatalf("the view was dropped with the plugin: %v", p.a.Services())
		}
		if err := dialEcho(ctx, p.a); err != nil {
			t.Fatalf("dial while the plugin is down: %v", err)
		}
		waitUntil(t, "the restarted plugin's view", 5*time.Second, func() bool {
			return d.Restarts() == round && !d.Stale()
		})
		back := time.Since(killed)
		if !hasService(p.a, "local", p.a.ID()) || !hasService(p.a, "echo", p.b.ID()) {
			t.Fatalf("registrations not replayed: %v", p.a.Services())
		}
		if d.Pid() == pid {
			t.Fatal("same pid after restart")
		}
		t.Logf("round %d: crash seen after %v; plugin serving again after %v (restart took %v)",
			round, seen.Round(time.Microsecond), back.Round(time.Microsecond), d.LastRestart().Round(time.Microsecond))
		if back > 2*time.Second {
			t.Errorf("plugin back after %v; want well under a second", back)
		}
		if err := dialEcho(ctx, p.a); err != nil {
			t.Fatal(err)
		}
	}
	// A registration made after the restarts reaches the new process.
	if _, err := p.a.Bind(0, "late"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "late", 5*time.Second, func() bool { return hasService(p.a, "late", p.a.ID()) })
}

// TestFrozenPluginRestarted: a plugin that stops answering (SIGSTOP) is
// deemed hung after three progress intervals, killed and replaced.
func TestFrozenPluginRestarted(t *testing.T) {
	cfg := plugins.DefaultConfig(examplePlugin)
	cfg.ProgressInterval = 100 * time.Millisecond
	cfg.KillTimeout = 300 * time.Millisecond
	d := load(t, cfg)
	n, err := core.New(core.Options{Config: quiet(), Discovery: d})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Bind(0, "kept"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "kept", 5*time.Second, func() bool { return hasService(n, "kept", n.ID()) })
	pid := d.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	waitUntil(t, "a restart", 5*time.Second, func() bool { return d.Restarts() == 1 && !d.Stale() })
	if !hasService(n, "kept", n.ID()) {
		t.Fatal("registration lost")
	}
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestCrashLoopBacksOff: a plugin that dies soon after each start is
// restarted after longer and longer waits (up to MaxBackoff), not every
// MinBackoff for ever; one that served for longer than MaxBackoff is
// restarted quickly again.
func TestCrashLoopBacksOff(t *testing.T) {
	cfg := plugins.DefaultConfig(examplePlugin)
	cfg.MinBackoff = 50 * time.Millisecond
	cfg.MaxBackoff = 400 * time.Millisecond
	d := load(t, cfg)
	n, err := core.New(core.Options{Config: quiet(), Discovery: d})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	crash := func(round int) time.Duration {
		t.Helper()
		if err := syscall.Kill(d.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the restart", 10*time.Second, func() bool { return d.Restarts() == round && !d.Stale() })
		return d.LastRestart()
	}
	time.Sleep(cfg.MaxBackoff + 100*time.Millisecond) // the first process has served long enough
	var gaps []time.Duration
	for round := 1; round <= 4; round++ {
		gaps = append(gaps, crash(round)) // each kill right after the restart
	}
	t.Logf("restart gaps after quick crashes: %v", gaps)
	// The waits are 50, 100, 200 and 400 ms, less up to a quarter of jitter.
	if gaps[0] > 300*time.Millisecond {
		t.Errorf("first restart took %v; want about MinBackoff", gaps[0])
	}
	if gaps[3] < 300*time.Millisecond {
		t.Errorf("fourth quick crash restarted after %v; want the backoff grown to about MaxBackoff", gaps[3])
	}
	time.Sleep(cfg.MaxBackoff + 100*time.Millisecond)
	if gap := crash(5); gap > 300*time.Millisecond {
		t.Errorf("a crash after serving a while restarted after %v; want about MinBackoff again", gap)
	}
}

// TestCloseFrozenPluginPrompt: closing a node whose discovery plugin has
// stopped answering, with registrations waiting to be sent, takes about
// KillTimeout, not a CallTimeout per pending registration.
func TestCloseFrozenPluginPrompt(t *testing.T) {
	cfg := plugins.DefaultConfig(examplePlugin)
	cfg.CallTimeout = time.Second
	cfg.KillTimeout = 300 * time.Millisecond
	d := load(t, cfg)
	n, err := core.New(core.Options{Config: quiet(), Discovery: d})
	if err != nil {
		t.Fatal(err)
	}
	pid := d.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	for i := range 5 {
		if _, err := n.Bind(0, fmt.Sprint("pending", i)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // a registration is now waiting on the frozen plugin
	start := time.Now()
	n.Close()
	if took := time.Since(start); took > 2*cfg.CallTimeout {
		t.Fatalf("Close took %v with a frozen plugin; want about KillTimeout (%v)", took, cfg.KillTimeout)
	} else {
		t.Logf("Close took %v", took)
	}
}

// A listener bound by port only is not for discovery: the host does not pass
// it to the plugin (as the embedded mesh does not announce it), so a plugin
// that echoes what it is given back in its view, as the file plugin does,
// does not make the host drop (and warn about) a nameless service.
func TestPortOnlyBindNotRegistered(t *testing.T) {
	file := filepath.Join(t.TempDir(), "services.json")
	// The host logs to a file: its writes are safe from many goroutines.
	logs, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	p := newPair(t, nil, func(echo core.Service) core.Discovery {
		writeServices(t, file, echo)
		cfg := plugins.DefaultConfig(filePlugin)
		cfg.Options = map[string]string{"path": file, "poll": "50ms"}
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Warn})
		return load(t, cfg)
	})
	defer p.close()
	if _, err := p.a.Bind(9, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := p.a.Bind(0, "named"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "named in a's view", 5*time.Second, func() bool { return hasService(p.a, "named", p.a.ID()) })
	got, err := os.ReadFile(logs.Name())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(got, []byte("not valid")) {
		t.Fatalf("the host dropped services the plugin echoed back:\n%s", got)
	}
}
