package sdk_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/sdk"
	"github.com/astranet-go/astranet/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"go.uber.org/goleak"
)

// The test binary doubles as a plugin and as a host, chosen by this variable,
// so that the tests can run both as real processes without building anything.
const roleEnv = "ASTRANET_SDK_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "plugin":
		if err := sdk.Serve(sdk.ServeConfig{Discovery: newEcho()}); err != nil {
			os.Exit(2)
		}
		os.Exit(0)
	case "host":
		os.Exit(runHost())
	}
	goleak.VerifyTestMain(m, goPluginLeaks()...)
}

// goPluginLeaks lists the goroutines that go-plugin's client leaves behind
// after Kill: its stdio copier, which ends when the plugin's stdio pipes hit
// EOF a moment later. Nothing else is ignored.
func goPluginLeaks() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/hashicorp/go-plugin.(*GRPCStdioClient).Run"),
	}
}

// pluginCmd runs this binary as a plugin.
func pluginCmd() *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, roleEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// A race-enabled binary sleeps a second at exit unless told not to.
	cmd.Env = append(cmd.Env, roleEnv+"=plugin", "GORACE=atexit_sleep_ms=0")
	return cmd
}

// runHost loads the plugin, starts its discovery, prints the plugin's pid and
// waits (at most a minute) to be killed.
func runHost() int {
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{sdk.DiscoveryPluginName: &sdk.DiscoveryPlugin{}},
		Cmd:              pluginCmd(),
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	defer client.Kill()
	rpc, err := client.Client()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	raw, err := rpc.Dispense(sdk.DiscoveryPluginName)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	d := raw.(*sdk.DiscoveryClient)
	if err := d.Start(sdktest.NewMesh(), func([]core.Service) {}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(client.ReattachConfig().Pid)
	time.Sleep(time.Minute)
	return 0
}

// loadEcho starts this binary as a plugin and returns its discovery client.
func loadEcho(t *testing.T, cfg sdk.ClientConfig) (*plugin.Client, *sdk.DiscoveryClient) {
	t.Helper()
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{sdk.DiscoveryPluginName: &sdk.DiscoveryPlugin{Config: cfg}},
		Cmd:              pluginCmd(),
		SkipHostEnv:      true,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "host", Output: &testWriter{t}, Level: hclog.Debug}),
	})
	t.Cleanup(client.Kill)
	rpc, err := client.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := rpc.Dispense(sdk.DiscoveryPluginName)
	if err != nil {
		t.Fatal(err)
	}
	return client, raw.(*sdk.DiscoveryClient)
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

func waitUntil(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %v waiting for %s", d, what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
