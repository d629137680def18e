package sdk

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/astranet-go/astranet/core"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
	"github.com/hashicorp/go-hclog"
)

// Conversions between core's types and the contract's messages. Messages from
// the other side are untrusted: a nil message converts to the zero value.

func toPBService(s core.Service) *pluginv1.Service {
	return &pluginv1.Service{Name: s.Name, Node: uint64(s.Node), Port: s.Port, Metadata: maps.Clone(s.Metadata)}
}

func fromPBService(s *pluginv1.Service) core.Service {
	if s == nil {
		return core.Service{}
	}
	return core.Service{Name: s.GetName(), Node: core.NodeID(s.GetNode()), Port: s.GetPort(), Metadata: maps.Clone(s.GetMetadata())}
}

// checkService reports why a service a plugin published is unusable, by the
// embedded discovery's rules (core.CheckService), and it must name its node.
func checkService(s core.Service) error {
	if err := core.CheckService(s); err != nil {
		return err
	}
	if s.Node == 0 {
		return fmt.Errorf("%q has node 0", s.Name)
	}
	return nil
}

// checkRoute reports why a route a plugin published is unusable.
func checkRoute(r core.Route, self core.NodeID) error {
	switch r.Dst {
	case 0:
		return errors.New("a route to node 0")
	case self:
		return fmt.Errorf("a route to the node itself (%v)", self)
	}
	return nil
}

// dropped logs, once per message, the entries a plugin sent that were left
// out, with the first reason: a plugin that keeps sending them must not
// flood the log with a line per entry.
func dropped(log hclog.Logger, msg string, n int, first error) {
	if n > 0 {
		log.Warn(msg, "dropped", n, "first", first.Error())
	}
}

func toPBServices(ss []core.Service) []*pluginv1.Service {
	out := make([]*pluginv1.Service, len(ss))
	for i, s := range ss {
		out[i] = toPBService(s)
	}
	return out
}

func toPBLink(l core.LinkInfo) *pluginv1.LinkInfo {
	return &pluginv1.LinkInfo{Id: l.ID, Peer: uint64(l.Peer), Network: l.Network, Caps: l.Caps,
		RttNanos: int64(l.RTT), Streams: int64(l.Streams), Buffered: l.Buffered}
}

func fromPBLink(l *pluginv1.LinkInfo) core.LinkInfo {
	if l == nil {
		return core.LinkInfo{}
	}
	return core.LinkInfo{ID: l.GetId(), Peer: core.NodeID(l.GetPeer()), Network: l.GetNetwork(), Caps: l.GetCaps(),
		RTT: time.Duration(l.GetRttNanos()), Streams: int(l.GetStreams()), Buffered: l.GetBuffered()}
}

func toPBLinks(ls []core.LinkInfo) []*pluginv1.LinkInfo {
	out := make([]*pluginv1.LinkInfo, len(ls))
	for i, l := range ls {
		out[i] = toPBLink(l)
	}
	return out
}

func toPBRoute(r core.Route) *pluginv1.Route {
	var updated int64
	if !r.Updated.IsZero() {
		updated = r.Updated.UnixNano()
	}
	return &pluginv1.Route{Dst: uint64(r.Dst), Link: r.Link, NextHop: uint64(r.NextHop), Metric: r.Metric, UpdatedUnixNanos: updated}
}

func fromPBRoute(r *pluginv1.Route) core.Route {
	if r == nil {
		return core.Route{}
	}
	var updated time.Time
	if n := r.GetUpdatedUnixNanos(); n != 0 {
		updated = time.Unix(0, n)
	}
	return core.Route{Dst: core.NodeID(r.GetDst()), Link: r.GetLink(), NextHop: core.NodeID(r.GetNextHop()), Metric: r.GetMetric(), Updated: updated}
}

func toPBRoutes(rs []core.Route) []*pluginv1.Route {
	out := make([]*pluginv1.Route, len(rs))
	for i, r := range rs {
		out[i] = toPBRoute(r)
	}
	return out
}

func fromPBRoutes(rs []*pluginv1.Route) []core.Route {
	out := make([]core.Route, len(rs))
	for i, r := range rs {
		out[i] = fromPBRoute(r)
	}
	return out
}

// routesFromPlugin converts a table a plugin published for node self,
// leaving out (and logging) the routes checkRoute refuses.
func routesFromPlugin(rs []*pluginv1.Route, self core.NodeID, log hclog.Logger) []core.Route {
	out := make([]core.Route, 0, len(rs))
	n, first := 0, error(nil)
	for _, r := range rs {
		x := fromPBRoute(r)
		if err := checkRoute(x, self); err != nil {
			if n++; first == nil {
				first = err
			}
			continue
		}
		out = append(out, x)
	}
	dropped(log, "routing plugin published routes that are not valid; dropped", n, first)
	return out
}

// serviceKey identifies one service instance in a view.
type serviceKey struct {
	name string
	node core.NodeID
	port uint32
}

func keyOf(s core.Service) serviceKey { return serviceKey{s.Name, s.Node, s.Port} }
