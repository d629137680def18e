package sdk_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	"github.com/astranet-go/astranet/sdk"
	"github.com/astranet-go/astranet/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// TestPluginProcess runs the echo plugin as a real process through go-plugin
// (with AutoMTLS) and uses every part of the contract: Configure, Register,
// Watch, link events and control messages in, Send out.
func TestPluginProcess(t *testing.T) {
	_, d := loadEcho(t, sdk.ClientConfig{ProgressInterval: 100 * time.Millisecond})
	mesh := sdktest.NewMesh()
	link := core.LinkInfo{ID: 5, Peer: 0xabc, Network: "pipe"}
	mesh.AddLink(link)
	var mu sync.Mutex
	var last []core.Service
	publish := func(ss []core.Service) {
		mu.Lock()
		last = ss
		mu.Unlock()
	}
	has := func(name string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range last {
				if s.Name == name {
					return true
				}
			}
			return false
		}
	}
	if err := d.Start(mesh, publish); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	waitUntil(t, "the link known at Configure", 5*time.Second, has("link-"+link.Peer.String()))
	if err := d.Register(core.Service{Name: "echo", Node: mesh.ID(), Port: 7}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the registered service", 5*time.Second, has("echo"))

	second := core.LinkInfo{ID: 6, Peer: 0xdef, Network: "pipe"}
	mesh.AddLink(second)
	d.LinkUp(second)
	waitUntil(t, "the link that came up", 5*time.Second, has("link-"+second.Peer.String()))
	d.HandleControl(second, []byte("ping"))
	waitUntil(t, "the plugin's reply through the Host service", 5*time.Second, func() bool {
		for _, s := range mesh.Sent() {
			if s.Link == second.ID && s.Kind == wire.KindDiscovery && string(s.Body) == "echo:ping" {
				return true
			}
		}
		return false
	})
	mesh.RemoveLink(second.ID)
	d.LinkDown(second)
	waitUntil(t, "the link that went down to go", 5*time.Second, func() bool { return !has("link-" + second.Peer.String())() })
	if err := d.Deregister(core.Service{Name: "echo", Node: mesh.ID(), Port: 7}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the deregistered service to go", 5*time.Second, func() bool { return !has("echo")() })
	before := d.LastEvent()
	waitUntil(t, "a progress event", 2*time.Second, func() bool { return d.LastEvent().After(before) })
}

// TestPluginExitsWhenHostDies kills a host with SIGKILL and expects its
// plugin to exit on its own.
func TestPluginExitsWhenHostDies(t *testing.T) {
	host := exec.Command(os.Args[0], "-test.run=^$")
	host.Env = append(os.Environ(), roleEnv+"=host")
	out, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	host.Stderr = &stderr
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer host.Wait()
	defer host.Process.Kill()
	pidLine := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		pidLine <- line
	}()
	var pid int
	select {
	case line := <-pidLine:
		if pid, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
			t.Fatalf("host printed %q; stderr: %s", line, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("host did not start its plugin; stderr: %s", stderr.String())
	}
	if !alive(pid) {
		t.Fatalf("plugin %d is not running", pid)
	}
	killed := time.Now()
	host.Process.Signal(syscall.SIGKILL)
	waitUntil(t, fmt.Sprintf("plugin %d to exit", pid), 5*time.Second, func() bool { return !alive(pid) })
	t.Logf("plugin exited %v after its host was killed", time.Since(killed).Round(time.Millisecond))
}

// alive reports whether pid runs (a zombie has finished).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// TestHandshakeMismatch: a host of another protocol version refuses the
// plugin.
func TestHandshakeMismatch(t *testing.T) {
	hs := sdk.Handshake
	hs.ProtocolVersion = 99
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  hs,
		Plugins:          plugin.PluginSet{sdk.DiscoveryPluginName: &sdk.DiscoveryPlugin{}},
		Cmd:              pluginCmd(),
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	defer client.Kill()
	if _, err := client.Client(); err == nil || !strings.Contains(err.Error(), "incompatible API version") {
		t.Fatalf("Client() = %v, want a protocol version error", err)
	}
}

// TestRunByHand: started without the host's cookie, a plugin says so on
// stderr, prints nothing on stdout and exits 1.
func TestRunByHand(t *testing.T) {
	cmd := pluginCmd()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q, want nothing", stdout.String())
	}
	if !strings.Contains(stderr.String(), "plugin") {
		t.Errorf("stderr: %q, want a notice", stderr.String())
	}
}

// lockedBuffer is a bytes.Buffer that a process may write while a test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
