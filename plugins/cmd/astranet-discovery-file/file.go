package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/hashicorp/go-hclog"
)

// Bounds on what a file may hold, so that a wrong path (a disk image, say)
// cannot exhaust the plugin.
const (
	maxFileSize = 8 << 20
	maxServices = 100_000
	defaultPoll = 500 * time.Millisecond
	minPoll     = 10 * time.Millisecond
)

// fileFormat is the file's JSON.
type fileFormat struct {
	Services []fileService `json:"services"`
}

type fileService struct {
	Name     string            `json:"name"`
	Node     string            `json:"node"`
	Port     uint32            `json:"port"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

type serviceKey struct {
	name string
	node core.NodeID
	port uint32
}

func keyOf(s core.Service) serviceKey { return serviceKey{s.Name, s.Node, s.Port} }

// fileDiscovery publishes the file's services and the node's own.
type fileDiscovery struct {
	log  hclog.Logger
	path string
	poll time.Duration

	mu       sync.Mutex
	publish  func([]core.Service)
	fromFile []core.Service
	local    map[serviceKey]core.Service
	closed   bool
	stop     chan struct{}
	done     chan struct{}
}

func newFileDiscovery(log hclog.Logger) *fileDiscovery {
	return &fileDiscovery{log: log, poll: defaultPoll, local: make(map[serviceKey]core.Service)}
}

// Configure takes the options "path" and "poll"; those absent keep their
// value.
func (f *fileDiscovery) Configure(opts map[string]string) error {
	if p, ok := opts["path"]; ok {
		f.path = p
	}
	if f.path == "" {
		return errors.New(`option "path" is required`)
	}
	if p, ok := opts["poll"]; ok {
		d, err := time.ParseDuration(p)
		if err != nil || d < minPoll {
			return fmt.Errorf("option poll=%q: want a duration of at least %v", p, minPoll)
		}
		f.poll = d
	}
	return nil
}

func (f *fileDiscovery) Start(_ core.Mesh, publish func([]core.Service)) error {
	if f.path == "" {
		return errors.New("no file configured")
	}
	f.mu.Lock()
	f.publish = publish
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	f.mu.Unlock()
	st, err := f.reload()
	if err != nil {
		// The file may appear later; until then only the node's own services.
		f.log.Warn("reading the services file", "path", f.path, "error", err)
		f.mu.Lock()
		f.publishLocked()
		f.mu.Unlock()
	}
	go f.watch(st)
	return nil
}

// watch re-reads the file when its modification time or size changes.
func (f *fileDiscovery) watch(last os.FileInfo) {
	defer close(f.done)
	t := time.NewTicker(f.poll)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		st, err := os.Stat(f.path)
		if err != nil || (last != nil && st.ModTime().Equal(last.ModTime()) && st.Size() == last.Size()) {
			continue
		}
		if st, err = f.reload(); err != nil {
			f.log.Warn("services file unreadable; keeping the last good one", "path", f.path, "error", err)
		}
		last = st
	}
}

// reload reads and publishes the file; it returns what it stat'ed first so
// that a write during the read is noticed at the next poll.
func (f *fileDiscovery) reload() (os.FileInfo, error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	ss, err := parse(io.LimitReader(fh, maxFileSize+1))
	if err != nil {
		return st, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fromFile = ss
	f.publishLocked()
	f.log.Info("services file loaded", "path", f.path, "services", len(ss))
	return st, nil
}

// parse reads a services file. Every service must be one the host takes
// (core.CheckService: a port, a name the wire accepts, bounded metadata), or
// the file is refused: the host would drop it from every view otherwise.
func parse(r io.Reader) ([]core.Service, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	var ff fileFormat
	if err := json.Unmarshal(b, &ff); err != nil {
		return nil, err
	}
	if len(ff.Services) > maxServices {
		return nil, fmt.Errorf("%d services; at most %d", len(ff.Services), maxServices)
	}
	out := make([]core.Service, 0, len(ff.Services))
	for i, s := range ff.Services {
		id, err := core.ParseNodeID(s.Node)
		if err != nil {
			return nil, fmt.Errorf("service %d (%q): node: %w", i, s.Name, err)
		}
		svc := core.Service{Name: s.Name, Node: id, Port: s.Port, Metadata: s.Metadata}
		if err := core.CheckService(svc); err != nil {
			return nil, fmt.Errorf("service %d: %w", i, err)
		}
		out = append(out, svc)
	}
	return out, nil
}

func (f *fileDiscovery) publishLocked() {
	if f.publish == nil || f.closed {
		return
	}
	ss := slices.Clone(f.fromFile)
	for _, s := range f.local {
		ss = append(ss, s)
	}
	f.publish(ss)
}

func (f *fileDiscovery) Register(s core.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s.Metadata = maps.Clone(s.Metadata)
	f.local[keyOf(s)] = s
	f.publishLocked()
	return nil
}

func (f *fileDiscovery) Deregister(s core.Service) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.local, keyOf(s))
	f.publishLocked()
	return nil
}

func (f *fileDiscovery) LinkUp(core.LinkInfo)                {}
func (f *fileDiscovery) LinkDown(core.LinkInfo)              {}
func (f *fileDiscovery) HandleControl(core.LinkInfo, []byte) {}

func (f *fileDiscovery) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	stop, done := f.stop, f.done
	f.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	return nil
}
