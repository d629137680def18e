package plugins_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// Plugin binaries the tests run, built once by TestMain.
var (
	filePlugin    string // plugins/cmd/astranet-discovery-file
	examplePlugin string // examples/plugin/plugin
	policyPlugin  string // plugins/cmd/astranet-routing-policy
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "astranet-plugins-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	filePlugin = filepath.Join(dir, "astranet-discovery-file")
	examplePlugin = filepath.Join(dir, "example-plugin")
	policyPlugin = filepath.Join(dir, "astranet-routing-policy")
	for bin, pkg := range map[string]string{
		filePlugin:    "./cmd/astranet-discovery-file",
		examplePlugin: "../examples/plugin/plugin",
		policyPlugin:  "./cmd/astranet-routing-policy",
	} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(goPluginLeaks()...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// goPluginLeaks: go-plugin's client leaves its stdio copier running for a
// moment after Kill; it ends when the plugin's pipes close. Only that.
func goPluginLeaks() []goleak.Option {
	return []goleak.Option{goleak.IgnoreAnyFunction("github.com/hashicorp/go-plugin.(*GRPCStdioClient).Run")}
}
