package plugins_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/plugins"
)

// slowPlugin writes a script that records its pid in pidFile and never
// completes the handshake. With next set, the script runs next instead on
// its first start, and is slow only on the starts after it.
func slowPlugin(tb testing.TB, next string) (script, pidFile string) {
	tb.Helper()
	dir := tb.TempDir()
	script, pidFile = filepath.Join(dir, "slow-plugin"), filepath.Join(dir, "pid")
	body := "#!/bin/sh\n"
	if next != "" {
		once := filepath.Join(dir, "started")
		body += "if [ ! -e " + once + " ]; then touch " + once + "; exec " + next + "; fi\n"
	}
	body += "echo $$ > " + pidFile + ".tmp && mv " + pidFile + ".tmp " + pidFile + "\nexec sleep 30\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		tb.Fatal(err)
	}
	return script, pidFile
}

// waitPid waits up to d for the slow plugin to record its pid.
func waitPid(pidFile string, d time.Duration) int {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return pid
			}
		}
	}
	return 0
}

// alive reports whether pid names a process, zombies included: a process
// killed but not reaped still counts.
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// TestLoadCancelledStopsPlugin: a load whose ctx ends before the plugin's
// handshake kills the plugin process and returns once it is gone, with an
// error that names the plugin and wraps ctx's.
func TestLoadCancelledStopsPlugin(t *testing.T) {
	for _, c := range []struct {
		name string
		load func(context.Context, plugins.Config) (func() error, error)
	}{
		{"discovery", func(ctx context.Context, cfg plugins.Config) (func() error, error) {
			d, err := plugins.LoadDiscovery(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return d.Close, nil
		}},
		{"routing", func(ctx context.Context, cfg plugins.Config) (func() error, error) {
			r, err := plugins.LoadRouting(ctx, cfg)
			if err != nil {
				return nil, err
			}
			return r.Close, nil
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			script, pidFile := slowPlugin(t, "")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var pid int
			waited := make(chan struct{})
			go func() {
				defer close(waited)
				pid = waitPid(pidFile, 5*time.Second)
				cancel()
			}()
			start := time.Now()
			closeFn, err := c.load(ctx, plugins.DefaultConfig(script)) // StartTimeout 10 s
			took := time.Since(start)
			<-waited
			if err == nil {
				closeFn()
				t.Fatal("loaded a plugin that never completes its handshake")
			}
			if pid == 0 {
				t.Fatal("the plugin never started")
			}
			defer syscall.Kill(pid, syscall.SIGKILL)
			if alive(pid) {
				t.Errorf("plugin process %d still there after the load returned (%v)", pid, err)
			}
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), script) {
				t.Errorf("error %q: want context.Canceled, naming %s", err, script)
			}
			if took > 3*time.Second {
				t.Errorf("load took %v after its ctx ended; want about the time to kill the process", took)
			}
		})
	}
}

// TestCloseDuringRestartStopsPlugin: closing while the supervisor is
// restarting a plugin that has not completed its handshake kills that
// process before Close returns.
func TestCloseDuringRestartStopsPlugin(t *testing.T) {
	script, pidFile := slowPlugin(t, examplePlugin)
	cfg := plugins.DefaultConfig(script) // StartTimeout 10 s
	d := load(t, cfg)
	n, err := core.New(core.Options{Config: quiet(), Discovery: d})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	defer n.Close()
	if err := syscall.Kill(d.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pid := waitPid(pidFile, 5*time.Second)
	if pid == 0 {
		t.Fatal("the plugin was not restarted")
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	start := time.Now()
	if err := n.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
	took := time.Since(start)
	if alive(pid) {
		t.Errorf("restarting plugin process %d still there after Close returned", pid)
	}
	if took > 3*time.Second {
		t.Errorf("Close took %v during a restart", took)
	}
}
