package plugins

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/sdk"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// Routing is a core.Routing served by a plugin process, supervised. While
// the plugin is down the node keeps the last table it published.
type Routing struct {
	cfg Config
	log hclog.Logger
	sup supervisor

	mu      sync.Mutex
	pending *process
	mesh    core.Mesh
	publish func([]core.Route)
	started bool
	closed  bool
	stale   bool
	last    []core.Route // the current plugin's last table
	held    []core.Route // the table before a crash, kept through the grace
	grace   *time.Timer  // ends the grace
	until   time.Time
}

// LoadRouting starts the routing plugin cfg names and completes its
// handshake; the returned Routing configures it when the node starts it.
func LoadRouting(ctx context.Context, cfg Config) (*Routing, error) {
	if err := cfg.Verify(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &Routing{cfg: cfg, log: cfg.Logger.Named("routing-plugin")}
	r.sup = supervisor{cfg: cfg, log: r.log, name: sdk.RoutingPluginName, newPlugin: r.newPlugin,
		activate: r.activate, down: r.down, up: r.up}
	r.sup.init()
	p, err := launch(ctx, cfg, sdk.RoutingPluginName, r.newPlugin())
	if err != nil {
		return nil, err
	}
	r.pending = p
	return r, nil
}

func (r *Routing) newPlugin() plugin.Plugin {
	return &sdk.RoutingPlugin{Logger: r.log, Config: sdk.ClientConfig{
		Options:  r.cfg.Options,
		Timeout:  r.cfg.CallTimeout,
		Logger:   r.log,
		OnBroken: r.sup.streamBroke,
	}}
}

func routingClient(p *process) *sdk.RoutingClient { return p.raw.(*sdk.RoutingClient) }

// Start configures the plugin for m and begins supervising it.
func (r *Routing) Start(m core.Mesh, publish func([]core.Route)) error {
	r.mu.Lock()
	if r.closed || r.started {
		r.mu.Unlock()
		return errors.New("plugins: routing closed or already started")
	}
	r.started, r.mesh, r.publish = true, m, publish
	p := r.pending
	r.pending = nil
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.sup.ctx, r.cfg.StartTimeout)
	defer cancel()
	if err := r.activate(ctx, p); err != nil {
		p.kill(r.cfg.KillTimeout)
		return err
	}
	if !r.sup.start(p) {
		routingClient(p).Close()
		p.kill(r.cfg.KillTimeout)
		return ErrClosed
	}
	return nil
}

func (r *Routing) activate(ctx context.Context, p *process) error {
	r.mu.Lock()
	m := r.mesh
	r.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	if err := routingClient(p).Configure(cctx, m); err != nil {
		routingClient(p).Close()
		return err
	}
	return nil
}

// up opens the session of a process that just became current. A restarted
// plugin knows only its neighbours at first: for RoutingGrace, routes of the
// old table that it has not yet learnt are kept while their links are up.
func (r *Routing) up(p *process) {
	r.mu.Lock()
	m := r.mesh
	if r.held != nil {
		r.until = time.Now().Add(r.cfg.RoutingGrace)
		r.grace = time.AfterFunc(r.cfg.RoutingGrace, r.endGrace)
	}
	r.mu.Unlock()
	routingClient(p).Run(m, func(rs []core.Route) { r.published(p, rs) })
}

func (r *Routing) published(p *process, rs []core.Route) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.sup.cur.Load() != p {
		return
	}
	if r.stale {
		r.stale = false
		r.log.Info("routing plugin serving again")
	}
	r.last = rs
	r.publish(r.withHeldLocked(rs))
}

// withHeldLocked adds to rs, during the grace, the held routes to
// destinations rs lacks whose links are still up.
func (r *Routing) withHeldLocked(rs []core.Route) []core.Route {
	if r.held == nil || time.Now().After(r.until) {
		return rs
	}
	have := make(map[core.NodeID]bool, len(rs))
	for _, x := range rs {
		have[x.Dst] = true
	}
	live := make(map[uint64]bool)
	for _, l := range r.mesh.Links() {
		live[l.ID] = true
	}
	out := slices.Clone(rs)
	for _, x := range r.held {
		if !have[x.Dst] && live[x.Link] {
			out = append(out, x)
		}
	}
	return out
}

func (r *Routing) endGrace() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held == nil || r.closed {
		return
	}
	r.held = nil
	if r.sup.cur.Load() != nil && r.last != nil {
		r.publish(r.last)
	}
}

func (r *Routing) down(p *process, why string) {
	r.mu.Lock()
	r.stale = true
	if r.held == nil {
		r.held = r.last
	}
	r.last = nil
	if r.grace != nil {
		r.grace.Stop()
	}
	r.mu.Unlock()
	r.log.Warn("routing plugin down; the node keeps its last table", "reason", why)
	routingClient(p).Close()
}

// LinkUp passes a link event to the plugin without waiting; a plugin that is
// down or starting misses it, but learns the links when it is configured and
// again as its session opens.
func (r *Routing) LinkUp(l core.LinkInfo) {
	if p := r.sup.cur.Load(); p != nil {
		routingClient(p).LinkUp(l)
	}
}

// LinkDown passes a link event to the plugin without waiting.
func (r *Routing) LinkDown(l core.LinkInfo) {
	if p := r.sup.cur.Load(); p != nil {
		routingClient(p).LinkDown(l)
	}
}

// HandleControl passes a routing message to the plugin without waiting.
func (r *Routing) HandleControl(from core.LinkInfo, body []byte) {
	if p := r.sup.cur.Load(); p != nil {
		routingClient(p).HandleControl(from, body)
	}
}

// Stale reports whether the plugin is down and the node is using the last
// table it published.
func (r *Routing) Stale() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stale
}

// Restarts counts the plugin's restarts.
func (r *Routing) Restarts() int { return int(r.sup.restarts.Load()) }

// LastRestart is how long the last restart took.
func (r *Routing) LastRestart() time.Duration { return time.Duration(r.sup.lastGap.Load()) }

// Pid is the plugin process's id, 0 while it is down.
func (r *Routing) Pid() int {
	p := r.sup.cur.Load()
	if p == nil {
		r.mu.Lock()
		p = r.pending
		r.mu.Unlock()
	}
	if p == nil {
		return 0
	}
	return p.pid
}

// Close stops the supervision and the plugin, waiting at most KillTimeout.
// Nothing is published once it returns.
func (r *Routing) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	pending := r.pending
	r.pending = nil
	if r.grace != nil {
		r.grace.Stop()
	}
	r.mu.Unlock()
	p := r.sup.close()
	var err error
	for _, q := range []*process{p, pending} {
		if q != nil {
			routingClient(q).Close()
			err = errors.Join(err, q.kill(r.cfg.KillTimeout))
		}
	}
	return err
}

var _ core.Routing = (*Routing)(nil)
