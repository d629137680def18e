package discovery

import (
	"cmp"
	"encoding/binary"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	"github.com/hashicorp/go-hclog"
)

// MeshOptions configure a Mesh. The zero value is a server with the defaults.
type MeshOptions struct {
	// Logger receives discovery's logs; malformed messages are logged at
	// Debug. Default: a null logger.
	Logger hclog.Logger
	// Interval is how often a node re-announces its services to keep them
	// alive; every node drops an origin it has not heard from for 3.5 of that
	// origin's intervals. Default 1 s; values are kept within [1 ms, 1 h].
	Interval time.Duration
	// Client makes the node advertise nothing of its own while it still learns
	// and relays the services of others. A node whose capabilities lack
	// wire.CapServer behaves so too. Default false: a server.
	Client bool
	// MaxOrigins bounds the nodes whose services this node holds (and the
	// tombstones of those found unreachable), so that a neighbour inventing
	// origins cannot grow its memory without end: snapshots from further new
	// origins are dropped while it is full. Default 65536.
	MaxOrigins int
	// MaxServiceBytes bounds the memory that the services of other nodes take
	// in discovery, so that a neighbour announcing many origins, each with a
	// large snapshot, cannot make this node hold more: each snapshot counts
	// what it takes (the message, the decoded services and their metadata,
	// estimated from above), and one that would take the total past the bound
	// is dropped, counted and logged (at most once a minute), while its
	// origin keeps the snapshot held before, if any, until that expires. The
	// node indexes the view it is published by name, which takes from as
	// much again (names shared by many nodes) to some 2.5 times as much
	// (short names, each on one node): with the default, others' services
	// take at most some 224 MiB of a node. Default 64 MiB, about a million
	// services with short names; values below 1 MiB are raised to it.
	MaxServiceBytes int
}

// DefaultMaxOrigins is MeshOptions.MaxOrigins when it is zero.
const DefaultMaxOrigins = 1 << 16

// DefaultMaxServiceBytes is MeshOptions.MaxServiceBytes when it is zero.
const DefaultMaxServiceBytes = 64 << 20

// minServiceBytes is the least MaxServiceBytes: room for a few origins with
// the largest snapshots.
const minServiceBytes = 1 << 20

// minRelay is the shortest time between two relays of one origin's
// refreshes, whatever interval the origin claims.
const minRelay = 10 * time.Millisecond

// expiry is how long an origin lives without a refresh, in its intervals.
const expiry = 3.5

// sendBudget bounds the bytes one round of the announcer queues on a link, so
// that catching a new neighbour up on a large mesh cannot overflow the link's
// control queue (core closes a link whose peer lets 4 MiB pile up).
const sendBudget = 256 << 10

// Mesh is gossip discovery over the astranet mesh; it implements
// core.Discovery. Each node floods a snapshot of its own services — the
// whole set, with a sequence number only it increments — to its neighbours,
// who pass on whatever is newer than what they hold. Snapshots are
// re-announced every interval as keep-alives, and an origin that falls silent
// expires. Every node thus holds the latest snapshot of every origin and
// publishes their union to its node.
//
// A node's whole set travels in one message of at most 60 KiB, which keeps
// snapshots atomic and simple: Register refuses a service that would not fit
// (ErrTooManyServices): past some 3800 services with ten-byte names and no
// metadata, or 235 with 255-byte names. docs/PROTOCOL.md section 12
// specifies the messages.
//
// A change this node makes (Register, Deregister, a neighbour found
// unreachable) is published before the call returns. A change a neighbour
// sends is published by the announcer goroutine, so that the link's reader
// does not wait for it, and a burst of them is published once: the cost of
// taking one snapshot does not grow with what the node holds. Watch
// channels receive every change as it is taken.
//
// A Mesh serves one node: pass it in core.Options and let the node call its
// methods, all of which are safe for concurrent use. It runs one goroutine,
// from Start until Close.
type Mesh struct {
	log      hclog.Logger
	interval time.Duration
	client   bool
	maxOrig  int
	maxBytes int

	kick chan struct{} // wakes the announcer; capacity 1
	done chan struct{}
	wg   sync.WaitGroup

	self       atomic.Uint64 // the node's id, read by selectors without the lock
	routeTable atomic.Value  // func() []core.Route, read by selectors without the lock

	// pubMu lets one publish run at a time, so that views reach the node in
	// order. It is taken before mu, never while holding it.
	pubMu   sync.Mutex
	publish func([]core.Service) // nil before Start and after Close

	mu        sync.Mutex
	mesh      core.Mesh
	id        core.NodeID
	started   bool
	closed    bool
	advertise bool
	own       map[uint32]core.Service // this node's named listeners, by port
	seq       uint64                  // this node's sequence number
	origins   map[core.NodeID]*origin // the latest snapshot of every origin, this node's included
	held      int                     // the footprint of the origins other than this node
	services  int                     // the services of all origins
	gone      map[core.NodeID]tombstone
	sweepAt   time.Time                           // no origin expires and no tombstone ends before this; zero: none held
	links     map[uint64]core.NodeID              // live links to their peers
	pending   map[uint64]map[core.NodeID]struct{} // per link, origins whose snapshot it still needs
	refreshAt time.Time                           // when this node re-announces next
	changes   uint64                              // counts the changes to the union of services
	shown     uint64                              // changes when the view last published was taken
	watchers  map[*watcher]struct{}
	warned    map[uint64]struct{} // links a send failed on, to warn once
	tooMany   refusals            // snapshots dropped for MaxOrigins
	tooBig    refusals            // snapshots dropped for MaxServiceBytes
}

// origin is what a node holds about one announcing node.
type origin struct {
	seq      uint64
	interval time.Duration
	// msg is the snapshot as the origin encoded it, which relays pass on with
	// only the age rewritten. The names and metadata of services share its
	// memory.
	msg      string
	services []core.Service // in port order
	cost     int            // footprint(msg, services); 0 for this node's own
	heard    time.Time      // when the origin last sent this snapshot, as far as this node knows
	relayed  time.Time      // when this node last passed a refresh of it on
}

// refusals counts the snapshots dropped for one bound and remembers when
// that was last logged, to log at most once a minute.
type refusals struct {
	count  uint64
	logged time.Time
}

func (o *origin) expires() time.Time {
	return o.heard.Add(time.Duration(expiry * float64(o.interval)))
}

// tombstone remembers an origin dropped because its node became unreachable,
// so that copies of its last snapshot still in flight do not bring it back.
type tombstone struct {
	seq   uint64
	at    time.Time
	until time.Time
}

// NewMesh returns a mesh discovery with opts. The node it is given to starts it.
func NewMesh(opts MeshOptions) *Mesh {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	if opts.MaxOrigins <= 0 {
		opts.MaxOrigins = DefaultMaxOrigins
	}
	if opts.MaxServiceBytes <= 0 {
		opts.MaxServiceBytes = DefaultMaxServiceBytes
	}
	m := &Mesh{
		log:      opts.Logger.Named("discovery"),
		interval: min(max(opts.Interval, minInterval), maxInterval),
		client:   opts.Client,
		maxOrig:  opts.MaxOrigins,
		maxBytes: max(opts.MaxServiceBytes, minServiceBytes),
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		own:      make(map[uint32]core.Service),
		origins:  make(map[core.NodeID]*origin),
		gone:     make(map[core.NodeID]tombstone),
		links:    make(map[uint64]core.NodeID),
		pending:  make(map[uint64]map[core.NodeID]struct{}),
		watchers: make(map[*watcher]struct{}),
		warned:   make(map[uint64]struct{}),
	}
	m.routeTable.Store(func() []core.Route { return nil })
	return m
}

var (
	errStarted    = errors.New("discovery: mesh already started")
	errNotStarted = errors.New("discovery: mesh not started")
)

// Start begins discovery for the node behind mesh; publish receives every
// new view of the services in the mesh.
func (m *Mesh) Start(mesh core.Mesh, publish func([]core.Service)) error {
	links := mesh.Links()
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return core.ErrClosed
	case m.started:
		return errStarted
	}
	m.started = true
	m.mesh, m.publish, m.id = mesh, publish, mesh.ID()
	m.self.Store(uint64(m.id))
	m.routeTable.Store(mesh.Routes)
	m.advertise = !m.client && mesh.Caps()&wire.CapServer != 0
	// Starting from the clock makes a restarted node with a fixed id announce
	// numbers above those its earlier life left in the mesh.
	m.seq = uint64(time.Now().UnixNano())
	m.refreshAt = time.Now().Add(m.interval)
	for _, l := range links {
		m.links[l.ID] = l.Peer
	}
	m.wg.Add(1)
	go m.run()
	return nil
}

// Register announces a local service. A listener bound by port alone (empty
// name) is not announced: it is reached by node and port, not looked up. A
// client announces nothing. It fails with ErrBadService or ErrTooManyServices
// when the service cannot be carried.
func (m *Mesh) Register(svc core.Service) error {
	// Core calls Register with its own lock held, so this must not call into
	// the node but to publish: the announcer goroutine sends the news.
	if svc.Name == "" {
		return nil
	}
	if err := m.register(svc); err != nil {
		return err
	}
	m.flush()
	return nil
}

// register does Register's work under m.mu.
func (m *Mesh) register(svc core.Service) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return core.ErrClosed
	case !m.started:
		return errNotStarted
	case !m.advertise:
		return nil
	}
	if svc.Node == 0 {
		svc.Node = m.id
	}
	svc.Metadata = maps.Clone(svc.Metadata)
	own := maps.Clone(m.own)
	own[svc.Port] = svc
	if err := m.announce(own); err != nil {
		return err
	}
	m.signal()
	return nil
}

// Deregister withdraws a local service. It sends the news to the neighbours
// at once rather than through the announcer, so that the last listeners a
// closing node unbinds are withdrawn before its links go down.
func (m *Mesh) Deregister(svc core.Service) error {
	m.mu.Lock()
	cur, ok := m.own[svc.Port]
	if m.closed || !m.advertise || !ok || cur.Name != svc.Name {
		m.mu.Unlock()
		return nil
	}
	own := maps.Clone(m.own)
	delete(own, svc.Port)
	err := m.announce(own) // cannot fail: a subset of a set that fitted
	out := m.takeSelf()
	m.mu.Unlock()
	m.send(out)
	m.flush()
	return err
}

// announce makes own the node's service set under a new sequence number and
// queues it for every neighbour; the caller publishes. Caller holds m.mu.
func (m *Mesh) announce(own map[uint32]core.Service) error {
	now := time.Now()
	services := slices.SortedFunc(maps.Values(own), func(a, b core.Service) int { return cmp.Compare(a.Port, b.Port) })
	s := &snapshot{origin: m.id, seq: m.seq + 1, interval: m.interval, services: services}
	msg, err := appendSnapshot(nil, s)
	if err != nil {
		return err
	}
	m.own, m.seq = own, s.seq
	m.replace(s.origin, &origin{seq: s.seq, interval: s.interval, msg: string(msg), services: s.services, heard: now, relayed: now})
	m.queue(s.origin, 0)
	return nil
}

// takeSelf removes this node's snapshot from every link's queue and returns it
// for immediate sending. Caller holds m.mu.
func (m *Mesh) takeSelf() []outgoing {
	o := m.origins[m.id]
	if o == nil {
		return nil
	}
	var out []outgoing
	msg := []byte(o.msg)
	for id := range m.links {
		delete(m.pending[id], m.id)
		out = append(out, outgoing{link: id, body: msg})
	}
	return out
}

// LinkUp catches the new neighbour up: it queues every snapshot this node
// holds for it.
func (m *Mesh) LinkUp(l core.LinkInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || !m.started {
		return
	}
	m.links[l.ID] = l.Peer
	for id := range m.origins {
		if id != l.Peer {
			m.mark(l.ID, id)
		}
	}
	m.signal()
}

// LinkDown forgets the link. If it was the last link to a neighbour that no
// route reaches any more, the neighbour's services are dropped at once rather
// than left to expire.
func (m *Mesh) LinkDown(l core.LinkInfo) {
	m.mu.Lock()
	if m.closed || !m.started {
		m.mu.Unlock()
		return
	}
	mesh := m.mesh
	m.mu.Unlock()
	rs := mesh.Routes()
	now := time.Now()

	m.mu.Lock()
	out := m.unlink(l, rs, now)
	m.mu.Unlock()
	m.send(out)
	m.flush()
}

// unlink does LinkDown's work under m.mu. It returns the dropped neighbour's
// snapshot for the links still waiting for it: typically the withdrawal the
// neighbour sent as it closed, which must travel on even though the
// neighbour's services here go at once.
func (m *Mesh) unlink(l core.LinkInfo, rs []core.Route, now time.Time) []outgoing {
	delete(m.links, l.ID)
	delete(m.pending, l.ID)
	delete(m.warned, l.ID)
	o := m.origins[l.Peer]
	if m.closed || o == nil {
		return nil
	}
	for _, peer := range m.links {
		if peer == l.Peer {
			return nil // another link still leads there
		}
	}
	for _, r := range rs {
		if _, live := m.links[r.Link]; r.Dst == l.Peer && live {
			return nil
		}
	}
	m.log.Debug("neighbour unreachable; dropping its services", "node", l.Peer, "services", len(o.services))
	var out []outgoing
	for id, p := range m.pending {
		if _, ok := p[l.Peer]; ok {
			delete(p, l.Peer)
			out = append(out, outgoing{link: id, body: m.relayBody(l.Peer, o, now)})
		}
	}
	m.replace(l.Peer, nil)
	if len(m.gone) < m.maxOrig {
		t := tombstone{seq: o.seq, at: now, until: now.Add(time.Duration(expiry * float64(o.interval)))}
		m.gone[l.Peer] = t
		m.sweepBy(t.until)
	}
	m.signal() // the announcer may sleep less now that a tombstone waits
	return out
}

// HandleControl takes in a discovery message from a neighbour. A malformed
// message is dropped and logged at Debug. It never waits on the network nor
// on publishing: what is to be passed on or published is left to the
// announcer.
func (m *Mesh) HandleControl(from core.LinkInfo, body []byte) {
	now := time.Now()
	m.mu.Lock()
	if s := m.knownCopy(body); s != nil {
		// Most messages are refreshes of what this node holds: no need to
		// decode them again.
		m.take(from, s, now)
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	s, err := decodeSnapshot(body)
	if err != nil {
		m.log.Debug("dropping discovery message", "peer", from.Peer, "error", err)
		return
	}
	m.mu.Lock()
	m.take(from, s, now)
	m.mu.Unlock()
}

// knownCopy returns the snapshot body carries if it is byte for byte, age
// aside, the one this node holds for its origin, and nil otherwise. Caller
// holds m.mu.
func (m *Mesh) knownCopy(body []byte) *snapshot {
	if len(body) < headerLen {
		return nil
	}
	o := m.origins[core.NodeID(binary.BigEndian.Uint64(body[ageOffset+4:]))]
	if o == nil || len(o.msg) != len(body) || o.msg[:ageOffset] != string(body[:ageOffset]) ||
		o.msg[ageOffset+4:] != string(body[ageOffset+4:]) {
		return nil
	}
	return &snapshot{age: time.Duration(binary.BigEndian.Uint32(body[ageOffset:])) * time.Millisecond,
		origin: core.NodeID(binary.BigEndian.Uint64(body[ageOffset+4:])), seq: o.seq, interval: o.interval,
		services: o.services, msg: o.msg}
}

// take applies a snapshot received from a neighbour (docs/PROTOCOL.md
// section 12.1). Caller holds m.mu.
func (m *Mesh) take(from core.LinkInfo, s *snapshot, now time.Time) {
	if m.closed || !m.started || s.origin == m.id {
		return
	}
	heard := now.Add(-s.age)
	if life := time.Duration(expiry * float64(s.interval)); !now.Before(heard.Add(life)) {
		return // a stale copy from a neighbour's memory: the origin has been silent too long
	}
	if t, ok := m.gone[s.origin]; ok && s.seq <= t.seq && !heard.After(t.at) {
		return // a copy from before the origin was found unreachable
	}
	o := m.origins[s.origin]
	if o == nil && len(m.origins) >= m.maxOrig {
		m.refuse(&m.tooMany, now, "too many origins; dropping snapshots from new ones",
			"max", m.maxOrig, "origin", s.origin, "peer", from.Peer)
		return
	}
	switch {
	case o == nil || s.seq > o.seq:
		cost, was := footprint(s.msg, s.services), 0
		if o != nil {
			was = o.cost
		}
		if m.held-was+cost > m.maxBytes {
			m.refuse(&m.tooBig, now, "services of other nodes would take more memory than allowed; dropping a snapshot",
				"max_bytes", m.maxBytes, "held_bytes", m.held, "snapshot_bytes", cost, "services", len(s.services),
				"origin", s.origin, "peer", from.Peer)
			return
		}
		delete(m.gone, s.origin)
		m.replace(s.origin, &origin{seq: s.seq, interval: s.interval, msg: s.msg,
			services: s.services, cost: cost, heard: heard, relayed: now})
		m.queue(s.origin, from.ID)
		m.signal()
	case s.seq == o.seq && heard.After(o.heard):
		// A refresh. Copies arriving over several paths are passed on once.
		o.heard = heard
		if now.Sub(o.relayed) >= max(o.interval/2, minRelay) {
			o.relayed = now
			m.queue(s.origin, from.ID)
			m.signal()
		}
	}
}

// Close withdraws this node's services (best effort: an empty snapshot to the
// neighbours still linked), stops the announcer and waits for it, and closes
// every watch channel. Nothing is published afterwards.
func (m *Mesh) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	var out []outgoing
	if m.started && m.origins[m.id] != nil {
		m.seq++
		s := &snapshot{origin: m.id, seq: m.seq, interval: m.interval}
		if msg, err := appendSnapshot(nil, s); err == nil {
			for id := range m.links {
				out = append(out, outgoing{link: id, body: msg})
			}
		}
	}
	m.closed = true
	for w := range m.watchers {
		m.stopWatch(w)
	}
	started := m.started
	m.mu.Unlock()
	m.send(out)
	close(m.done)
	if started {
		m.wg.Wait()
	}
	// Wait for a publish under way in Register, Deregister or LinkDown, and
	// let none follow.
	m.pubMu.Lock()
	m.publish = nil
	m.pubMu.Unlock()
	return nil
}

// queue marks origin's snapshot for every link except the one it came on and
// those to the origin itself. Caller holds m.mu.
func (m *Mesh) queue(id core.NodeID, except uint64) {
	for l, peer := range m.links {
		if l != except && peer != id {
			m.mark(l, id)
		}
	}
}

func (m *Mesh) mark(link uint64, id core.NodeID) {
	p := m.pending[link]
	if p == nil {
		p = make(map[core.NodeID]struct{})
		m.pending[link] = p
	}
	p[id] = struct{}{}
}

// signal wakes the announcer without waiting.
func (m *Mesh) signal() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// outgoing is one message for one link.
type outgoing struct {
	link uint64
	body []byte
}

// run is the announcer: it re-announces this node's snapshot every interval,
// expires silent origins, sends what is queued for each link and publishes
// the changes neighbours sent. A publish that took d is followed by d (at
// most an interval) without one, so that a flood of changes to a large view
// costs this goroutine at most half its time, and the changes coalesce
// meanwhile.
func (m *Mesh) run() {
	defer m.wg.Done()
	t := time.NewTimer(m.interval)
	defer t.Stop()
	var quiet time.Time // no publish before this
	for {
		select {
		case <-m.done:
			return
		case <-m.kick:
		case <-t.C:
		}
		now := time.Now()
		out, wait, stale := m.round(now)
		m.send(out)
		if stale {
			if now.Before(quiet) {
				wait = min(wait, quiet.Sub(now))
			} else {
				start := time.Now()
				m.flush()
				quiet = time.Now().Add(min(time.Since(start), m.interval))
			}
		}
		t.Reset(wait)
	}
}

// round does the announcer's work due at now under the lock and returns the
// messages to send, how long to sleep, and whether the view has changed
// since it was last published.
func (m *Mesh) round(now time.Time) (out []outgoing, wait time.Duration, stale bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, m.interval, false
	}
	self := m.id
	if !now.Before(m.refreshAt) {
		if o := m.origins[self]; o != nil {
			o.heard = now
			m.queue(self, 0)
		}
		// Up to a tenth early, so that nodes started together drift apart.
		m.refreshAt = now.Add(m.interval - rand.N(m.interval/10+1))
	}
	if !m.sweepAt.IsZero() && !now.Before(m.sweepAt) {
		m.sweep(now)
	}
	next := m.refreshAt
	if !m.sweepAt.IsZero() && m.sweepAt.Before(next) {
		next = m.sweepAt
	}

	bodies := make(map[core.NodeID][]byte)
	more := false
	for l, p := range m.pending {
		budget := sendBudget
		for id := range p {
			if budget <= 0 {
				more = true
				break
			}
			delete(p, id)
			o := m.origins[id]
			if o == nil {
				continue
			}
			b := bodies[id]
			if b == nil {
				b = m.relayBody(id, o, now)
				bodies[id] = b
			}
			out = append(out, outgoing{link: l, body: b})
			budget -= len(b)
		}
		if len(p) == 0 {
			delete(m.pending, l)
		}
	}
	wait = next.Sub(now)
	if more {
		wait = min(wait, max(m.interval/20, time.Millisecond))
	}
	return out, max(wait, 0), m.shown != m.changes
}

// sweep drops the origins fallen silent and the tombstones ended by now, and
// notes when the next is due. Caller holds m.mu.
func (m *Mesh) sweep(now time.Time) {
	m.sweepAt = time.Time{}
	for id, o := range m.origins {
		if id == m.id {
			continue
		}
		if e := o.expires(); !now.Before(e) {
			m.log.Debug("origin silent; its services expire", "node", id, "services", len(o.services))
			m.replace(id, nil)
		} else {
			m.sweepBy(e)
		}
	}
	for id, t := range m.gone {
		if !now.Before(t.until) {
			delete(m.gone, id)
		} else {
			m.sweepBy(t.until)
		}
	}
}

// sweepBy makes the announcer sweep at t at the latest. Refreshes only move
// expiries later, so the announcer scans the origins when one may be due
// rather than every round. Caller holds m.mu.
func (m *Mesh) sweepBy(t time.Time) {
	if m.sweepAt.IsZero() || t.Before(m.sweepAt) {
		m.sweepAt = t
	}
}

// relayBody is o's message as this node sends it at now: a copy with its age
// set. Caller holds m.mu.
func (m *Mesh) relayBody(id core.NodeID, o *origin, now time.Time) []byte {
	b := []byte(o.msg)
	if id != m.id {
		setAge(b, now.Sub(o.heard))
	}
	return b
}

// send hands messages to the node. Sending only queues, so it never waits on
// the network; a link found gone is forgotten. It is called without m.mu,
// since the node may call back into discovery from Send.
func (m *Mesh) send(out []outgoing) {
	for _, o := range out {
		err := m.mesh.Send(o.link, wire.KindDiscovery, o.body)
		if err == nil {
			continue
		}
		m.mu.Lock()
		if errors.Is(err, core.ErrLinkLost) {
			delete(m.links, o.link)
			delete(m.pending, o.link)
			delete(m.warned, o.link)
			m.mu.Unlock()
			continue
		}
		_, warned := m.warned[o.link]
		m.warned[o.link] = struct{}{}
		m.mu.Unlock()
		if !warned {
			// Most likely the peer takes smaller frames than a snapshot needs.
			m.log.Warn("cannot send discovery message; the peer misses some services", "link", o.link, "bytes", len(o.body), "error", err)
		}
	}
}

// replace makes o what this node holds of origin id (nil: nothing), keeps the
// totals, and tells the watchers what changed. Its cost grows with the two
// snapshots, not with what the node holds; a flush publishes the change.
// Caller holds m.mu.
func (m *Mesh) replace(id core.NodeID, o *origin) {
	var prev, next []core.Service
	if old := m.origins[id]; old != nil {
		prev = old.services
		m.held -= old.cost
		m.services -= len(old.services)
	}
	if o == nil {
		delete(m.origins, id)
	} else {
		next = o.services
		m.origins[id] = o
		m.held += o.cost
		m.services += len(o.services)
		if id != m.id {
			m.sweepBy(o.expires())
		}
	}
	// Origins hold disjoint services (each its own node's), so what changed
	// in the union is what changed in this origin.
	added, removed := diff(prev, next)
	if len(added) == 0 && len(removed) == 0 {
		return
	}
	m.changes++
	m.notify(added, removed)
}

// flush publishes the union of every origin's services if it changed since
// the last publish. One flush runs at a time, so that views reach the node in
// order; it builds the view and hands it over without m.mu, so that the
// links' readers do not wait meanwhile.
func (m *Mesh) flush() {
	m.pubMu.Lock()
	defer m.pubMu.Unlock()
	if m.publish == nil {
		return
	}
	m.mu.Lock()
	changes := m.changes
	if m.closed || m.shown == changes {
		m.mu.Unlock()
		return
	}
	parts, n := m.parts(), m.services
	m.mu.Unlock()
	m.publish(join(parts, n))
	m.mu.Lock()
	m.shown = changes
	m.mu.Unlock()
}

// part is one origin's services, in port order.
type part struct {
	node     core.NodeID
	services []core.Service
}

// parts lists what every origin holds; the slices are never modified, so the
// caller may read them after releasing m.mu. Caller holds m.mu.
func (m *Mesh) parts() []part {
	ps := make([]part, 0, len(m.origins))
	for id, o := range m.origins {
		if len(o.services) > 0 {
			ps = append(ps, part{id, o.services})
		}
	}
	return ps
}

// join makes a view of n services out of parts, ordered by node, then port,
// so that the instances of each name, as the node groups them, come in a
// stable order for selectors that depend on it (RoundRobin). Never nil.
func join(parts []part, n int) []core.Service {
	slices.SortFunc(parts, func(a, b part) int { return cmp.Compare(a.node, b.node) })
	view := make([]core.Service, 0, n)
	for _, p := range parts {
		view = append(view, p.services...)
	}
	return view
}

// refuse counts a snapshot dropped for a bound and logs it, at most once a
// minute per bound. Caller holds m.mu.
func (m *Mesh) refuse(r *refusals, now time.Time, msg string, args ...any) {
	r.count++
	if !r.logged.IsZero() && now.Sub(r.logged) < time.Minute {
		return
	}
	r.logged = now
	m.log.Warn(msg, append(args, "refused_so_far", r.count)...)
}

// Estimates, from above, of the memory that parts of a held snapshot take
// besides the message and the services (TestFootprint checks them).
const (
	originBytes   = 256 // the origin record and its entries in the mesh's maps
	metadataBytes = 400 // one service's metadata map, plus pairBytes per pair
	pairBytes     = 64
)

// footprint is what holding a snapshot takes, as MaxServiceBytes counts it:
// the message, the services (whose strings share the message's memory) and
// their metadata maps.
func footprint(msg string, services []core.Service) int {
	n := originBytes + allocated(len(msg)) + allocated(len(services)*int(unsafe.Sizeof(core.Service{})))
	for _, s := range services {
		if len(s.Metadata) > 0 {
			n += metadataBytes + pairBytes*len(s.Metadata)
		}
	}
	return n
}

// allocated is, from above, what the Go allocator takes for n bytes: up to
// 32 KiB its size classes are at most an eighth (or 16 bytes) apart, and a
// larger object takes whole 8 KiB pages. Nothing takes nothing (a nil slice).
func allocated(n int) int {
	const page = 8 << 10
	if n == 0 {
		return 0
	}
	if n <= 32<<10 {
		return n + n/8 + 16
	}
	return (n + page - 1) / page * page
}
