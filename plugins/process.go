package plugins

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/astranet-go/astranet/sdk"
	"github.com/hashicorp/go-plugin"
)

// ErrClosed: the proxy was closed.
var ErrClosed = errors.New("plugins: closed")

// process is one run of a plugin binary and the client go-plugin dispensed.
type process struct {
	client  *plugin.Client
	raw     any // *sdk.DiscoveryClient or *sdk.RoutingClient
	pid     int
	started time.Time // launched; reset when it becomes current, for the hang check
	// stop kills the process through its exec.Cmd's context. go-plugin's
	// Kill cannot stop a process that has not finished its handshake (it
	// waits for the start to end first), and it waits for an answer a frozen
	// process never gives.
	stop context.CancelFunc
}

// launch starts the binary and completes the handshake, within ctx and the
// start timeout. When ctx ends first, the process is killed and launch
// returns once it is gone (or after KillTimeout, with an error that says
// so): nothing it started outlives it.
func launch(ctx context.Context, cfg Config, name string, p plugin.Plugin) (*process, error) {
	procCtx, stop := context.WithCancel(context.Background())
	cc := &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{name: p},
		Cmd:              exec.CommandContext(procCtx, cfg.Path, cfg.Args...),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         cfg.AutoMTLS,
		Logger:           cfg.Logger.Named(name),
		StartTimeout:     cfg.StartTimeout,
	}
	if len(cfg.Checksum) != 0 {
		cc.SecureConfig = &plugin.SecureConfig{Checksum: cfg.Checksum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cc)
	type result struct {
		raw any
		err error
	}
	done := make(chan result, 1)
	go func() {
		rpc, err := client.Client()
		if err != nil {
			done <- result{nil, err}
			return
		}
		raw, err := rpc.Dispense(name)
		done <- result{raw, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			client.Kill()
			stop()
			return nil, fmt.Errorf("plugins: starting %s: %w", cfg.Path, r.err)
		}
		p := &process{client: client, raw: r.raw, started: time.Now(), stop: stop}
		if rc := client.ReattachConfig(); rc != nil {
			p.pid = rc.Pid
		}
		return p, nil
	case <-ctx.Done():
		err := fmt.Errorf("plugins: starting %s: %w", cfg.Path, ctx.Err())
		// Killing the process ends the handshake wait at once (its stdout
		// closes); then go-plugin's Kill reaps it and ends its goroutines.
		stop()
		gone := make(chan struct{})
		go func() {
			defer close(gone)
			<-done
			client.Kill()
		}()
		select {
		case <-gone:
			return nil, err
		case <-time.After(cfg.KillTimeout):
			return nil, fmt.Errorf("%w; the plugin did not exit within %v", err, cfg.KillTimeout)
		}
	}
}

// exited reports whether the process has ended.
func (p *process) exited() bool { return p.client.Exited() }

// waitExit waits up to d for the process to end; a stream that broke because
// the process died breaks a moment before go-plugin reaps it.
func (p *process) waitExit(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !p.exited() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// kill stops the process: go-plugin asks the plugin to exit and kills it
// two seconds later, but its request waits for an answer that a frozen
// process never gives, so past timeout the process gets SIGKILL.
func (p *process) kill(timeout time.Duration) error {
	defer p.stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.client.Kill()
	}()
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
	}
	p.stop()
	select {
	case <-done:
		return nil
	case <-time.After(time.Second):
		return fmt.Errorf("plugins: plugin did not exit within %v", timeout)
	}
}
