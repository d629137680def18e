package sdk

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protodelim"
	"google.golang.org/protobuf/proto"
)

// eventStream is a Watch stream that yields the events a test decoded, then
// io.EOF.
type eventStream struct {
	grpc.ClientStream // not called
	evs               []*pluginv1.WatchEvent
}

func (s *eventStream) Recv() (*pluginv1.WatchEvent, error) {
	if len(s.evs) == 0 {
		return nil, io.EOF
	}
	ev := s.evs[0]
	s.evs = s.evs[1:]
	return ev, nil
}

// delimited writes msgs as protodelim does: each after its varint length.
func delimited(msgs ...proto.Message) []byte {
	var b bytes.Buffer
	for _, m := range msgs {
		if _, err := protodelim.MarshalTo(&b, m); err != nil {
			panic(err)
		}
	}
	return b.Bytes()
}

func pbService(name string, node uint64, port uint32, md map[string]string) *pluginv1.Service {
	return &pluginv1.Service{Name: name, Node: node, Port: port, Metadata: md}
}

func pbSnapshot(ss ...*pluginv1.Service) *pluginv1.WatchEvent {
	return &pluginv1.WatchEvent{Event: &pluginv1.WatchEvent_Snapshot{Snapshot: &pluginv1.Snapshot{Services: ss}}}
}

func pbChanges(put, deleted []*pluginv1.Service) *pluginv1.WatchEvent {
	return &pluginv1.WatchEvent{Event: &pluginv1.WatchEvent_Changes{Changes: &pluginv1.Changes{Put: put, Deleted: deleted}}}
}

// FuzzWatch: a discovery plugin is another process, and what its Watch
// stream sends is untrusted. The bytes are a sequence of length-delimited
// WatchEvents, fed to follow as a stream. Every view follow publishes holds
// only services checkService accepts, once each, in order, and is the view
// the events describe (a snapshot replaces it, changes amend it, an invalid
// put removes an earlier version); a view once published does not change;
// and follow ends with the stream's error, or with one that says the plugin
// sent changes before a snapshot.
func FuzzWatch(f *testing.F) {
	good := pbService("echo", 7, 1, map[string]string{"zone": "a"})
	f.Add(delimited(pbSnapshot(good, pbService("web.staging", 8, 80, nil))))
	f.Add(delimited(pbSnapshot(good),
		pbChanges([]*pluginv1.Service{pbService("echo", 7, 1, map[string]string{"zone": "b"}), pbService("x", 9, 2, nil)}, nil),
		pbChanges(nil, []*pluginv1.Service{good}),
		&pluginv1.WatchEvent{Event: &pluginv1.WatchEvent_Progress{Progress: &pluginv1.Progress{}}},
		&pluginv1.WatchEvent{Event: &pluginv1.WatchEvent_ResetView{ResetView: &pluginv1.Reset{Reason: "compacted"}}},
		pbSnapshot(pbService("y", 9, 3, nil))))
	f.Add(delimited(pbSnapshot(good), pbChanges([]*pluginv1.Service{pbService("echo", 7, 1, map[string]string{"": "v"})}, nil)))
	f.Add(delimited(pbSnapshot(pbService("", 7, 1, nil), pbService("a b", 7, 2, nil), pbService("a", 0, 3, nil),
		pbService("a", 7, 0, nil), pbService(strings.Repeat("n", 256), 7, 4, nil), good, good)))
	f.Add(delimited(pbChanges([]*pluginv1.Service{good}, nil)))
	f.Add(delimited(&pluginv1.WatchEvent{Revision: 5}, pbSnapshot()))
	f.Add([]byte{0x05, 0x12})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var evs []*pluginv1.WatchEvent
		r := bufio.NewReader(bytes.NewReader(b))
		for {
			ev := &pluginv1.WatchEvent{}
			if protodelim.UnmarshalFrom(r, ev) != nil {
				break
			}
			evs = append(evs, ev)
		}
		// The model: what the events describe.
		type key = serviceKey
		var model map[key]core.Service
		var want [][]core.Service
		changesFirst := false
	events:
		for _, ev := range evs {
			switch e := ev.GetEvent().(type) {
			case *pluginv1.WatchEvent_Snapshot:
				model = map[key]core.Service{}
				for _, s := range e.Snapshot.GetServices() {
					applyPut(model, s)
				}
			case *pluginv1.WatchEvent_Changes:
				if model == nil {
					changesFirst = true
					break events
				}
				for _, s := range e.Changes.GetDeleted() {
					delete(model, key{s.GetName(), core.NodeID(s.GetNode()), s.GetPort()})
				}
				for _, s := range e.Changes.GetPut() {
					applyPut(model, s)
				}
			case *pluginv1.WatchEvent_ResetView:
				model = nil
				continue
			default:
				continue
			}
			want = append(want, listServices(model))
		}

		c := &DiscoveryClient{cfg: ClientConfig{Logger: hclog.NewNullLogger()}.withDefaults()}
		var got, copies [][]core.Service
		b2 := backoff{min: time.Millisecond, max: time.Millisecond}
		err := c.follow(&eventStream{evs: evs}, func(ss []core.Service) {
			got = append(got, ss)
			copies = append(copies, cloneServices(ss))
		}, &b2)
		switch {
		case changesFirst && (err == nil || !strings.Contains(err.Error(), "changes before a snapshot")):
			t.Fatalf("changes before a snapshot: follow returned %v", err)
		case !changesFirst && !errors.Is(err, io.EOF):
			t.Fatalf("follow returned %v, want the stream's io.EOF", err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d views published, want %d", len(got), len(want))
		}
		for i, view := range got {
			for j, s := range view {
				if err := checkService(s); err != nil {
					t.Fatalf("view %d has %+v, which checkService refuses: %v", i, s, err)
				}
				if j > 0 && !servicesInOrder(view[j-1], s) {
					t.Fatalf("view %d: %+v then %+v: out of order, or twice", i, view[j-1], s)
				}
			}
			if !sameServices(view, want[i]) {
				t.Fatalf("view %d is %+v, want %+v", i, view, want[i])
			}
			if !sameServices(view, copies[i]) {
				t.Fatalf("view %d changed after it was published: %+v, was %+v", i, view, copies[i])
			}
		}
	})
}

// applyPut puts s in the model if it is valid (a port, a good name, bounded
// metadata, a node), or takes out an earlier version if not.
func applyPut(model map[serviceKey]core.Service, s *pluginv1.Service) {
	k := serviceKey{s.GetName(), core.NodeID(s.GetNode()), s.GetPort()}
	svc := core.Service{Name: s.GetName(), Node: core.NodeID(s.GetNode()), Port: s.GetPort(), Metadata: s.GetMetadata()}
	if core.CheckService(svc) != nil || svc.Node == 0 {
		delete(model, k)
		return
	}
	model[k] = svc
}

func servicesInOrder(a, b core.Service) bool {
	switch {
	case a.Name != b.Name:
		return a.Name < b.Name
	case a.Node != b.Node:
		return a.Node < b.Node
	}
	return a.Port < b.Port
}

func sameServices(a, b []core.Service) bool {
	return slices.EqualFunc(a, b, func(x, y core.Service) bool {
		return x.Name == y.Name && x.Node == y.Node && x.Port == y.Port && maps.Equal(x.Metadata, y.Metadata)
	})
}

// FuzzRoutes: the tables a routing plugin publishes are untrusted.
// routesFromPlugin keeps, in order, exactly the routes checkRoute accepts
// (none to node 0 or the node itself), each converted without loss: it
// converts back (toPBRoute) to the message it came from.
func FuzzRoutes(f *testing.F) {
	const self = 7
	for _, out := range []*pluginv1.RoutingOutput{
		{Revision: 1, Routes: []*pluginv1.Route{{Dst: 8, Link: 1, NextHop: 8, Metric: 10, UpdatedUnixNanos: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano()}}},
		{Routes: []*pluginv1.Route{{Dst: 0, Link: 1}, {Dst: self, Link: 1}, {Dst: 9, Link: 2, NextHop: 8, Metric: 1 << 31}, {Dst: 9, Link: 3}}},
		{Routes: []*pluginv1.Route{{Dst: 1 << 63, UpdatedUnixNanos: -1}, {Dst: 2, UpdatedUnixNanos: 1<<63 - 1}}},
		{},
	} {
		b, err := proto.Marshal(out)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x12, 0x02, 0x09})
	f.Fuzz(func(t *testing.T, b []byte) {
		var out pluginv1.RoutingOutput
		if proto.Unmarshal(b, &out) != nil {
			return
		}
		rs := routesFromPlugin(out.GetRoutes(), self, hclog.NewNullLogger())
		var want []*pluginv1.Route
		for _, r := range out.GetRoutes() {
			r.ProtoReflect().SetUnknown(nil) // fields this version does not know are dropped
			if r.GetDst() != 0 && r.GetDst() != self {
				want = append(want, r)
			}
		}
		if len(rs) != len(want) {
			t.Fatalf("%d routes kept of %v, want %d", len(rs), out.GetRoutes(), len(want))
		}
		for i, r := range rs {
			if err := checkRoute(r, self); err != nil {
				t.Fatalf("kept %+v, which checkRoute refuses: %v", r, err)
			}
			if back := toPBRoute(r); !proto.Equal(back, want[i]) {
				t.Fatalf("route %v converted to %+v, which converts back to %v", want[i], r, back)
			}
		}
	})
}

// FuzzConvert: the services, links and routes that cross between host and
// plugin convert to core's types and back without loss (but for fields this
// version does not know, which are dropped), and a missing message converts
// to the zero value.
func FuzzConvert(f *testing.F) {
	for _, m := range []proto.Message{
		pbService("echo", 7, 1, map[string]string{"zone": "a", "": ""}),
		&pluginv1.LinkInfo{Id: 3, Peer: 8, Network: "tcp4", Caps: 7, RttNanos: int64(time.Millisecond), Streams: 1 << 40, Buffered: -1},
		&pluginv1.Route{Dst: 8, Link: 3, NextHop: 8, Metric: 20, UpdatedUnixNanos: -5},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s pluginv1.Service
		if proto.Unmarshal(b, &s) == nil {
			s.ProtoReflect().SetUnknown(nil)
			if back := toPBService(fromPBService(&s)); !proto.Equal(back, &s) {
				t.Fatalf("service %v came back as %v", &s, back)
			}
		}
		var l pluginv1.LinkInfo
		if proto.Unmarshal(b, &l) == nil {
			l.ProtoReflect().SetUnknown(nil)
			if back := toPBLink(fromPBLink(&l)); !proto.Equal(back, &l) {
				t.Fatalf("link %v came back as %v", &l, back)
			}
		}
		var r pluginv1.Route
		if proto.Unmarshal(b, &r) == nil {
			r.ProtoReflect().SetUnknown(nil)
			if back := toPBRoute(fromPBRoute(&r)); !proto.Equal(back, &r) {
				t.Fatalf("route %v came back as %v", &r, back)
			}
		}
		if s := fromPBService(nil); s.Name != "" || s.Node != 0 || s.Port != 0 || s.Metadata != nil {
			t.Fatalf("fromPBService(nil) = %+v", s)
		}
		if l := fromPBLink(nil); l != (core.LinkInfo{}) {
			t.Fatalf("fromPBLink(nil) = %+v", l)
		}
		if r := fromPBRoute(nil); r != (core.Route{}) {
			t.Fatalf("fromPBRoute(nil) = %+v", r)
		}
	})
}
