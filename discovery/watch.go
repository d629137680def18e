package discovery

import (
	"context"
	"maps"

	"github.com/astranet-go/astranet/core"
)

// watchBuffer is how many events a watch channel holds before the mesh
// coalesces them.
const watchBuffer = 64

// An Event is one change in the services a Mesh knows. A snapshot event
// (Snapshot non-nil, possibly empty) replaces everything the watcher knew; a
// change event lists what appeared and what went away since the previous
// event. A service whose metadata or name changes is reported removed and
// added. The slices and metadata maps are shared: do not modify them.
type Event struct {
	Snapshot       []core.Service
	Added, Removed []core.Service
}

// watcher is one Watch call's channel.
type watcher struct {
	ch   chan Event
	stop func() bool // unhooks the context
}

// Watch delivers first a snapshot of the services the mesh knows, then every
// change, until ctx is done or the mesh closes; then the channel is closed.
// The channel holds a bounded number of events and the mesh never waits for a
// consumer: when one falls behind so far that the channel is full, the events
// still queued are dropped and replaced by a single fresh snapshot.
func (m *Mesh) Watch(ctx context.Context) <-chan Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	w := &watcher{ch: make(chan Event, watchBuffer)}
	if m.closed {
		close(w.ch)
		return w.ch
	}
	w.ch <- Event{Snapshot: m.view()}
	m.watchers[w] = struct{}{}
	w.stop = context.AfterFunc(ctx, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.watchers[w]; ok {
			m.stopWatch(w)
		}
	})
	return w.ch
}

// view is the union of every origin's services, never nil. Caller holds m.mu.
func (m *Mesh) view() []core.Service {
	return join(m.parts(), m.services)
}

// stopWatch ends w. Caller holds m.mu.
func (m *Mesh) stopWatch(w *watcher) {
	delete(m.watchers, w)
	w.stop()
	close(w.ch)
}

// notify tells every watcher of a change, without waiting. Caller holds m.mu,
// which makes the mesh the channels' only sender.
func (m *Mesh) notify(added, removed []core.Service) {
	for w := range m.watchers {
		select {
		case w.ch <- Event{Added: added, Removed: removed}:
			continue
		default:
		}
		// Full: what is queued is stale anyway; one snapshot replaces it.
		for drained := false; !drained; {
			select {
			case <-w.ch:
			default:
				drained = true
			}
		}
		w.ch <- Event{Snapshot: m.view()}
	}
}

// diff lists the services in next and not in prev, and those in prev and not
// in next. A service is the same if node, port, name and metadata match. The
// lists may share memory with prev and next.
func diff(prev, next []core.Service) (added, removed []core.Service) {
	switch {
	case len(prev) == 0:
		return next, nil
	case len(next) == 0:
		return nil, prev
	}
	type key struct {
		node core.NodeID
		port uint32
	}
	old := make(map[key]core.Service, len(prev))
	for _, s := range prev {
		old[key{s.Node, s.Port}] = s
	}
	for _, s := range next {
		k := key{s.Node, s.Port}
		p, ok := old[k]
		if ok && p.Name == s.Name && maps.Equal(p.Metadata, s.Metadata) {
			delete(old, k)
			continue
		}
		added = append(added, s)
	}
	for _, s := range prev {
		if _, ok := old[key{s.Node, s.Port}]; ok {
			removed = append(removed, s)
		}
	}
	return added, removed
}
