package routing

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	"github.com/hashicorp/go-hclog"
)

// smallMessage is the largest body that fits the smallest frame a peer may
// announce (less the CONTROL kind byte).
const smallMessage = wire.MinFramePayload - 1

var _ core.Routing = (*Routing)(nil)

// Routing is the embedded distance-vector routing of one node. Create it
// with New and hand it to core.New in core.Options.Routing; the node calls
// Start, feeds it events and calls Close. Its methods are safe for
// concurrent use.
type Routing struct {
	opts Options
	log  hclog.Logger

	// Set by Start, read-only afterwards.
	mesh    core.Mesh
	self    core.NodeID
	publish func([]core.Route)

	mu            sync.Mutex
	router        bool // set by Start, cleared by Withdraw: advertise transit routes
	started       bool
	closed        bool
	seqno         uint16 // of the route to this node; only this node changes it
	neighbours    map[uint64]*neighbour
	epoch         uint64 // counts LinkUp calls; see reconcile
	dests         map[core.NodeID]*dest
	dirty         map[core.NodeID]struct{} // to send in the next triggered update
	lastTriggered time.Time
	tableChanged  bool

	// What run sends and publishes next, in the order it was decided: sends
	// never happen under mu (Mesh.Send takes the node's locks and may call
	// LinkDown), and one goroutine doing them keeps messages to a neighbour
	// in order, so that a stale update never overtakes a newer one.
	queue      []outgoing
	queueBytes map[uint64]int // per link
	table      []core.Route
	tableReady bool

	wake chan struct{} // run has work: messages queued or a triggered update due
	done chan struct{}
	wg   sync.WaitGroup
}

// outgoing is one queued message.
type outgoing struct {
	link uint64
	body []byte
}

// maxQueue bounds the bytes queued for sending to one neighbour (half of
// what core lets a link's control queue hold). Beyond it messages to that
// neighbour are dropped: the next periodic update repairs what they would
// have said. A budget per neighbour, so that a full table for many
// neighbours at once does not starve some of them every round.
const maxQueue = 2 << 20

// neighbour is one link and what routing knows of it.
type neighbour struct {
	info   core.LinkInfo
	cost   uint16
	router bool   // the peer may be used as a transit hop
	epoch  uint64 // r.epoch when it came up
	small  bool   // refused a message as too large: send it small ones
}

// route is what one neighbour advertised for one destination.
type route struct {
	link    uint64
	peer    core.NodeID
	seqno   uint16
	metric  uint16 // as advertised, without the link's cost
	expires time.Time
	updated time.Time
}

// dest is everything known about one destination node.
type dest struct {
	id     core.NodeID
	routes map[uint64]*route // by link

	selected  *route
	selMetric uint16 // the selected route's metric when selected (what is advertised)
	selSeqno  uint16
	selLink   uint64

	hasFD  bool
	fd     distance
	usedAt time.Time // last time a route was selected; starts the SourceGC clock

	retractUntil time.Time     // advertise a retraction until then
	requestedAt  time.Time     // last seqno request this node started
	requestSeqno uint16        // the seqno it asked for
	requestBest  uint64        // the link of the best route when it asked
	requestWait  time.Duration // before asking for it again, if still starved
	requests     int           // seqno requests started, to rotate their target

	forwarded bool // a request was forwarded, at fwdAt
	fwdAt     time.Time
}

// New returns the routing for one node, with opts' zero fields set to their
// defaults. Start checks the options.
func New(opts Options) *Routing {
	opts.fill()
	return &Routing{
		opts:       opts,
		log:        opts.Logger.Named("routing"),
		neighbours: make(map[uint64]*neighbour),
		dests:      make(map[core.NodeID]*dest),
		dirty:      make(map[core.NodeID]struct{}),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
}

// Start begins routing for m: it originates this node's route with a fresh
// sequence number and starts the timer goroutine that Close stops.
func (r *Routing) Start(m core.Mesh, publish func([]core.Route)) error {
	if err := r.opts.Verify(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return errors.New("routing: Start after Close")
	case r.started:
		return errors.New("routing: started twice")
	}
	r.mesh = m
	r.self = m.ID()
	r.router = m.Caps()&wire.CapRouter != 0
	r.publish = publish
	r.log = r.log.With("node", r.self.String())
	r.seqno = uint16(rand.Uint32())
	r.started = true
	r.wg.Add(1)
	go r.run()
	return nil
}

// Close stops routing and waits for its goroutine, which is the only one
// that publishes: nothing is published once Close returns.
func (r *Routing) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	started := r.started
	r.queue, r.table = nil, nil
	r.mu.Unlock()
	if started {
		close(r.done)
		r.wg.Wait()
	}
	return nil
}

// running reports whether events are to be handled. Caller holds r.mu.
func (r *Routing) running() bool { return r.started && !r.closed }

// Withdraw stops routing transit through this node: it retracts (metric
// Infinity) every route it advertised, to every neighbour, and from then on
// advertises only itself, as a node without wire.CapRouter does. Node.Shutdown
// calls it (core.Withdrawer) as the node begins to drain, so that neighbours
// route around it before it closes rather than have their dials refused.
// Before Start and after Close it does nothing.
func (r *Routing) Withdraw() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running() || !r.router {
		return
	}
	now := time.Now()
	var entries []entry
	for _, d := range r.dests {
		// Retractions it still holds go too: one may be waiting in a
		// triggered update, which is not sent now.
		if e, ok := r.advertised(d, now); ok {
			e.Metric = Infinity
			entries = append(entries, e)
		}
	}
	// A triggered update still waiting for TriggeredDelay would advertise
	// the routes again, and its neighbours would take them back: only this
	// node's own route stays to send.
	for id := range r.dirty {
		if id != r.self {
			delete(r.dirty, id)
		}
	}
	r.router = false
	r.sendEntries(entries, r.allNeighbours())
}

// LinkUp adds the neighbour on l and sends it this node's full update.
func (r *Routing) LinkUp(l core.LinkInfo) {
	r.mu.Lock()
	if !r.running() || l.Peer == r.self {
		r.mu.Unlock()
		return
	}
	n := r.neighbours[l.ID]
	if n == nil {
		r.epoch++
		n = &neighbour{epoch: r.epoch}
		r.neighbours[l.ID] = n
	}
	now := time.Now()
	n.info = l
	n.router = l.Caps&wire.CapRouter != 0
	r.setRTT(n, l.RTT, now)
	r.sendFull(now, []*neighbour{n})
	r.mu.Unlock()
}

// LinkDown withdraws every route through l at once, raises this node's own
// seqno and triggers an update.
func (r *Routing) LinkDown(l core.LinkInfo) {
	r.mu.Lock()
	if !r.running() || r.neighbours[l.ID] == nil {
		r.mu.Unlock()
		return
	}
	now := time.Now()
	r.dropLink(l.ID, now)
	// Routes to this node through the lost link are gone too. A newer seqno
	// makes every other path to it feasible at once, without waiting for
	// seqno requests to find their way here.
	r.seqno++
	r.dirty[r.self] = struct{}{}
	r.afterChange(now)
	r.mu.Unlock()
}

// HandleControl handles one routing message from the neighbour on from. A
// malformed message is dropped and logged at Debug.
func (r *Routing) HandleControl(from core.LinkInfo, body []byte) {
	m, err := decode(body)
	if err != nil {
		r.log.Debug("dropping routing message", "peer", from.Peer, "link", from.ID, "error", err)
		return
	}
	r.mu.Lock()
	n := r.neighbours[from.ID]
	if !r.running() || n == nil {
		// A message that raced with its link's LinkDown: the link is gone.
		r.mu.Unlock()
		return
	}
	now := time.Now()
	r.setRTT(n, from.RTT, now)
	switch m.Type {
	case typeUpdate:
		r.handleUpdate(n, m, now)
	case typeRequest:
		r.handleRequest(n, m.Request, now)
	}
	r.afterChange(now)
	r.mu.Unlock()
}

// handleUpdate records each entry of an update from n. Caller holds r.mu.
func (r *Routing) handleUpdate(n *neighbour, m message, now time.Time) {
	link := n.info.ID
	full := false
	for _, e := range m.Entries {
		if e.Dst == r.self {
			continue
		}
		if !n.router && e.Dst != n.info.Peer {
			// A node that forwards no transit streams offers no transit route.
			continue
		}
		d := r.dests[e.Dst]
		if e.Metric == Infinity {
			if d != nil && d.routes[link] != nil {
				delete(d.routes, link)
				r.reselect(d, now)
			}
			continue
		}
		if d == nil {
			if len(r.dests) >= r.opts.MaxDestinations {
				full = true
				continue
			}
			d = &dest{id: e.Dst, routes: make(map[uint64]*route)}
			r.dests[e.Dst] = d
		}
		rt := d.routes[link]
		if rt == nil {
			rt = &route{link: link, peer: n.info.Peer}
			d.routes[link] = rt
		} else if rt.seqno == e.Seqno && rt.metric == e.Metric {
			// A refresh: nothing to reselect (the common case).
			rt.expires, rt.updated = now.Add(m.Lifetime), now
			continue
		}
		rt.seqno, rt.metric = e.Seqno, e.Metric
		rt.expires, rt.updated = now.Add(m.Lifetime), now
		r.reselect(d, now)
	}
	if full {
		r.log.Debug("route table full: ignoring further destinations", "peer", n.info.Peer, "max", r.opts.MaxDestinations)
	}
}

// handleRequest answers, or forwards towards the origin, a seqno request from
// n. Caller holds r.mu.
func (r *Routing) handleRequest(n *neighbour, q request, now time.Time) {
	if q.Dst == r.self {
		if seqnoNewer(q.Seqno, r.seqno) {
			r.log.Trace("seqno request: raising own seqno", "from", r.seqno, "to", q.Seqno, "peer", n.info.Peer)
			r.seqno = q.Seqno
		}
		r.dirty[r.self] = struct{}{}
		return
	}
	d := r.dests[q.Dst]
	if d == nil {
		return
	}
	if d.selected != nil && !seqnoNewer(q.Seqno, d.selSeqno) {
		// The route this node has already satisfies the request.
		if r.router {
			r.dirty[d.id] = struct{}{}
		}
		return
	}
	// A peer may claim any hop count: never pass on more than this node
	// itself would ask with.
	hops := min(q.Hops, r.opts.RequestHops)
	if hops <= 1 {
		return // no hop left to pass on
	}
	if d.forwarded && now.Before(d.fwdAt.Add(r.opts.Interval)) {
		// One forward per destination per interval: a request is already on
		// its way, and a requester raising the seqno each time must not get
		// a flood through for each.
		return
	}
	// Towards the origin: the selected next hop, else the neighbour with the
	// best (perhaps unfeasible) route, never back to the requester. A node
	// that knows no way on but had a route asks all its other neighbours: it
	// may have just lost the link the origin was behind. The dedup above
	// bounds the flood; a node that never reached the origin drops the
	// request, so that made-up ids cannot make one.
	var to *route
	if d.selected != nil && d.selected.link != n.info.ID {
		to = d.selected
	} else {
		best := uint16(Infinity)
		for _, rt := range d.routes {
			if m := r.total(rt); rt.link != n.info.ID && m < best {
				to, best = rt, m
			}
		}
	}
	if to == nil && !d.hasFD {
		return
	}
	d.forwarded, d.fwdAt = true, now
	body := appendRequest(nil, request{Dst: q.Dst, Seqno: q.Seqno, Hops: hops - 1})
	if to != nil {
		r.send(to.link, body)
		return
	}
	for link := range r.neighbours {
		if link != n.info.ID {
			r.send(link, body)
		}
	}
}

// dropLink forgets link and every route through it. Caller holds r.mu.
func (r *Routing) dropLink(link uint64, now time.Time) {
	delete(r.neighbours, link)
	for _, d := range r.dests {
		if d.routes[link] != nil {
			delete(d.routes, link)
			r.reselect(d, now)
		}
	}
}

// total is the metric of rt as seen from this node. Caller holds r.mu.
func (r *Routing) total(rt *route) uint16 {
	n := r.neighbours[rt.link]
	if n == nil {
		return Infinity
	}
	return addMetric(rt.metric, n.cost)
}

// reselect chooses d's route: the feasible one of smallest metric, keeping
// the current one unless another is better by switchMargin. It lowers the
// feasibility distance to what will be advertised, records what changed,
// and starts a seqno request if only unfeasible routes are left. Caller
// holds r.mu.
func (r *Routing) reselect(d *dest, now time.Time) {
	var best *route
	bestMetric := uint16(Infinity)
	usable := func(rt *route) (uint16, bool) {
		m := r.total(rt)
		return m, m < r.opts.MaxMetric && (!d.hasFD || d.fd.feasible(rt.seqno, rt.metric))
	}
	starved := false
	for _, rt := range d.routes {
		m, ok := usable(rt)
		if !ok {
			starved = starved || m < r.opts.MaxMetric
			continue
		}
		if best == nil || m < bestMetric || (m == bestMetric && rt.link < best.link) {
			best, bestMetric = rt, m
		}
	}
	if cur := d.selected; cur != nil && best != nil && cur != best && d.routes[cur.link] == cur {
		if m, ok := usable(cur); ok && uint32(m) <= uint32(bestMetric)+switchMargin {
			best, bestMetric = cur, m
		}
	}

	had, hadLink, hadSeqno, hadMetric := d.selected != nil, d.selLink, d.selSeqno, d.selMetric
	d.selected = best
	switch {
	case best != nil:
		d.selLink, d.selSeqno, d.selMetric = best.link, best.seqno, bestMetric
		if d.hasFD {
			d.fd = d.fd.lower(best.seqno, bestMetric)
		} else {
			d.fd, d.hasFD = distance{best.seqno, bestMetric}, true
		}
		d.usedAt = now
		d.retractUntil = time.Time{}
		if !had || hadLink != best.link || hadSeqno != best.seqno || absDiff(hadMetric, bestMetric) >= HopCost/2 {
			r.markDirty(d.id)
		}
		if !had || hadLink != best.link || hadMetric != bestMetric {
			r.tableChanged = true
		}
	case had:
		d.retractUntil = now.Add(r.opts.HoldDown)
		r.markDirty(d.id)
		r.tableChanged = true
	}
	if best == nil && starved {
		r.requestSeqno(d, now)
	}
}

func absDiff(a, b uint16) uint16 {
	if a > b {
		return a - b
	}
	return b - a
}

// markDirty queues d for the next triggered update, if this node advertises
// it at all. Caller holds r.mu.
func (r *Routing) markDirty(id core.NodeID) {
	if r.router || id == r.self {
		r.dirty[id] = struct{}{}
	}
}

// requestSeqno asks a neighbour that advertises d, unfeasibly, for a newer
// seqno than d's feasibility distance: first the one with the best route.
// While d stays starved the same request is repeated with exponential
// backoff, each time to the next such neighbour, so that a starved network
// does not drown in requests. Caller holds r.mu.
func (r *Routing) requestSeqno(d *dest, now time.Time) {
	if !d.hasFD || len(d.routes) == 0 {
		return
	}
	to := make([]*route, 0, len(d.routes))
	for _, rt := range d.routes {
		to = append(to, rt)
	}
	slices.SortFunc(to, func(a, b *route) int {
		return cmp.Or(cmp.Compare(r.total(a), r.total(b)), cmp.Compare(a.link, b.link))
	})
	seqno, rt := d.fd.seqno+1, to[0]
	switch {
	case seqno != d.requestSeqno || rt.link != d.requestBest || now.Sub(d.requestedAt) > maxRequestWait*r.opts.Interval:
		// A new request, a new best neighbour to ask, or the last starvation
		// is long over: ask at once.
		d.requestWait = 0
	case now.Before(d.requestedAt.Add(d.requestWait)):
		return
	default:
		rt = to[d.requests%len(to)]
	}
	d.requests++
	d.requestedAt, d.requestSeqno, d.requestBest = now, seqno, to[0].link
	d.requestWait = min(max(2*d.requestWait, r.opts.Interval/2), maxRequestWait*r.opts.Interval)
	r.send(rt.link, appendRequest(nil, request{Dst: d.id, Seqno: seqno, Hops: r.opts.RequestHops}))
}

// maxRequestWait caps the backoff between repeated seqno requests, in
// Intervals.
const maxRequestWait = 8

// afterChange sends a triggered update if one is due and allowed, or has the
// timer goroutine send it later, and builds the table to publish if it
// changed. Caller holds r.mu.
func (r *Routing) afterChange(now time.Time) {
	if len(r.dirty) > 0 {
		if now.Sub(r.lastTriggered) >= r.opts.TriggeredDelay {
			r.sendTriggered(now)
		} else {
			r.signal()
		}
	}
	if r.tableChanged {
		r.buildTable()
	}
}

// selfEntry is this node's route to itself.
func (r *Routing) selfEntry() entry { return entry{Dst: r.self, Seqno: r.seqno} }

// advertised is the entry d contributes to an update, if any.
func (r *Routing) advertised(d *dest, now time.Time) (entry, bool) {
	switch {
	case d.selected != nil:
		return entry{Dst: d.id, Seqno: d.selSeqno, Metric: d.selMetric}, true
	case d.hasFD && now.Before(d.retractUntil):
		return entry{Dst: d.id, Seqno: d.fd.seqno, Metric: Infinity}, true
	}
	return entry{}, false
}

// sendTriggered sends the dirty destinations to every neighbour. Caller holds
// r.mu.
func (r *Routing) sendTriggered(now time.Time) {
	entries := make([]entry, 0, len(r.dirty))
	for id := range r.dirty {
		if id == r.self {
			entries = append(entries, r.selfEntry())
		} else if d := r.dests[id]; d != nil {
			if e, ok := r.advertised(d, now); ok {
				entries = append(entries, e)
			}
		}
	}
	clear(r.dirty)
	r.lastTriggered = now
	r.sendEntries(entries, r.allNeighbours())
}

// sendFull sends every route this node advertises to ns. Caller holds r.mu.
func (r *Routing) sendFull(now time.Time, ns []*neighbour) {
	entries := []entry{r.selfEntry()}
	if r.router {
		for _, d := range r.dests {
			if e, ok := r.advertised(d, now); ok {
				entries = append(entries, e)
			}
		}
	}
	r.sendEntries(entries, ns)
}

func (r *Routing) allNeighbours() []*neighbour {
	ns := make([]*neighbour, 0, len(r.neighbours))
	for _, n := range r.neighbours {
		ns = append(ns, n)
	}
	return ns
}

// sendEntries queues entries, split into messages, for each of ns. A
// neighbour gets the routes through itself with metric Infinity (split
// horizon with poisoned reverse): it cannot use them, and a route it holds
// that leads back through this node would only draw its seqno requests the
// wrong way. Caller holds r.mu.
func (r *Routing) sendEntries(entries []entry, ns []*neighbour) {
	if len(entries) == 0 {
		return
	}
	var large, small [][]byte
	for _, n := range ns {
		maxBody := r.opts.MaxMessage
		if n.small {
			maxBody = min(maxBody, smallMessage)
		}
		if poisoned := r.poison(entries, n.info.ID); poisoned != nil {
			for _, m := range appendUpdates(poisoned, r.opts.Expiry, maxBody) {
				r.send(n.info.ID, m)
			}
			continue
		}
		msgs := &large
		if n.small {
			msgs = &small
		}
		if *msgs == nil {
			*msgs = appendUpdates(entries, r.opts.Expiry, maxBody)
		}
		for _, m := range *msgs {
			r.send(n.info.ID, m)
		}
	}
}

// poison returns a copy of entries in which the routes selected through link
// are retracted, or nil if there are none. Caller holds r.mu.
func (r *Routing) poison(entries []entry, link uint64) []entry {
	var out []entry
	for i, e := range entries {
		if e.Metric == Infinity || e.Dst == r.self {
			continue
		}
		if d := r.dests[e.Dst]; d != nil && d.selected != nil && d.selected.link == link {
			if out == nil {
				out = slices.Clone(entries)
			}
			out[i].Metric = Infinity
		}
	}
	return out
}

// buildTable queues the selected routes for publishing. Caller holds r.mu.
func (r *Routing) buildTable() {
	table := make([]core.Route, 0, len(r.dests))
	for _, d := range r.dests {
		if rt := d.selected; rt != nil {
			table = append(table, core.Route{Dst: d.id, Link: rt.link, NextHop: rt.peer,
				Metric: uint32(d.selMetric), Updated: rt.updated})
		}
	}
	r.tableChanged = false
	r.table, r.tableReady = table, true
	r.signal()
}

// send queues body for the neighbour on link. Caller holds r.mu.
func (r *Routing) send(link uint64, body []byte) {
	if r.queueBytes[link]+len(body) > maxQueue {
		r.log.Debug("send queue full: dropping a routing message", "link", link)
		return
	}
	if r.queueBytes == nil {
		r.queueBytes = make(map[uint64]int)
	}
	r.queue = append(r.queue, outgoing{link, body})
	r.queueBytes[link] += len(body)
	r.signal()
}

// signal wakes run.
func (r *Routing) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// drain sends the queued messages and publishes the queued table, in order.
// Only run calls it.
func (r *Routing) drain() {
	r.mu.Lock()
	queue, table, ready := r.queue, r.table, r.tableReady
	r.queue, r.table, r.tableReady = nil, nil, false
	clear(r.queueBytes)
	r.mu.Unlock()
	for _, o := range queue {
		r.sendMessage(o.link, o.body)
	}
	if ready {
		r.publish(table)
	}
}

// run is routing's goroutine: the periodic full update and route expiry
// every Interval (jittered so that neighbours do not fall into step), the
// triggered updates that had to wait for TriggeredDelay, and every send and
// publish.
func (r *Routing) run() {
	defer r.wg.Done()
	next := time.Now().Add(jitter(r.opts.Interval) / 2)
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-r.wake:
		case <-t.C:
		}
		if now := time.Now(); !now.Before(next) {
			r.tick()
			next = now.Add(jitter(r.opts.Interval))
		}
		wait := time.Until(next)
		if d, pending := r.flushTriggered(); pending {
			wait = min(wait, d)
		}
		r.drain()
		t.Reset(wait)
	}
}

// jitter returns d ± 10 %.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// flushTriggered queues the pending triggered update if its time has come,
// else reports how long it must wait.
func (r *Routing) flushTriggered() (time.Duration, bool) {
	r.mu.Lock()
	if !r.running() || len(r.dirty) == 0 {
		r.mu.Unlock()
		return 0, false
	}
	now := time.Now()
	if wait := r.lastTriggered.Add(r.opts.TriggeredDelay).Sub(now); wait > 0 {
		r.mu.Unlock()
		return wait, true
	}
	r.sendTriggered(now)
	r.mu.Unlock()
	return 0, false
}

// tick is the periodic work: follow the links' round trips, drop links that
// are gone, expire silent routes, collect old state, send the full update and
// republish the table.
func (r *Routing) tick() {
	r.mu.Lock()
	epoch := r.epoch
	r.mu.Unlock()
	links := r.mesh.Links() // never under r.mu: it takes the node's locks

	r.mu.Lock()
	if !r.running() {
		r.mu.Unlock()
		return
	}
	now := time.Now()
	r.reconcile(links, epoch, now)
	for id, d := range r.dests {
		for link, rt := range d.routes {
			if now.After(rt.expires) {
				delete(d.routes, link)
			}
		}
		if d.selected == nil && d.hasFD && len(d.routes) > 0 && !now.Before(d.retractUntil) && now.Sub(d.usedAt) > r.opts.SourceGC {
			// Starved for SourceGC though routes are heard: the origin's
			// seqno may lie half the ring from the remembered one (it
			// restarted), where no request can move it. Forget the
			// feasibility distance, as Babel's source table expires.
			d.hasFD = false
		}
		r.reselect(d, now)
		if d.selected == nil && len(d.routes) == 0 && !now.Before(d.retractUntil) &&
			(!d.hasFD || now.Sub(d.usedAt) > r.opts.SourceGC) {
			delete(r.dests, id)
		}
	}
	r.sendFull(now, r.allNeighbours())
	clear(r.dirty)
	r.lastTriggered = now
	r.buildTable() // also refreshes the routes' Updated times
	r.mu.Unlock()
}

// reconcile brings the neighbours in line with the node's live links: it
// takes up round-trip changes and drops a link that is gone, whether its
// LinkDown is still on its way or was lost in a race with its LinkUp (a
// LinkDown for a link routing does not know is ignored). links was read when
// r.epoch was epoch; a neighbour that came up since may be missing from it
// and is kept. Caller holds r.mu.
func (r *Routing) reconcile(links []core.LinkInfo, epoch uint64, now time.Time) {
	live := make(map[uint64]core.LinkInfo, len(links))
	for _, l := range links {
		live[l.ID] = l
	}
	for id, n := range r.neighbours {
		l, ok := live[id]
		switch {
		case ok:
			r.setRTT(n, l.RTT, now)
		case n.epoch <= epoch:
			r.log.Debug("link gone", "link", id, "peer", n.info.Peer)
			r.dropLink(id, now)
		}
	}
}

// setRTT takes up a link's latest round trip. If that changes the link's
// cost, the routes through it are reselected. Caller holds r.mu.
func (r *Routing) setRTT(n *neighbour, rtt time.Duration, now time.Time) {
	n.info.RTT = rtt
	cost := linkCost(rtt, r.opts.MaxRTTCost)
	if cost == n.cost {
		return
	}
	n.cost = cost
	for _, d := range r.dests {
		if d.routes[n.info.ID] != nil {
			r.reselect(d, now)
		}
	}
}

// sendMessage sends one message. If the peer refuses it for its size, the
// link is marked to get small messages from now on and this one is split.
func (r *Routing) sendMessage(link uint64, body []byte) {
	err := r.mesh.Send(link, wire.KindRouting, body)
	if err == nil {
		return
	}
	if errors.Is(err, core.ErrLinkLost) || len(body) <= smallMessage {
		r.log.Debug("sending routing message", "link", link, "error", err)
		return
	}
	m, derr := decode(body)
	if derr != nil || m.Type != typeUpdate {
		r.log.Debug("sending routing message", "link", link, "error", err)
		return
	}
	r.log.Debug("peer refuses large routing messages; splitting", "link", link, "error", err)
	r.mu.Lock()
	if n := r.neighbours[link]; n != nil {
		n.small = true
	}
	r.mu.Unlock()
	for _, p := range appendUpdates(m.Entries, m.Lifetime, smallMessage) {
		if err := r.mesh.Send(link, wire.KindRouting, p); err != nil {
			r.log.Debug("sending routing message", "link", link, "error", err)
			return
		}
	}
}
