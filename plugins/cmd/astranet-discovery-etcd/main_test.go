package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
)

// The tests run against a real etcd server on 127.0.0.1 with a temporary
// data directory, and a plugin binary; the first test that needs them starts
// the server and builds the binary, so that tests (and fuzz targets) that need
// neither do not wait for them. Without an etcd binary on PATH the tests that
// need it are skipped, so that the README's test command works on a fresh
// machine, unless ASTRANET_REQUIRE_ETCD is set, as CI (.ci/run) sets it: then
// they fail.
var (
	etcdEndpoint string
	etcdBin      string
	pluginBin    string
	noEtcd       string // why the tests that need etcd skip; "" if they run
	etcdErr      error  // setting up the server or the binary failed

	etcdOnce sync.Once
	etcdDir  string // holds the server's data and the plugin binary
	stopEtcd func()
)

// needEtcd starts the shared etcd server and builds the plugin binary, once,
// and skips t when there is no etcd server to test against.
func needEtcd(t testing.TB) {
	t.Helper()
	etcdOnce.Do(setUpEtcd)
	switch {
	case etcdErr != nil:
		t.Fatal(etcdErr)
	case noEtcd != "" && os.Getenv("ASTRANET_REQUIRE_ETCD") != "":
		t.Fatal(noEtcd)
	case noEtcd != "":
		t.Skip(noEtcd)
	}
}

func setUpEtcd() {
	etcdPath, err := exec.LookPath("etcd")
	etcdBin = etcdPath
	if err != nil {
		noEtcd = "these tests need an etcd server binary on PATH: " +
			"install Debian's etcd-server package (apt-get install -y etcd-server)"
		return
	}
	if etcdDir, etcdErr = os.MkdirTemp("", "astranet-etcd-test"); etcdErr != nil {
		return
	}
	pluginBin = filepath.Join(etcdDir, "astranet-discovery-etcd")
	if out, err := exec.Command("go", "build", "-o", pluginBin, ".").CombinedOutput(); err != nil {
		etcdErr = fmt.Errorf("building the plugin: %v\n%s", err, out)
		return
	}
	stopEtcd, etcdErr = startEtcd(etcdPath, etcdDir)
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	code := m.Run()
	if stopEtcd != nil {
		stopEtcd()
	}
	if etcdDir != "" {
		os.RemoveAll(etcdDir)
	}
	if code == 0 {
		// go-plugin's client leaves its stdio copier running for a moment
		// after Kill; it ends when the plugin's pipes close.
		if err := goleak.Find(goleak.IgnoreAnyFunction("github.com/hashicorp/go-plugin.(*GRPCStdioClient).Run")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	return code
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startEtcd runs a one-member etcd on 127.0.0.1 and waits until it answers.
func startEtcd(bin, dir string) (func(), error) {
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	stop, err := runEtcd(bin, dir, cport, pport)
	if err == nil {
		etcdEndpoint = "127.0.0.1:" + strconv.Itoa(cport)
	}
	return stop, err
}

// runEtcd runs a one-member etcd with its data in dir, on the given client
// and peer ports, and waits until it answers.
func runEtcd(bin, dir string, cport, pport int) (func(), error) {
	client := "http://127.0.0.1:" + strconv.Itoa(cport)
	peer := "http://127.0.0.1:" + strconv.Itoa(pport)
	cmd := exec.Command(bin,
		"--name", "test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer, "--log-level", "error")
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:" + strconv.Itoa(cport)}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		stop()
		return nil, err
	}
	defer cli.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			b, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			return nil, fmt.Errorf("etcd did not answer within 15s: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
