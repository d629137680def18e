package examples_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// examples are the programs in this folder and what each must print.
var examples = []struct {
	dir  string
	want []string
}{
	{"echo", []string{`bound service "echo"`, `sent "hello, astranet", got back "hello, astranet"`}},
	{"pipe", []string{`listens on pipe address "hub"`, `hub dialled "spoke-1": hello from spoke-1`,
		`hub dialled "spoke-2": hello from spoke-2`, `hub dialled "spoke-3": hello from spoke-3`}},
	{"http", []string{"GET http://hello/path via Transport.DialContext: 200 OK", "GET /path (host hello",
		"via HttpDial: 200 OK", "GET /other/path"}},
	{"tls", []string{"node-b verified the certificate of node-a", "node-a verified the certificate of node-b",
		`sent "sealed in TLS", got back "sealed in TLS"`, "cannot join"}},
}

// TestExamples builds every example and runs it: each must exit 0 within
// 30 s and print what it shows.
func TestExamples(t *testing.T) {
	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	for _, e := range examples {
		args = append(args, "./"+e.dir)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, e := range examples {
		t.Run(e.dir, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, filepath.Join(bin, e.dir)).CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v (timeout: %v)\n%s", e.dir, err, ctx.Err() != nil, out)
			}
			for _, w := range e.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("no %q in the output of %s:\n%s", w, e.dir, out)
				}
			}
		})
	}
}
