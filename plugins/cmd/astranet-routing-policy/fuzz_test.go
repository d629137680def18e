package main

import (
	"encoding/binary"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	"github.com/hashicorp/go-hclog"
)

// advert builds a message from entries, as advertise does.
func advert(entries ...uint64) []byte {
	b := []byte{msgVersion}
	for i := 0; i+1 < len(entries); i += 2 {
		b = appendEntry(b, core.NodeID(entries[i]), uint32(entries[i+1]))
	}
	return b
}

// FuzzParseAdvert: a routing message comes from a neighbour and is
// untrusted. parseAdvert must refuse, with errBadMessage, anything but the
// version byte and whole entries (at most maxEntries, none to node 0); what
// it accepts gives each destination the metric of its last entry, capped at
// infinity, and the entries re-encoded (appendEntry) parse to the same table.
func FuzzParseAdvert(f *testing.F) {
	f.Add(advert(2, 0))
	f.Add(advert(2, 0, 5, 10, 6, 110))
	f.Add(advert(2, 0, 5, 10, 5, 20))
	f.Add(advert(2, 0, 5, infinity, 6, infinity+1, 7, 1<<32-1))
	f.Add(advert(2, 0, 0, 10))
	f.Add(advert())
	f.Add(advert(2, 0)[:12])
	f.Add(append(advert(2, 0), 0))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0})
	f.Add([]byte{})
	many := advert()
	for i := range maxEntries + 1 {
		many = appendEntry(many, core.NodeID(i+1), uint32(i))
	}
	f.Add(many)
	f.Add(many[:len(many)-entrySize])
	f.Fuzz(func(t *testing.T, body []byte) {
		routes, err := parseAdvert(body)
		if err != nil {
			if !errors.Is(err, errBadMessage) || routes != nil {
				t.Fatalf("parseAdvert(% x) = %v, %v", body, routes, err)
			}
			return
		}
		n := (len(body) - 1) / entrySize
		if len(body) < 1 || body[0] != msgVersion || (len(body)-1)%entrySize != 0 || n > maxEntries {
			t.Fatalf("parseAdvert accepted a message of %d bytes, version %d", len(body), body[0])
		}
		want := make(map[core.NodeID]uint32, n)
		for i := range n {
			e := body[1+i*entrySize:]
			dst := core.NodeID(binary.BigEndian.Uint64(e))
			if dst == 0 {
				t.Fatalf("parseAdvert accepted an entry for node 0: % x", body)
			}
			want[dst] = min(binary.BigEndian.Uint32(e[8:]), infinity)
		}
		if !maps.Equal(routes, want) {
			t.Fatalf("parseAdvert(% x) = %v, want %v", body, routes, want)
		}
		re := []byte{msgVersion}
		for _, dst := range slices.Sorted(maps.Keys(routes)) {
			re = appendEntry(re, dst, routes[dst])
		}
		again, err := parseAdvert(re)
		if err != nil || !maps.Equal(again, routes) {
			t.Fatalf("re-encoded as % x, parsed as %v, %v; want %v", re, again, err, routes)
		}
	})
}

// fixedMesh is a core.Mesh with a fixed id and links, which sends nothing.
type fixedMesh struct {
	id    core.NodeID
	links []core.LinkInfo
}

func (m *fixedMesh) ID() core.NodeID                      { return m.id }
func (m *fixedMesh) Caps() uint32                         { return wire.CapRouter | wire.CapServer | wire.CapClient }
func (m *fixedMesh) Links() []core.LinkInfo               { return slices.Clone(m.links) }
func (m *fixedMesh) Routes() []core.Route                 { return nil }
func (m *fixedMesh) Send(uint64, wire.Kind, []byte) error { return nil }

// FuzzHandleControl feeds a policy with two links (to node 2 over tcp, and
// to node 3 over quic, which it prefers; node 9 is pinned through node 2)
// one message from each neighbour. Whatever they say, the table it publishes
// has a route to each neighbour and to every node offered below infinity,
// none to node 0 or itself, each through a
// link it has, to that link's peer, below infinity; and every route but the
// pinned one is the cheapest the messages offer (lower link id on a tie).
func FuzzHandleControl(f *testing.F) {
	f.Add(advert(2, 0, 5, 10, 9, 1), advert(3, 0, 5, 10, 9, 1))
	f.Add(advert(2, 0, 1, 0, 3, 0), advert(3, 0, 2, 0, 1, 5))
	f.Add(advert(2, 0, 5, infinity-5), advert(3, 0, 5, infinity-1))
	f.Add(advert(2, 0, 5, 1<<32-1), []byte{2})
	f.Add(advert(2, 0, 0, 1), advert(3, 0, 3, 7, 3, 1))
	f.Fuzz(func(t *testing.T, from2, from3 []byte) {
		const self = 1
		links := []core.LinkInfo{{ID: 1, Peer: 2, Network: "tcp"}, {ID: 2, Peer: 3, Network: "quic"}}
		p := newPolicy(hclog.NewNullLogger())
		if err := p.Configure(map[string]string{"prefer": "network:quic", "pin": "0000000000000009=0000000000000002"}); err != nil {
			t.Fatal(err)
		}
		var published []core.Route
		p.mesh, p.publish = &fixedMesh{id: self, links: links}, func(rs []core.Route) { published = rs }
		for _, l := range links {
			p.LinkUp(l)
		}
		p.HandleControl(links[0], from2)
		p.HandleControl(links[1], from3)

		heard := map[uint64]map[core.NodeID]uint32{}
		for i, body := range [][]byte{from2, from3} {
			if m, err := parseAdvert(body); err == nil {
				heard[links[i].ID] = m
			}
		}
		byDst := map[core.NodeID]core.Route{}
		for _, r := range published {
			byDst[r.Dst] = r
			i := slices.IndexFunc(links, func(l core.LinkInfo) bool { return l.ID == r.Link })
			switch {
			case r.Dst == 0 || r.Dst == self:
				t.Fatalf("a route to node %v: %+v", r.Dst, published)
			case i < 0 || r.NextHop != links[i].Peer:
				t.Fatalf("route %+v is not through a link and its peer", r)
			case r.Metric >= infinity:
				t.Fatalf("route %+v at or past infinity", r)
			}
			if r.Dst == 9 && heard[1] != nil {
				if m, ok := heard[1][9]; ok && m+costDefault < infinity {
					if r.Link != 1 || r.Metric != m+costDefault {
						t.Fatalf("pinned route %+v, want through link 1 at %d", r, m+costDefault)
					}
					continue
				}
			}
			best, bestLink := uint32(infinity), uint64(0)
			for _, l := range links {
				c := p.cost(l)
				m, ok := heard[l.ID][r.Dst]
				if l.Peer == r.Dst {
					m, ok = 0, true
				}
				if ok && m+c < best {
					best, bestLink = m+c, l.ID
				}
			}
			if r.Metric != best || r.Link != bestLink {
				t.Fatalf("route %+v, want link %d at %d (heard %v)", r, bestLink, best, heard)
			}
		}
		for id, m := range heard {
			c := p.cost(links[id-1])
			for dst, metric := range m {
				if _, ok := byDst[dst]; !ok && dst != self && metric+c < infinity {
					t.Fatalf("no route to %v, offered at %d on link %d: %+v", dst, metric, id, published)
				}
			}
		}
		if _, ok := byDst[2]; !ok {
			t.Fatalf("no route to neighbour 2: %+v", published)
		}
		if _, ok := byDst[3]; !ok {
			t.Fatalf("no route to neighbour 3: %+v", published)
		}
		if len(byDst) != len(published) {
			t.Fatalf("two routes to one node: %+v", published)
		}
	})
}

// FuzzConfigure: the options come from the host's configuration. What
// Configure takes is what the package doc says, in bounds: every label
// listed, every pin between two node ids that are not 0, an interval of at
// least minInterval of which the 3.5 intervals after which routes expire fit
// a time.Duration. What it refuses, it refuses with an error naming the
// option.
func FuzzConfigure(f *testing.F) {
	f.Add("network:quic, peer:00000000000000b2", "network:tcp", "00000000000000b2=00000000000000b3", true, "1s")
	f.Add("", "", "", false, "")
	f.Add(" , ,", ",", " 0000000000000009=0000000000000002 ,", true, "10ms")
	f.Add("", "", "0000000000000009=0000000000000009", true, "87600h")
	f.Add("", "", "", true, "366000h")
	f.Add("", "", "00000000000000b2", true, "9ms")
	f.Add("", "", "00000000000000b2=", true, "-1s")
	f.Add("", "", "0000000000000000=00000000000000b2", true, "soon")
	f.Add("", "", "00000000000000b2 = 00000000000000b3", true, "1")
	f.Fuzz(func(t *testing.T, prefer, avoid, pin string, hasInterval bool, interval string) {
		opts := map[string]string{"prefer": prefer, "avoid": avoid, "pin": pin}
		if hasInterval {
			opts["interval"] = interval
		}
		p := newPolicy(hclog.NewNullLogger())
		if err := p.Configure(opts); err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "option pin") && !strings.HasPrefix(msg, "option interval") {
				t.Fatalf("Configure(%q): %q names no option", opts, msg)
			}
			return
		}
		for _, l := range splitList(prefer) {
			if !p.prefer[l] {
				t.Fatalf("Configure(%q) does not prefer %q", opts, l)
			}
		}
		for _, l := range splitList(avoid) {
			if !p.avoid[l] {
				t.Fatalf("Configure(%q) does not avoid %q", opts, l)
			}
		}
		for dst, via := range p.pins {
			if dst == 0 || via == 0 {
				t.Fatalf("Configure(%q) pinned %v to %v", opts, dst, via)
			}
		}
		if n := len(splitList(pin)); len(p.pins) > n || (n > 0 && len(p.pins) == 0) {
			t.Fatalf("Configure(%q) took %d pins from %d", opts, len(p.pins), n)
		}
		if p.interval < minInterval || p.interval > math.MaxInt64/7 {
			t.Fatalf("Configure(%q) took interval %v: below %v, or 3.5 of them overflow", opts, p.interval, minInterval)
		}
	})
}
