package discovery

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
)

// apply folds ev into a watcher's view.
func apply(view map[[2]uint64]core.Service, ev Event) {
	if ev.Snapshot != nil {
		clear(view)
		for _, s := range ev.Snapshot {
			view[[2]uint64{uint64(s.Node), uint64(s.Port)}] = s
		}
		return
	}
	for _, s := range ev.Removed {
		delete(view, [2]uint64{uint64(s.Node), uint64(s.Port)})
	}
	for _, s := range ev.Added {
		view[[2]uint64{uint64(s.Node), uint64(s.Port)}] = s
	}
}

func values(view map[[2]uint64]core.Service) []core.Service {
	var ss []core.Service
	for _, s := range view {
		ss = append(ss, s)
	}
	return canonical(ss)
}

// next receives one event or fails the test.
func next(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(2 * time.Second):
		t.Fatal("no event within 2s")
	}
	return Event{}
}

func TestWatchSnapshotThenChanges(t *testing.T) {
	tn := newNet(t)
	a, ma := tn.add(MeshOptions{})
	b, _ := tn.add(MeshOptions{})
	tn.link(a, b)
	bind(t, a, "early")
	ctx, cancel := context.WithCancel(context.Background())
	ch := ma.Watch(ctx)

	ev := next(t, ch)
	if ev.Snapshot == nil || len(ev.Snapshot) != 1 || ev.Snapshot[0].Name != "early" {
		t.Fatalf("first event %+v, want a snapshot of early", ev)
	}
	ln := bind(t, b, "late")
	ev = next(t, ch)
	if ev.Snapshot != nil || len(ev.Added) != 1 || ev.Added[0].Name != "late" || ev.Added[0].Node != b.ID() || len(ev.Removed) != 0 {
		t.Fatalf("got %+v, want late added", ev)
	}
	ln.Close()
	ev = next(t, ch)
	if len(ev.Removed) != 1 || ev.Removed[0].Name != "late" || len(ev.Added) != 0 {
		t.Fatalf("got %+v, want late removed", ev)
	}

	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("event after cancel")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("channel still open 2s after cancel")
	}
}

func TestWatchEmptySnapshot(t *testing.T) {
	tn := newNet(t)
	_, m := tn.add(MeshOptions{})
	ev := next(t, m.Watch(context.Background()))
	if ev.Snapshot == nil || len(ev.Snapshot) != 0 {
		t.Fatalf("got %+v, want an empty, non-nil snapshot", ev)
	}
}

func TestWatchSlowConsumerCoalesces(t *testing.T) {
	tn := newNet(t)
	n, m := tn.add(MeshOptions{})
	ch := m.Watch(context.Background())
	const changes = 5*watchBuffer + 10
	for i := range changes {
		if err := m.Register(core.Service{Name: fmt.Sprint("s", i), Node: n.ID(), Port: uint32(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if len(ch) > watchBuffer {
		t.Fatalf("%d events queued, more than %d", len(ch), watchBuffer)
	}
	view := map[[2]uint64]core.Service{}
	events, snapshots := 0, 0
	for len(ch) > 0 {
		ev := <-ch
		events++
		if ev.Snapshot != nil {
			snapshots++
		}
		apply(view, ev)
	}
	if got, want := values(view), canonical(n.Services()); !same(got, want) || len(want) != changes {
		t.Fatalf("the consumer's view has %d services, the node %d, want %d", len(got), len(want), changes)
	}
	if events >= changes || snapshots == 0 {
		t.Errorf("%d changes as %d events, %d snapshots: the overflow was not coalesced", changes, events, snapshots)
	}
	t.Logf("%d changes reached a slow consumer as %d events, %d of them snapshots", changes, events, snapshots)

	// Events after the overflow are changes again.
	if err := m.Deregister(core.Service{Name: "s0", Node: n.ID(), Port: 1}); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); len(ev.Removed) != 1 || ev.Removed[0].Name != "s0" {
		t.Fatalf("got %+v, want s0 removed", ev)
	}
}

func TestWatchClosedByClose(t *testing.T) {
	m := NewMesh(MeshOptions{})
	ch := m.Watch(context.Background())
	next(t, ch)
	m.Close()
	if _, ok := <-ch; ok {
		t.Fatal("event after Close")
	}
}

func TestDiff(t *testing.T) {
	s := func(name string, port uint32, md map[string]string) core.Service {
		return core.Service{Name: name, Node: 1, Port: port, Metadata: md}
	}
	prev := []core.Service{s("a", 1, nil), s("b", 2, nil), s("c", 3, map[string]string{"v": "1"})}
	next := []core.Service{s("a", 1, nil), s("c", 3, map[string]string{"v": "2"}), s("d", 4, nil), s("e", 2, nil)}
	added, removed := diff(prev, next)
	if got := fmt.Sprint(canonical(added)); got != fmt.Sprint(canonical([]core.Service{next[1], next[2], next[3]})) {
		t.Errorf("added %v", got)
	}
	if got := fmt.Sprint(canonical(removed)); got != fmt.Sprint(canonical([]core.Service{prev[1], prev[2]})) {
		t.Errorf("removed %v", got)
	}
}
