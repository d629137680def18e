package sdktest_test

import (
	"maps"
	"slices"
	"sync"

	"github.com/astranet-go/astranet/core"
)

// static is the smallest core.Discovery: it publishes what is registered on
// its own node. The suite's tests run on it as a baseline.
type static struct {
	mu       sync.Mutex
	publish  func([]core.Service)
	services map[[2]any]core.Service
	closed   bool
}

func newStatic() core.Discovery { return &static{services: make(map[[2]any]core.Service)} }

func (s *static) Start(_ core.Mesh, publish func([]core.Service)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.publish = publish
	s.publishLocked()
	return nil
}

func (s *static) publishLocked() {
	if s.publish == nil || s.closed {
		return
	}
	s.publish(slices.Collect(maps.Values(s.services)))
}

func (s *static) Register(svc core.Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[[2]any{svc.Name, svc.Port}] = svc
	s.publishLocked()
	return nil
}

func (s *static) Deregister(svc core.Service) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.services, [2]any{svc.Name, svc.Port})
	s.publishLocked()
	return nil
}

func (s *static) LinkUp(core.LinkInfo)                {}
func (s *static) LinkDown(core.LinkInfo)              {}
func (s *static) HandleControl(core.LinkInfo, []byte) {}

func (s *static) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
