package sdk

import (
	"cmp"
	"maps"
	"slices"
	"sync"

	"github.com/astranet-go/astranet/core"
)

// viewHub holds the latest view a plugin's discovery published. Watch streams
// read it and send what changed since they last sent, so a slow stream
// coalesces changes instead of queueing them.
type viewHub struct {
	mu           sync.Mutex
	rev          uint64
	view         []core.Service // never modified once stored
	resetRev     uint64         // revision of the last view published after a reset
	resetReason  string
	pendingReset string
	changed      chan struct{} // closed at the next publish
}

func newViewHub() *viewHub { return &viewHub{changed: make(chan struct{})} }

func (h *viewHub) publish(ss []core.Service) {
	view := cloneServices(ss)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev++
	h.view = view
	if h.pendingReset != "" {
		h.resetRev, h.resetReason, h.pendingReset = h.rev, h.pendingReset, ""
	}
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *viewHub) reset(reason string) {
	if reason == "" {
		reason = "reset"
	}
	h.mu.Lock()
	h.pendingReset = reason
	h.mu.Unlock()
}

type viewState struct {
	view        []core.Service
	rev         uint64
	resetRev    uint64
	resetReason string
	changed     <-chan struct{}
}

func (h *viewHub) current() viewState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return viewState{h.view, h.rev, h.resetRev, h.resetReason, h.changed}
}

func cloneServices(ss []core.Service) []core.Service {
	out := make([]core.Service, len(ss))
	for i, s := range ss {
		s.Metadata = maps.Clone(s.Metadata)
		out[i] = s
	}
	return out
}

func indexServices(ss []core.Service) map[serviceKey]core.Service {
	m := make(map[serviceKey]core.Service, len(ss))
	for _, s := range ss {
		m[keyOf(s)] = s
	}
	return m
}

// diffViews returns what turns old into next: instances added or changed, and
// instances gone.
func diffViews(old map[serviceKey]core.Service, next map[serviceKey]core.Service) (put, deleted []core.Service) {
	for k, s := range next {
		if o, ok := old[k]; !ok || !maps.Equal(o.Metadata, s.Metadata) {
			put = append(put, s)
		}
	}
	for k, s := range old {
		if _, ok := next[k]; !ok {
			deleted = append(deleted, s)
		}
	}
	sortServices(put)
	sortServices(deleted)
	return put, deleted
}

func sortServices(ss []core.Service) {
	slices.SortFunc(ss, func(a, b core.Service) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Node, b.Node), cmp.Compare(a.Port, b.Port))
	})
}

// listServices returns the view's instances in a stable order.
func listServices(m map[serviceKey]core.Service) []core.Service {
	out := slices.Collect(maps.Values(m))
	sortServices(out)
	return out
}
