package main

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	"github.com/hashicorp/go-hclog"
)

// Costs, bounds and the message format.
const (
	costPreferred = 1
	costDefault   = 10
	costAvoided   = 100
	infinity      = 1 << 16 // a metric at or past it is unreachable
	maxEntries    = 4096    // routes one message may carry
	entrySize     = 12      // node id (8) + metric (4)
	msgVersion    = 1
	minInterval   = 10 * time.Millisecond
	maxInterval   = 24 * time.Hour // far below where 3.5 intervals overflow a time.Duration
)

// policy is the plugin's core.Routing.
type policy struct {
	log      hclog.Logger
	prefer   map[string]bool
	avoid    map[string]bool
	pins     map[core.NodeID]core.NodeID // destination -> neighbour
	interval time.Duration

	mesh core.Mesh
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	publish func([]core.Route)
	links   map[uint64]core.LinkInfo
	heard   map[uint64]map[core.NodeID]heard // by link: what its neighbour offered
	table   map[core.NodeID]core.Route
	closed  bool
}

type heard struct {
	metric uint32
	at     time.Time
}

func newPolicy(log hclog.Logger) *policy {
	return &policy{log: log, prefer: map[string]bool{}, avoid: map[string]bool{}, pins: map[core.NodeID]core.NodeID{},
		interval: time.Second, links: map[uint64]core.LinkInfo{}, heard: map[uint64]map[core.NodeID]heard{},
		table: map[core.NodeID]core.Route{}}
}

// Configure takes the options the package doc lists.
func (p *policy) Configure(opts map[string]string) error {
	for _, l := range splitList(opts["prefer"]) {
		p.prefer[l] = true
	}
	for _, l := range splitList(opts["avoid"]) {
		p.avoid[l] = true
	}
	for _, pin := range splitList(opts["pin"]) {
		dst, via, ok := strings.Cut(pin, "=")
		d, err1 := core.ParseNodeID(dst)
		v, err2 := core.ParseNodeID(via)
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("option pin: %q is not <node id>=<node id>", pin)
		}
		p.pins[d] = v
	}
	if v, ok := opts["interval"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < minInterval || d > maxInterval {
			return fmt.Errorf("option interval=%q: want a duration from %v to %v", v, minInterval, maxInterval)
		}
		p.interval = d
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// cost is a link's cost under the rules; avoid wins over prefer.
func (p *policy) cost(l core.LinkInfo) uint32 {
	labels := []string{"network:" + l.Network, "peer:" + l.Peer.String()}
	switch {
	case slices.ContainsFunc(labels, func(s string) bool { return p.avoid[s] }):
		return costAvoided
	case slices.ContainsFunc(labels, func(s string) bool { return p.prefer[s] }):
		return costPreferred
	}
	return costDefault
}

func (p *policy) Start(m core.Mesh, publish func([]core.Route)) error {
	p.mu.Lock()
	p.mesh, p.publish = m, publish
	for _, l := range m.Links() {
		p.links[l.ID] = l
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	p.recomputeLocked()
	p.mu.Unlock()
	go p.run()
	return nil
}

// run advertises and expires, each interval.
func (p *policy) run() {
	defer close(p.done)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		p.advertise()
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.mu.Lock()
		p.recomputeLocked()
		p.mu.Unlock()
	}
}

// advertise sends each neighbour the routes that do not go through it.
func (p *policy) advertise() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	router := p.mesh.Caps()&wire.CapRouter != 0
	msgs := make(map[uint64][]byte, len(p.links))
	for id := range p.links {
		b := appendEntry([]byte{msgVersion}, p.mesh.ID(), 0)
		if router {
			for dst, r := range p.table {
				if r.Link == id || len(b) >= 1+maxEntries*entrySize {
					continue
				}
				b = appendEntry(b, dst, r.Metric)
			}
		}
		msgs[id] = b
	}
	p.mu.Unlock()
	for id, b := range msgs {
		if err := p.mesh.Send(id, wire.KindRouting, b); err != nil {
			p.log.Debug("advertising", "link", id, "error", err)
		}
	}
}

// appendEntry appends one entry of a message: a destination and its metric.
// A message is the version byte, then the sender itself at metric 0, then
// at most maxEntries-1 more entries.
func appendEntry(b []byte, dst core.NodeID, metric uint32) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(dst))
	return binary.BigEndian.AppendUint32(b, metric)
}

var errBadMessage = errors.New("malformed policy routing message")

func parseAdvert(body []byte) (map[core.NodeID]uint32, error) {
	if len(body) < 1 || body[0] != msgVersion || (len(body)-1)%entrySize != 0 || (len(body)-1)/entrySize > maxEntries {
		return nil, errBadMessage
	}
	out := make(map[core.NodeID]uint32, (len(body)-1)/entrySize)
	for b := body[1:]; len(b) > 0; b = b[entrySize:] {
		dst := core.NodeID(binary.BigEndian.Uint64(b))
		if dst == 0 {
			return nil, errBadMessage
		}
		out[dst] = min(binary.BigEndian.Uint32(b[8:]), infinity)
	}
	return out, nil
}

func (p *policy) HandleControl(from core.LinkInfo, body []byte) {
	routes, err := parseAdvert(body)
	if err != nil {
		p.log.Debug("dropping a routing message", "link", from.ID, "error", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.links[from.ID]; !ok || p.closed {
		return
	}
	now := time.Now()
	h := make(map[core.NodeID]heard, len(routes))
	for dst, m := range routes {
		h[dst] = heard{m, now}
	}
	p.heard[from.ID] = h
	p.recomputeLocked()
}

func (p *policy) LinkUp(l core.LinkInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.links[l.ID] = l
	p.recomputeLocked()
}

func (p *policy) LinkDown(l core.LinkInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.links, l.ID)
	delete(p.heard, l.ID)
	p.recomputeLocked()
}

// recomputeLocked picks each destination's best link, applies the pins and
// publishes the table if it changed.
func (p *policy) recomputeLocked() {
	if p.publish == nil || p.closed {
		return
	}
	self := p.mesh.ID()
	expiry := time.Now().Add(-p.interval * 7 / 2)
	best := map[core.NodeID]core.Route{}
	offer := func(dst core.NodeID, l core.LinkInfo, metric uint32) {
		if dst == self || metric >= infinity {
			return
		}
		r, ok := best[dst]
		if !ok || metric < r.Metric || (metric == r.Metric && l.ID < r.Link) {
			best[dst] = core.Route{Dst: dst, Link: l.ID, NextHop: l.Peer, Metric: metric}
		}
	}
	for id, l := range p.links {
		c := p.cost(l)
		offer(l.Peer, l, c)
		for dst, h := range p.heard[id] {
			if h.at.Before(expiry) {
				continue
			}
			offer(dst, l, h.metric+c)
		}
	}
	for dst, via := range p.pins {
		for id, l := range p.links {
			if l.Peer != via {
				continue
			}
			metric := p.cost(l)
			if dst != via {
				h, ok := p.heard[id][dst]
				if !ok || h.at.Before(expiry) {
					continue
				}
				metric += h.metric
			}
			if dst != self && metric < infinity {
				best[dst] = core.Route{Dst: dst, Link: id, NextHop: via, Metric: metric}
			}
			break
		}
	}
	changed := len(best) != len(p.table)
	for dst, r := range best {
		if o, ok := p.table[dst]; !ok || o.Link != r.Link || o.Metric != r.Metric {
			changed = true
			r.Updated = time.Now()
		} else {
			r.Updated = o.Updated
		}
		best[dst] = r
	}
	p.table = best
	if changed {
		out := make([]core.Route, 0, len(best))
		for _, r := range best {
			out = append(out, r)
		}
		slices.SortFunc(out, func(a, b core.Route) int { return cmp.Compare(a.Dst, b.Dst) })
		p.publish(out)
	}
}

func (p *policy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	stop := p.stop
	p.mu.Unlock()
	if stop != nil {
		close(stop)
		<-p.done
	}
	return nil
}
