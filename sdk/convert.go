package sdk

import (
	"maps"
	"time"

	"github.com/astranet-go/astranet/core"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
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

// serviceKey identifies one service instance in a view.
type serviceKey struct {
	name string
	node core.NodeID
	port uint32
}

func keyOf(s core.Service) serviceKey { return serviceKey{s.Name, s.Node, s.Port} }
