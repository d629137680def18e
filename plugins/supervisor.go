package plugins

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// checkInterval is how often the supervisor looks at a plugin that has given
// no sign of trouble: the backstop behind the broken-stream signal.
const checkInterval = 100 * time.Millisecond

// supervisor keeps one plugin process running: it restarts it with backoff
// when it dies or hangs. The proxies hook in what a fresh process needs.
type supervisor struct {
	cfg       Config
	log       hclog.Logger
	name      string
	newPlugin func() plugin.Plugin
	// activate readies a fresh process (Configure, replays, streams) before
	// it becomes current.
	activate func(ctx context.Context, p *process) error
	// hung reports a live process that stopped answering; nil: never.
	hung func(p *process) bool
	// down is told of a process found dead or hung, before the restarts.
	down func(p *process, why string)
	// up is told of a process that just became current.
	up func(p *process)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	broken chan struct{}

	mu       sync.Mutex
	cur      atomic.Pointer[process]
	closed   bool
	restarts atomic.Int64
	lastGap  atomic.Int64 // nanoseconds from the last crash seen to serving again

	// Used by the watcher goroutine only (start sets them before it runs).
	serving time.Time     // when the current process began to serve
	backoff time.Duration // the wait before the next restart
}

func (s *supervisor) init() {
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.broken = make(chan struct{}, 1)
}

// start makes p current (it is already activated) and begins watching it.
func (s *supervisor) start(p *process) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.serving, s.backoff = time.Now(), s.cfg.MinBackoff
	p.started = s.serving // the hang check counts from here, not from launch
	s.cur.Store(p)
	s.up(p)
	s.wg.Add(1)
	go s.watch()
	return true
}

// streamBroke is the clients' OnBroken: it wakes the watcher at once.
func (s *supervisor) streamBroke(error) {
	select {
	case s.broken <- struct{}{}:
	default:
	}
}

func (s *supervisor) watch() {
	defer s.wg.Done()
	t := time.NewTicker(checkInterval)
	defer t.Stop()
	for {
		brokeNow := false
		select {
		case <-s.ctx.Done():
			return
		case <-s.broken:
			brokeNow = true
		case <-t.C:
		}
		p := s.cur.Load()
		if p == nil {
			continue
		}
		why := ""
		switch {
		case p.exited() || (brokeNow && p.waitExit(s.ctx, 250*time.Millisecond)):
			why = "plugin process exited"
		case s.hung != nil && s.hung(p):
			why = "plugin stopped answering"
		default:
			continue
		}
		detected := time.Now()
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		s.cur.Store(nil)
		s.mu.Unlock()
		// A process that served for a while earns a quick restart; one that
		// dies soon after starting waits longer each time, up to MaxBackoff,
		// so that a plugin crashing at once is not relaunched every few
		// milliseconds for ever.
		if detected.Sub(s.serving) > s.cfg.MaxBackoff {
			s.backoff = s.cfg.MinBackoff
		}
		s.log.Warn("plugin down; restarting", "plugin", s.name, "reason", why, "after", s.backoff)
		s.down(p, why)
		if err := p.kill(s.cfg.KillTimeout); err != nil {
			s.log.Warn("killing the old plugin process", "error", err)
		}
		if !s.restart(detected) {
			return
		}
	}
}

// restart launches and activates processes, with backoff, until one serves
// or the supervisor closes. The backoff carries over to the next crash.
func (s *supervisor) restart(detected time.Time) bool {
	for attempt := 1; ; attempt++ {
		wait := s.backoff
		s.backoff = min(2*s.backoff, s.cfg.MaxBackoff)
		jittered := wait - time.Duration(rand.Int64N(int64(wait)/4+1))
		select {
		case <-s.ctx.Done():
			return false
		case <-time.After(jittered):
		}
		p, err := launch(s.ctx, s.cfg, s.name, s.newPlugin())
		if err == nil {
			if err = s.activate(s.ctx, p); err != nil {
				p.kill(s.cfg.KillTimeout)
			}
		}
		if err == nil {
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				p.kill(s.cfg.KillTimeout)
				return false
			}
			s.serving = time.Now()
			p.started = s.serving
			s.cur.Store(p)
			s.up(p)
			s.mu.Unlock()
			gap := time.Since(detected)
			s.restarts.Add(1)
			s.lastGap.Store(int64(gap))
			s.log.Info("plugin restarted", "plugin", s.name, "attempt", attempt, "took", gap)
			return true
		}
		if s.ctx.Err() != nil {
			return false
		}
		s.log.Warn("plugin restart failed", "plugin", s.name, "attempt", attempt, "error", err)
	}
}

// close stops supervising and returns the current process, if any, for the
// caller to stop. A restart in progress ends first: a process still in its
// handshake is killed (launch waits for it to go) and one being activated is
// killed by restart, so none outlives close.
func (s *supervisor) close() *process {
	s.mu.Lock()
	s.closed = true
	p := s.cur.Swap(nil)
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return p
}
