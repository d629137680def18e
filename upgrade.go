package astranet

import (
	"context"
	"maps"
	"net"
	"strings"
	"sync"

	"github.com/astranet-go/astranet/core"
)

// metaListen is the service metadata key under which a node with direct
// upgrade announces where it can be joined: "network://address" entries,
// comma-separated.
const metaListen = "astranet.listen"

// WithDirectUpgrade lets long-lived traffic stop crossing routers, as the
// original's FOLLOW did. The node announces where it can be joined in the
// metadata of the services it binds. When it dials a service on a node it has
// no link to, it joins that node directly in the background (once per node,
// if that node announced an address), and later dials take the direct link.
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

// upgrader is the direct-upgrade state of one node.
type upgrader struct {
	mu     sync.Mutex
	listen []string        // "network://address" this node accepts links on
	tried  map[NodeID]bool // nodes already joined (or tried) directly
	wg     sync.WaitGroup  // background joins, waited for by Close
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

// upgrade joins the node behind conn directly if it is not a neighbour yet
// and announced where it can be joined.
func (n *node) upgrade(c *core.Node, conn net.Conn, service string) {
	if !n.s.upgrade || service == "" {
		return
	}
	peer := conn.RemoteAddr().(core.Addr).Node
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
	n.up.mu.Lock()
	if addrs == "" || n.up.tried[peer] {
		n.up.mu.Unlock()
		return
	}
	if n.up.tried == nil {
		n.up.tried = map[NodeID]bool{}
	}
	n.up.tried[peer] = true
	n.up.wg.Add(1)
	n.up.mu.Unlock()
	go func() {
		defer n.up.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), n.s.cfg.HandshakeTimeout)
		defer cancel()
		go func() { // a closing node ends the attempt
			select {
			case <-c.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		for _, a := range strings.Split(addrs, ",") {
			network, addr, ok := strings.Cut(a, "://")
			if _, known := n.s.transports[network]; !ok || !known {
				continue
			}
			if err := c.Join(ctx, network, addr); err == nil {
				n.s.cfg.Logger.Debug("joined directly", "peer", peer, "addr", a)
				return
			}
		}
	}()
}
