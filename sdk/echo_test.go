package sdk_test

import (
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
)

// echo is the test plugin's discovery: it publishes what is registered plus
// one "link-<peer>" service per link it was told of, and sends every
// discovery message back where it came from.
type echo struct {
	mu       sync.Mutex
	mesh     core.Mesh
	publish  func([]core.Service)
	services map[string]core.Service
	links    map[uint64]core.LinkInfo
}

func newEcho() *echo {
	return &echo{services: make(map[string]core.Service), links: make(map[uint64]core.LinkInfo)}
}

func (e *echo) Start(m core.Mesh, publish func([]core.Service)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mesh, e.publish = m, publish
	for _, l := range m.Links() {
		e.links[l.ID] = l
	}
	e.publishLocked()
	return nil
}

func (e *echo) publishLocked() {
	ss := slices.Collect(maps.Values(e.services))
	for _, l := range e.links {
		ss = append(ss, core.Service{Name: "link-" + l.Peer.String(), Node: l.Peer, Port: 1})
	}
	e.publish(ss)
}

func (e *echo) Register(s core.Service) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.services[fmt.Sprint(s.Name, s.Port)] = s
	e.publishLocked()
	return nil
}

func (e *echo) Deregister(s core.Service) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.services, fmt.Sprint(s.Name, s.Port))
	e.publishLocked()
	return nil
}

func (e *echo) LinkUp(l core.LinkInfo) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.links[l.ID] = l
	e.publishLocked()
}

func (e *echo) LinkDown(l core.LinkInfo) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.links, l.ID)
	e.publishLocked()
}

func (e *echo) HandleControl(from core.LinkInfo, body []byte) {
	e.mesh.Send(from.ID, wire.KindDiscovery, append([]byte("echo:"), body...))
}

func (e *echo) Close() error { return nil }
