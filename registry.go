package astranet

import (
	"sort"
)

// ServiceId is one entry of a registry: a service instance (Services) or a
// route to a node (Routes).
type ServiceId struct {
	Service  string // service name with its environment suffix; "" for routes and port-only listeners
	Host     NodeID // the node that serves it, or the route's destination
	Port     uint32
	Upstream NodeID // for routes: the next hop
	Metric   uint32 // for routes: the distance (1 for a direct link)
}

// RegistryStorage is a snapshot of services or routes.
type RegistryStorage struct {
	entries []ServiceId
}

// Iter calls f for each entry in order until f returns false.
func (r *RegistryStorage) Iter(f func(ServiceId) bool) {
	for _, e := range r.entries {
		if !f(e) {
			return
		}
	}
}

// Len is the number of entries.
func (r *RegistryStorage) Len() int { return len(r.entries) }

// Lookup returns the entries of service name.
func (r *RegistryStorage) Lookup(name string) []ServiceId {
	var out []ServiceId
	for _, e := range r.entries {
		if e.Service == name {
			out = append(out, e)
		}
	}
	return out
}

func (n *node) Services() []ServiceId {
	c, err := n.engine()
	if err != nil {
		return nil
	}
	var out []ServiceId
	for _, s := range c.Bound() {
		out = append(out, ServiceId{Service: s.Name, Host: s.Node, Port: s.Port})
	}
	for _, s := range c.Services() {
		if s.Node != c.ID() {
			out = append(out, ServiceId{Service: s.Name, Host: s.Node, Port: s.Port})
		}
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
	for _, l := range c.Links() {
		if !seen[l.Peer] {
			seen[l.Peer] = true
			out = append(out, ServiceId{Host: l.Peer, Upstream: l.Peer, Metric: 1})
		}
	}
	for _, r := range c.Routes() {
		if !seen[r.Dst] {
			seen[r.Dst] = true
			out = append(out, ServiceId{Host: r.Dst, Upstream: r.NextHop, Metric: r.Metric})
		}
	}
	sortIDs(out)
	return out
}

func (n *node) ServiceMap() *RegistryStorage { return &RegistryStorage{entries: n.Services()} }
func (n *node) RoutesMap() *RegistryStorage  { return &RegistryStorage{entries: n.Routes()} }

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
