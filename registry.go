package astranet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// ServiceId is one entry of a registry: a service instance (ServiceMap) or a
// route to a node (RoutesMap).
type ServiceId struct {
	Service  string            // service name with its environment suffix; "" for routes and port-only listeners
	Host     NodeID            // the node that serves it, or the route's destination
	Port     uint32            // the listener's port; 0 for routes
	Upstream NodeID            // for routes: the next hop
	Metric   uint32            // for routes: the distance (lower is nearer)
	Updated  time.Time         // for routes: when routing last confirmed it; zero for a direct link without routing
	Metadata map[string]string // for services: what the listener announced
}

// String writes a service instance as "name@node:port" and a route as
// "node via next-hop metric m".
func (id ServiceId) String() string {
	if id.Service == "" && id.Port == 0 {
		return fmt.Sprintf("%v via %v metric %d", id.Host, id.Upstream, id.Metric)
	}
	return fmt.Sprintf("%s@%v:%d", id.Service, id.Host, id.Port)
}

// RegistryStorage is a live view of a node's services or routes: every call
// reads the node's current snapshot, and Watch follows its changes.
type RegistryStorage struct {
	node *node
	read func() []ServiceId
}

// Snapshot returns the current entries, sorted.
func (r *RegistryStorage) Snapshot() []ServiceId { return r.read() }

// Iter calls f for each current entry in order until f returns false.
func (r *RegistryStorage) Iter(f func(ServiceId) bool) {
	for _, e := range r.read() {
		if !f(e) {
			return
		}
	}
}

// Len is the number of current entries.
func (r *RegistryStorage) Len() int { return len(r.read()) }

// Lookup returns the current entries of service name. name is the full
// name, environment suffix included: "users.prod" for "users" bound by a
// WithEnv("prod") node.
func (r *RegistryStorage) Lookup(name string) []ServiceId {
	var out []ServiceId
	for _, e := range r.read() {
		if e.Service == name {
			out = append(out, e)
		}
	}
	return out
}

// DiscoverTimeout waits up to d for service name (the full name, as for
// Lookup) to have an entry and returns its entries, or ErrNoService.
func (r *RegistryStorage) DiscoverTimeout(name string, d time.Duration) ([]ServiceId, error) {
	c, err := r.node.engine()
	if err != nil {
		return nil, err
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		changed := c.Changes()
		if got := r.Lookup(name); len(got) > 0 {
			return got, nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, fmt.Errorf("%w: %q did not appear within %v", ErrNoService, name, d)
		case <-c.Done():
			return nil, ErrClosed
		}
	}
}

// Watch sends the current entries at once, then the entries again after each
// change, until ctx ends or the node closes; then it closes the channel. A
// slow reader misses intermediate states, never the latest one: the channel
// holds one snapshot and a newer one replaces it.
func (r *RegistryStorage) Watch(ctx context.Context) <-chan []ServiceId {
	out := make(chan []ServiceId, 1)
	c, err := r.node.engine()
	if err != nil {
		close(out)
		return out
	}
	go func() {
		defer close(out)
		var last []ServiceId
		first := true
		for {
			changed := c.Changes()
			if cur := r.read(); first || !slices.EqualFunc(cur, last, sameEntry) {
				first = false
				last = cur
				select { // replace an unread snapshot with this newer one
				case <-out:
				default:
				}
				out <- cur
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			case <-c.Done():
				return
			}
		}
	}()
	return out
}

// sameEntry reports whether Watch may treat a and b as the same entry: all
// but Updated (which moves with every routing refresh) equal.
func sameEntry(a, b ServiceId) bool {
	return a.Service == b.Service && a.Host == b.Host && a.Port == b.Port &&
		a.Upstream == b.Upstream && a.Metric == b.Metric && maps.Equal(a.Metadata, b.Metadata)
}

func (n *node) Services() []ServiceId {
	c, err := n.engine()
	if err != nil {
		return nil
	}
	type key struct {
		name string
		host NodeID
		port uint32
	}
	seen := map[key]bool{}
	var out []ServiceId
	add := func(id ServiceId) {
		key := key{id.Service, id.Host, id.Port}
		if !seen[key] {
			seen[key] = true
			out = append(out, id)
		}
	}
	for _, s := range c.Services() {
		add(ServiceId{Service: s.Name, Host: s.Node, Port: s.Port, Metadata: s.Metadata})
	}
	for _, s := range c.Bound() {
		add(ServiceId{Service: s.Name, Host: s.Node, Port: s.Port})
	}
	sortIDs(out)
	return out
}

func (n *node) Routes() []ServiceId {
	c, err := n.engine()
	if err != nil {
		return nil
	}
	var out []ServiceId
	seen := map[NodeID]bool{}
	for _, r := range c.Routes() {
		seen[r.Dst] = true
		out = append(out, ServiceId{Host: r.Dst, Upstream: r.NextHop, Metric: r.Metric, Updated: r.Updated})
	}
	for _, l := range c.Links() {
		if !seen[l.Peer] {
			seen[l.Peer] = true
			out = append(out, ServiceId{Host: l.Peer, Upstream: l.Peer, Metric: 1})
		}
	}
	sortIDs(out)
	return out
}

func (n *node) ServiceMap() *RegistryStorage { return &RegistryStorage{node: n, read: n.Services} }
func (n *node) RoutesMap() *RegistryStorage  { return &RegistryStorage{node: n, read: n.Routes} }

func sortIDs(ids []ServiceId) {
	sort.Slice(ids, func(i, j int) bool {
		a, b := ids[i], ids[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Port < b.Port
	})
}
