package routing

import (
	"errors"
	"math/rand/v2"
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
	router  bool
	publish func([]core.Route)

	mu            sync.Mutex
	started       bool
	closed        bool
	seqno         uint16 // of the route to this node; only this node changes it
	neighbours    map[uint64]*neighbour
	epoch         uint64 // counts LinkUp calls; see reconcile
	dests         map[core.NodeID]*dest
	dirty         map[core.NodeID]struct{} // to send in the next triggered update
	lastTriggered time.Time
	tableChanged  bool
	version       uint64 // of the table last built; see publishTable

	pubMu     sync.Mutex
	published uint64
	pubClosed bool

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

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

	retractUntil time.Time // advertise a retraction until then
	requestedAt  time.Time // last seqno request this node started

	forwarded   bool // a request was forwarded: fwdSeqno at fwdAt
	fwdSeqno    uint16
	fwdAt       time.Time
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
		kick:       make(chan struct{}, 1),
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

// Close stops routing and waits for its goroutine. Nothing is published once
// it returns.
func (r *Routing) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	started := r.started
	r.mu.Unlock()
	if started {
		close(r.done)
		r.wg.Wait()
	}
	r.pubMu.Lock()
	r.pubClosed = true
	r.pubMu.Unlock()
	return nil
}

// running reports whether events are to be handled. Caller holds r.mu.
func (r *Routing) running() bool { return r.started && !r.closed }

// LinkUp adds the neighbour on l and sends it this node's full update.
func (r *Routing) LinkUp(l core.LinkInfo) {
	var b batch
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
	n.info = l
	n.router = l.Caps&wire.CapRouter != 0
	n.cost = linkCost(l.RTT, r.opts.MaxRTTCost)
	r.sendFull(time.Now(), []*neighbour{n}, &b)
	r.mu.Unlock()
	r.flush(&b)
}

// LinkDown withdraws every route through l at once and triggers an update.
func (r *Routing) LinkDown(l core.LinkInfo) {
	var b batch
	r.mu.Lock()
	if !r.running() || r.neighbours[l.ID] == nil {
		r.mu.Unlock()
		return
	}
	now := time.Now()
	r.dropLink(l.ID, now, &b)
	r.afterChange(now, &b)
	r.mu.Unlock()
	r.flush(&b)
}

// HandleControl handles one routing message from the neighbour on from. A
// malformed message is dropped and logged at Debug.
func (r *Routing) HandleControl(from core.LinkInfo, body []byte) {
	m, err := decode(body)
	if err != nil {
		r.log.Debug("dropping routing message", "peer", from.Peer, "link", from.ID, "error", err)
		return
	}
	var b batch
	r.mu.Lock()
	n := r.neighbours[from.ID]
	if !r.running() || n == nil {
		// A message that raced with its link's LinkDown: the link is gone.
		r.mu.Unlock()
		return
	}
	now := time.Now()
	switch m.Type {
	case typeUpdate:
		r.handleUpdate(n, m, now, &b)
	case typeRequest:
		r.handleRequest(n, m.Request, now, &b)
	}
	r.afterChange(now, &b)
	r.mu.Unlock()
	r.flush(&b)
}

// handleUpdate records each entry of an update from n. Caller holds r.mu.
func (r *Routing) handleUpdate(n *neighbour, m message, now time.Time, b *batch) {
	link := n.info.ID
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
				r.reselect(d, now, b)
			}
			continue
		}
		if d == nil {
			d = &dest{id: e.Dst, routes: make(map[uint64]*route)}
			r.dests[e.Dst] = d
		}
		rt := d.routes[link]
		if rt == nil {
			rt = &route{link: link, peer: n.info.Peer}
			d.routes[link] = rt
		}
		rt.seqno, rt.metric = e.Seqno, e.Metric
		rt.expires = now.Add(m.Lifetime)
		rt.updated = now
		r.reselect(d, now, b)
	}
}

// handleRequest answers, or forwards towards the origin, a seqno request from
// n. Caller holds r.mu.
func (r *Routing) handleRequest(n *neighbour, q request, now time.Time, b *batch) {
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
	if q.Hops <= 1 {
		return
	}
	if d.forwarded && !seqnoNewer(q.Seqno, d.fwdSeqno) && now.Before(d.fwdAt.Add(r.opts.Interval)) {
		return // already on its way
	}
	// Towards the origin: the selected next hop, else the neighbour with the
	// best (perhaps unfeasible) route, never back to the requester.
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
	if to == nil {
		return
	}
	d.forwarded, d.fwdSeqno, d.fwdAt = true, q.Seqno, now
	b.send(to.link, appendRequest(nil, request{Dst: q.Dst, Seqno: q.Seqno, Hops: q.Hops - 1}))
}

// dropLink forgets link and every route through it. Caller holds r.mu.
func (r *Routing) dropLink(link uint64, now time.Time, b *batch) {
	delete(r.neighbours, link)
	for _, d := range r.dests {
		if d.routes[link] != nil {
			delete(d.routes, link)
			r.reselect(d, now, b)
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
func (r *Routing) reselect(d *dest, now time.Time, b *batch) {
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
		if m, ok := usable(cur); ok && m <= bestMetric+switchMargin {
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
		r.requestSeqno(d, now, b)
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

// requestSeqno asks the neighbours that advertise d, unfeasibly, for a newer
// seqno than d's feasibility distance. At most one request per half
// Interval. Caller holds r.mu.
func (r *Routing) requestSeqno(d *dest, now time.Time, b *batch) {
	if !d.hasFD || now.Before(d.requestedAt.Add(r.opts.Interval/2)) {
		return
	}
	d.requestedAt = now
	body := appendRequest(nil, request{Dst: d.id, Seqno: d.fd.seqno + 1, Hops: r.opts.RequestHops})
	for _, rt := range d.routes {
		b.send(rt.link, body)
	}
}

// afterChange sends a triggered update if one is due and allowed, or has the
// timer goroutine send it later, and builds the table to publish if it
// changed. Caller holds r.mu.
func (r *Routing) afterChange(now time.Time, b *batch) {
	if len(r.dirty) > 0 {
		if now.Sub(r.lastTriggered) >= r.opts.TriggeredDelay {
			r.sendTriggered(now, b)
		} else {
			select {
			case r.kick <- struct{}{}:
			default:
			}
		}
	}
	if r.tableChanged {
		r.buildTable(b)
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
func (r *Routing) sendTriggered(now time.Time, b *batch) {
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
	r.sendEntries(entries, r.allNeighbours(), b)
}

// sendFull sends every route this node advertises to ns. Caller holds r.mu.
func (r *Routing) sendFull(now time.Time, ns []*neighbour, b *batch) {
	entries := []entry{r.selfEntry()}
	if r.router {
		for _, d := range r.dests {
			if e, ok := r.advertised(d, now); ok {
				entries = append(entries, e)
			}
		}
	}
	r.sendEntries(entries, ns, b)
}

func (r *Routing) allNeighbours() []*neighbour {
	ns := make([]*neighbour, 0, len(r.neighbours))
	for _, n := range r.neighbours {
		ns = append(ns, n)
	}
	return ns
}

// sendEntries queues entries, split into messages, for each of ns. Caller
// holds r.mu.
func (r *Routing) sendEntries(entries []entry, ns []*neighbour, b *batch) {
	if len(entries) == 0 {
		return
	}
	var large, small [][]byte
	for _, n := range ns {
		msgs := large
		if n.small {
			if small == nil {
				small = appendUpdates(entries, r.opts.Expiry, min(r.opts.MaxMessage, smallMessage))
			}
			msgs = small
		} else if msgs == nil {
			large = appendUpdates(entries, r.opts.Expiry, r.opts.MaxMessage)
			msgs = large
		}
		for _, m := range msgs {
			b.send(n.info.ID, m)
		}
	}
}

// buildTable puts the selected routes into b for publishing. Caller holds
// r.mu.
func (r *Routing) buildTable(b *batch) {
	table := make([]core.Route, 0, len(r.dests))
	for _, d := range r.dests {
		if rt := d.selected; rt != nil {
			table = append(table, core.Route{Dst: d.id, Link: rt.link, NextHop: rt.peer,
				Metric: uint32(d.selMetric), Updated: rt.updated})
		}
	}
	r.tableChanged = false
	r.version++
	b.table, b.version = table, r.version
}

// run is the timer goroutine: the periodic full update and route expiry every
// Interval (jittered so that neighbours do not fall into step), and the
// triggered updates that had to wait for TriggeredDelay.
func (r *Routing) run() {
	defer r.wg.Done()
	next := time.Now().Add(jitter(r.opts.Interval) / 2)
	t := time.NewTimer(time.Until(next))
	defer t.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-r.kick:
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
		t.Reset(wait)
	}
}

// jitter returns d ± 10 %.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// flushTriggered sends the pending triggered update if its time has come,
// else reports how long it must wait.
func (r *Routing) flushTriggered() (time.Duration, bool) {
	var b batch
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
	r.sendTriggered(now, &b)
	r.mu.Unlock()
	r.flush(&b)
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

	var b batch
	r.mu.Lock()
	if !r.running() {
		r.mu.Unlock()
		return
	}
	now := time.Now()
	r.reconcile(links, epoch, now, &b)
	for id, d := range r.dests {
		for link, rt := range d.routes {
			if now.After(rt.expires) {
				delete(d.routes, link)
			}
		}
		r.reselect(d, now, &b)
		if d.selected == nil && len(d.routes) == 0 && !now.Before(d.retractUntil) &&
			(!d.hasFD || now.Sub(d.usedAt) > r.opts.SourceGC) {
			delete(r.dests, id)
		}
	}
	r.sendFull(now, r.allNeighbours(), &b)
	clear(r.dirty)
	r.lastTriggered = now
	r.buildTable(&b) // also refreshes the routes' Updated times
	r.mu.Unlock()
	r.flush(&b)
}

// reconcile brings the neighbours in line with the node's live links: it
// takes up round-trip changes and drops a link whose LinkDown was lost in a
// race with its LinkUp. links was read when r.epoch was epoch; a neighbour
// that came up since may be missing from it and is kept. Caller holds r.mu.
func (r *Routing) reconcile(links []core.LinkInfo, epoch uint64, now time.Time, b *batch) {
	live := make(map[uint64]core.LinkInfo, len(links))
	for _, l := range links {
		live[l.ID] = l
	}
	for id, n := range r.neighbours {
		l, ok := live[id]
		switch {
		case ok:
			n.info.RTT = l.RTT
			n.cost = linkCost(l.RTT, r.opts.MaxRTTCost)
		case n.epoch <= epoch:
			r.log.Debug("link gone without LinkDown", "link", id, "peer", n.info.Peer)
			r.dropLink(id, now, b)
		}
	}
}

// batch collects what an event handler sends and publishes, to be done once
// r.mu is released: Mesh.Send takes the node's locks.
type batch struct {
	sends   []outgoing
	table   []core.Route
	version uint64
}

type outgoing struct {
	link uint64
	body []byte
}

func (b *batch) send(link uint64, body []byte) { b.sends = append(b.sends, outgoing{link, body}) }

// flush sends and publishes what b holds. Caller does not hold r.mu.
func (r *Routing) flush(b *batch) {
	for _, o := range b.sends {
		r.sendMessage(o.link, o.body)
	}
	if b.table != nil {
		r.publishTable(b.version, b.table)
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

// publishTable publishes table unless a newer one was published already or
// Close has returned.
func (r *Routing) publishTable(version uint64, table []core.Route) {
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	if r.pubClosed || version <= r.published {
		return
	}
	r.published = version
	r.publish(table)
}
