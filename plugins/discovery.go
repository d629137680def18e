package plugins

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/sdk"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// retrySync is how soon registrations that a plugin failed to take are
// offered again.
const retrySync = time.Second

// Discovery is a core.Discovery served by a plugin process, supervised.
type Discovery struct {
	cfg Config
	log hclog.Logger
	sup supervisor

	mu       sync.Mutex
	pending  *process // launched by LoadDiscovery, not yet started
	mesh     core.Mesh
	publish  func([]core.Service)
	want     map[serviceKey]core.Service // the node's registrations
	have     map[*process]map[serviceKey]core.Service
	last     []core.Service
	stale    bool
	started  bool
	closed   bool
	kick     chan struct{}
	syncDone chan struct{}
}

type serviceKey struct {
	name string
	node core.NodeID
	port uint32
}

func keyOf(s core.Service) serviceKey { return serviceKey{s.Name, s.Node, s.Port} }

// LoadDiscovery starts the discovery plugin cfg names and completes its
// handshake; the returned Discovery configures it when the node starts it.
func LoadDiscovery(ctx context.Context, cfg Config) (*Discovery, error) {
	if err := cfg.Verify(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	d := &Discovery{cfg: cfg, log: cfg.Logger.Named("discovery-plugin"), want: make(map[serviceKey]core.Service),
		have: make(map[*process]map[serviceKey]core.Service), kick: make(chan struct{}, 1)}
	d.sup = supervisor{cfg: cfg, log: d.log, name: sdk.DiscoveryPluginName, newPlugin: d.newPlugin,
		activate: d.activate, hung: d.hung, down: d.down, up: d.up}
	d.sup.init()
	p, err := launch(ctx, cfg, sdk.DiscoveryPluginName, d.newPlugin())
	if err != nil {
		return nil, err
	}
	d.pending = p
	return d, nil
}

func (d *Discovery) newPlugin() plugin.Plugin {
	return &sdk.DiscoveryPlugin{Logger: d.log, Config: sdk.ClientConfig{
		Options:          d.cfg.Options,
		Timeout:          d.cfg.CallTimeout,
		ProgressInterval: d.cfg.ProgressInterval,
		Logger:           d.log,
		OnBroken:         d.sup.streamBroke,
	}}
}

func client(p *process) *sdk.DiscoveryClient { return p.raw.(*sdk.DiscoveryClient) }

// Start configures the plugin for m and begins supervising it; the views it
// publishes go to publish.
func (d *Discovery) Start(m core.Mesh, publish func([]core.Service)) error {
	d.mu.Lock()
	if d.closed || d.started {
		d.mu.Unlock()
		return errors.New("plugins: discovery closed or already started")
	}
	d.started, d.mesh, d.publish = true, m, publish
	p := d.pending
	d.pending = nil
	d.syncDone = make(chan struct{})
	d.mu.Unlock()
	go d.syncLoop()
	ctx, cancel := context.WithTimeout(d.sup.ctx, d.cfg.StartTimeout)
	defer cancel()
	if err := d.activate(ctx, p); err != nil {
		p.kill(d.cfg.KillTimeout)
		return err
	}
	if !d.sup.start(p) {
		d.drop(p)
		p.kill(d.cfg.KillTimeout)
		return ErrClosed
	}
	return nil
}

// activate configures a fresh process and replays the registrations into it.
func (d *Discovery) activate(ctx context.Context, p *process) error {
	dc := client(p)
	d.mu.Lock()
	m, want := d.mesh, slices.Collect(maps.Values(d.want))
	d.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, d.cfg.CallTimeout)
	defer cancel()
	if err := dc.Configure(cctx, m); err != nil {
		dc.Close()
		return err
	}
	have := make(map[serviceKey]core.Service, len(want))
	for _, s := range want {
		if err := dc.Register(s); err != nil {
			if retryable(err) {
				dc.Close()
				return err
			}
			d.log.Warn("plugin refused a registration", "service", s.Name, "port", s.Port, "error", err)
		}
		have[keyOf(s)] = s
	}
	d.mu.Lock()
	d.have[p] = have
	d.mu.Unlock()
	return nil
}

// up opens the Watch stream of a process that just became current, and
// catches it up with registrations made while it started. It runs under the
// supervisor's lock, and waits on nothing.
func (d *Discovery) up(p *process) {
	client(p).Watch(func(ss []core.Service) { d.published(p, ss) })
	d.nudge()
}

// published passes a view on to the node if p is the current process.
func (d *Discovery) published(p *process, ss []core.Service) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.sup.cur.Load() != p {
		return
	}
	if d.stale {
		d.stale = false
		d.log.Info("discovery plugin serving again; view fresh")
	}
	d.last = ss
	d.publish(ss)
}

func (d *Discovery) hung(p *process) bool {
	last := client(p).LastEvent()
	if last.IsZero() {
		last = p.started
	}
	return time.Since(last) > 3*d.cfg.ProgressInterval
}

func (d *Discovery) down(p *process, why string) {
	d.mu.Lock()
	d.stale = true
	n := len(d.last)
	d.mu.Unlock()
	d.log.Warn("discovery plugin down; serving its last view, stale", "services", n, "reason", why)
	d.drop(p)
}

func (d *Discovery) drop(p *process) {
	client(p).Close()
	d.mu.Lock()
	delete(d.have, p)
	d.mu.Unlock()
}

// Register records s for the plugin and returns at once: a worker brings
// the plugin in line, and a restarted plugin gets every registration again.
// A listener without a name is not for discovery, as in the embedded mesh:
// it is not passed on.
func (d *Discovery) Register(s core.Service) error {
	if s.Name == "" {
		return nil
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	s.Metadata = maps.Clone(s.Metadata)
	d.want[keyOf(s)] = s
	d.mu.Unlock()
	d.nudge()
	return nil
}

// Deregister withdraws s, like Register without waiting on the plugin.
func (d *Discovery) Deregister(s core.Service) error {
	if s.Name == "" {
		return nil
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	delete(d.want, keyOf(s))
	d.mu.Unlock()
	d.nudge()
	return nil
}

func (d *Discovery) nudge() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// syncLoop makes the current process's registrations match the node's.
func (d *Discovery) syncLoop() {
	defer close(d.syncDone)
	retry := time.NewTimer(retrySync)
	defer retry.Stop()
	for {
		select {
		case <-d.sup.ctx.Done():
			return
		case <-d.kick:
		case <-retry.C:
		}
		if !d.syncOnce() {
			retry.Reset(retrySync)
		}
	}
}

// syncOnce registers and deregisters what differs; false if some call failed
// in a way worth retrying.
func (d *Discovery) syncOnce() bool {
	p := d.sup.cur.Load()
	if p == nil {
		return true // the restart replays everything
	}
	d.mu.Lock()
	want := maps.Clone(d.want)
	have := maps.Clone(d.have[p])
	d.mu.Unlock()
	if have == nil {
		return true
	}
	dc := client(p)
	// The first call that fails in a way worth retrying ends the round: a
	// plugin that did not answer one call would likely time out on the rest,
	// one CallTimeout each, and hold up Close as long.
	ok := true
sync:
	for k, s := range want {
		if h, found := have[k]; found && maps.Equal(h.Metadata, s.Metadata) {
			continue
		}
		if err := dc.Register(s); err != nil && retryable(err) {
			ok = false
			break sync
		} else if err != nil {
			d.log.Warn("plugin refused a registration", "service", s.Name, "port", s.Port, "error", err)
		}
		have[k] = s
	}
	for k, s := range have {
		if !ok {
			break
		}
		if _, found := want[k]; found {
			continue
		}
		if err := dc.Deregister(s); err != nil && retryable(err) {
			ok = false
			break
		}
		delete(have, k)
	}
	d.mu.Lock()
	if _, current := d.have[p]; current {
		d.have[p] = have
	}
	d.mu.Unlock()
	return ok
}

// retryable tells a plugin that could not answer from one that said no.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.AlreadyExists, codes.NotFound, codes.PermissionDenied:
		return false
	}
	return true
}

// LinkUp passes a link event to the plugin without waiting; a plugin that
// is down learns the links when it is configured again.
func (d *Discovery) LinkUp(l core.LinkInfo) {
	if p := d.sup.cur.Load(); p != nil {
		client(p).LinkUp(l)
	}
}

// LinkDown passes a link event to the plugin without waiting.
func (d *Discovery) LinkDown(l core.LinkInfo) {
	if p := d.sup.cur.Load(); p != nil {
		client(p).LinkDown(l)
	}
}

// HandleControl passes a discovery message to the plugin without waiting; a
// plugin that is down loses it, as a link might.
func (d *Discovery) HandleControl(from core.LinkInfo, body []byte) {
	if p := d.sup.cur.Load(); p != nil {
		client(p).HandleControl(from, body)
	}
}

// Stale reports whether the plugin is down and the node is reading the last
// view it published.
func (d *Discovery) Stale() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stale
}

// Restarts counts the plugin's restarts.
func (d *Discovery) Restarts() int { return int(d.sup.restarts.Load()) }

// LastRestart is how long the last restart took, from the crash being seen
// to the new process serving.
func (d *Discovery) LastRestart() time.Duration { return time.Duration(d.sup.lastGap.Load()) }

// Pid is the plugin process's id, 0 while it is down.
func (d *Discovery) Pid() int {
	p := d.sup.cur.Load()
	if p == nil {
		d.mu.Lock()
		p = d.pending
		d.mu.Unlock()
	}
	if p == nil {
		return 0
	}
	return p.pid
}

// Close stops the supervision and the plugin, waiting at most KillTimeout
// for it to exit. Nothing is published once it returns.
func (d *Discovery) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	pending, started := d.pending, d.started
	d.pending = nil
	d.mu.Unlock()
	p := d.sup.close()
	// Close the clients first: that cancels a registration in flight, which
	// the sync goroutine may be waiting on.
	for _, q := range []*process{p, pending} {
		if q != nil {
			client(q).Close()
		}
	}
	if started {
		<-d.syncDone
	}
	var err error
	for _, q := range []*process{p, pending} {
		if q != nil {
			err = errors.Join(err, q.kill(d.cfg.KillTimeout))
		}
	}
	return err
}

var _ core.Discovery = (*Discovery)(nil)
