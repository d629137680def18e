package astranet

import (
	"context"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/astranet-go/astranet/core"
)

// metaListen is the service metadata key under which a node with direct
// upgrade announces where it can be joined: "network://address" entries,
// comma-separated.
const metaListen = "astranet.listen"

// WithDirectUpgrade lets long-lived traffic stop crossing routers, as the
// original's FOLLOW did. The node announces where it can be joined in the
// metadata of the services it binds. When it dials a service on a node it has
// no link to, it connects to that node directly in the background (if that
// node announced an address; at most once a minute per node), and later dials
// take the direct link. A direct link is not re-dialled when it drops: the
// next dial that crosses a router upgrades again.
//
// advertise lists the addresses to announce ("tcp4://10.0.0.5:10000"); with
// none, the node announces the addresses ListenAndServe bound to, skipping
// unspecified ones such as ":10000". Call ListenAndServe before Bind. Off by
// default: it opens connections a user may not expect, which firewalls and
// NAT may not allow.
func WithDirectUpgrade(advertise ...string) Option {
	return func(s *settings) {
		s.upgrade = true
		s.advertise = advertise
	}
}

// upgradeEvery is how often a node tries (or checks) a direct link to one
// peer at most.
const upgradeEvery = time.Minute

// upgrader is the direct-upgrade state of one node.
type upgrader struct {
	mu     sync.Mutex
	listen []string             // "network://address" this node accepts links on
	tried  map[NodeID]time.Time // when a direct link to each node was last tried or found; pruned after upgradeEvery
	closed bool                 // set by Close: no new attempts
	wg     sync.WaitGroup       // attempts in flight, waited for by Close
}

// due reports whether peer may be looked at now, and if so records the
// attempt. Entries older than upgradeEvery are dropped, so the map holds
// only the peers of the last minute.
func (u *upgrader) due(peer NodeID, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	if at, ok := u.tried[peer]; ok && now.Sub(at) < upgradeEvery {
		return false
	}
	if u.tried == nil {
		u.tried = map[NodeID]time.Time{}
	}
	for p, at := range u.tried {
		if now.Sub(at) >= upgradeEvery {
			delete(u.tried, p)
		}
	}
	u.tried[peer] = now
	return true
}

// close stops new attempts and waits for those in flight.
func (u *upgrader) close() {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.wg.Wait()
}

// noteListen records an address ListenAndServe bound to.
func (n *node) noteListen(network string, addr net.Addr) {
	if !n.s.upgrade {
		return
	}
	host, _, err := net.SplitHostPort(addr.String())
	if err != nil || host == "" {
		return
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return
	}
	n.up.mu.Lock()
	n.up.listen = append(n.up.listen, network+"://"+addr.String())
	n.up.mu.Unlock()
}

// announce adds this node's join addresses to a service's metadata.
func (n *node) announce(md map[string]string) map[string]string {
	if !n.s.upgrade {
		return md
	}
	addrs := n.s.advertise
	if len(addrs) == 0 {
		n.up.mu.Lock()
		addrs = append([]string(nil), n.up.listen...)
		n.up.mu.Unlock()
	}
	if len(addrs) == 0 {
		return md
	}
	out := maps.Clone(md)
	if out == nil {
		out = map[string]string{}
	}
	out[metaListen] = strings.Join(addrs, ",")
	return out
}

// upgrade connects directly to the node behind conn if it is not a neighbour
// yet and announced where it can be joined.
func (n *node) upgrade(c *core.Node, conn net.Conn, service string) {
	if !n.s.upgrade || service == "" {
		return
	}
	peer := conn.RemoteAddr().(core.Addr).Node
	if peer == c.ID() || !n.up.due(peer, time.Now()) {
		return
	}
	for _, l := range c.Links() {
		if l.Peer == peer {
			return
		}
	}
	var addrs string
	for _, s := range c.Services() {
		if s.Node == peer && s.Name == service {
			addrs = s.Metadata[metaListen]
			break
		}
	}
	if addrs == "" {
		return
	}
	n.up.mu.Lock()
	if n.up.closed {
		n.up.mu.Unlock()
		return
	}
	n.up.wg.Add(1)
	n.up.mu.Unlock()
	go func() {
		defer n.up.wg.Done()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { // a closing node ends the attempt (Connect bounds it too)
			select {
			case <-c.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		for _, a := range n.joinAddrs(addrs) {
			if err := c.Connect(ctx, a.network, a.addr); err == nil {
				n.s.cfg.Logger.Debug("connected directly", "peer", peer, "addr", a.network+"://"+a.addr)
				return
			}
		}
	}()
}

// joinAddr is one address a node announced under metaListen.
type joinAddr struct{ network, addr string }

// joinAddrs reads a metaListen value, which another node wrote: it keeps, in
// order, the comma-separated "network://address" entries that name an
// address and a network this node has a transport for.
func (n *node) joinAddrs(v string) []joinAddr {
	var out []joinAddr
	for _, a := range strings.Split(v, ",") {
		network, addr, ok := strings.Cut(a, "://")
		if _, known := n.s.transports[network]; ok && known && addr != "" {
			out = append(out, joinAddr{network, addr})
		}
	}
	return out
}
