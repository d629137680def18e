package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/sdk"
	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Defaults and bounds.
const (
	defaultPrefix      = "/astranet/services/"
	defaultTTL         = 10
	minTTL             = 2
	defaultDialTimeout = 5 * time.Second
	callTimeout        = 3 * time.Second
	maxValueBytes      = 64 << 10
	minBackoff         = 50 * time.Millisecond
	maxBackoff         = 5 * time.Second
	// revisionCheck is how often a watch asks etcd for its revision: a
	// store that went back (restored from a backup, or replaced by a new
	// cluster) never answers a watch from a revision it has not reached,
	// and the client's watch resumes on it without a word.
	revisionCheck = 5 * time.Second
)

// record is the JSON value of one service key.
type record struct {
	Name     string            `json:"name"`
	Node     string            `json:"node"`
	Port     uint32            `json:"port"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Addrs    []string          `json:"addrs,omitempty"`
}

type serviceKey struct {
	name string
	node core.NodeID
	port uint32
}

func keyOf(s core.Service) serviceKey { return serviceKey{s.Name, s.Node, s.Port} }

// etcdDiscovery is the plugin's core.Discovery.
type etcdDiscovery struct {
	log         hclog.Logger
	endpoints   []string
	prefix      string
	ttl         int64
	addrs       []string
	dialTimeout time.Duration

	cli    *clientv3.Client
	mesh   core.Mesh
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}
	// rewatch, in tests, makes the watch start again from an older revision,
	// as one resuming after a long disconnection would.
	rewatch chan int64
	// revisionCheck is the constant of that name; tests shorten it.
	revisionCheck time.Duration

	mu      sync.Mutex
	publish func([]core.Service)
	want    map[serviceKey]core.Service // the node's registrations
	have    map[serviceKey]core.Service // written under the current lease
	lost    map[serviceKey]bool         // of the node's keys, those the watch saw deleted
	lease   clientv3.LeaseID
	view    map[string]core.Service // etcd key -> service
	closed  bool
}

func newEtcdDiscovery(log hclog.Logger) *etcdDiscovery {
	return &etcdDiscovery{log: log, prefix: defaultPrefix, ttl: defaultTTL, dialTimeout: defaultDialTimeout,
		want: make(map[serviceKey]core.Service), have: make(map[serviceKey]core.Service), lost: make(map[serviceKey]bool),
		view: make(map[string]core.Service), kick: make(chan struct{}, 1), rewatch: make(chan int64),
		revisionCheck: revisionCheck}
}

// Configure takes the options the package doc lists; those absent keep
// their value.
func (e *etcdDiscovery) Configure(opts map[string]string) error {
	if v, ok := opts["endpoints"]; ok {
		e.endpoints = splitList(v)
	}
	if len(e.endpoints) == 0 {
		return errors.New(`option "endpoints" is required`)
	}
	if v, ok := opts["prefix"]; ok {
		if !strings.HasPrefix(v, "/") || !strings.HasSuffix(v, "/") {
			return fmt.Errorf("option prefix=%q: want a path that starts and ends with /", v)
		}
		e.prefix = v
	}
	if v, ok := opts["ttl"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < minTTL || n > clientv3.MaxLeaseTTL {
			return fmt.Errorf("option ttl=%q: want whole seconds, from %d to %d", v, minTTL, clientv3.MaxLeaseTTL)
		}
		e.ttl = n
	}
	if v, ok := opts["addrs"]; ok {
		e.addrs = splitList(v)
		if n := len(strings.Join(e.addrs, ",")); n > core.MaxMetadataValue {
			return fmt.Errorf("option addrs: %d bytes joined, more than the %d of a metadata value", n, core.MaxMetadataValue)
		}
	}
	if v, ok := opts["dial_timeout"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("option dial_timeout=%q: want a positive duration", v)
		}
		e.dialTimeout = d
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Start connects to etcd (without waiting for it) and begins the lease and
// watch loops. It fails once Close has been called.
func (e *etcdDiscovery) Start(m core.Mesh, publish func([]core.Service)) error {
	if len(e.endpoints) == 0 {
		return errors.New("no etcd endpoints configured")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: e.endpoints, DialTimeout: e.dialTimeout, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client: %w", err)
	}
	e.mu.Lock()
	if e.closed || e.cli != nil {
		e.mu.Unlock()
		cli.Close()
		return errors.New("closed or already started")
	}
	e.cli, e.mesh, e.publish = cli, m, publish
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.wg.Add(3)
	e.mu.Unlock()
	go e.leaseLoop()
	go e.syncLoop()
	go e.watchLoop()
	return nil
}

// leaseLoop holds a lease and keeps it alive; when it is lost (etcd
// unreachable past the TTL) it takes a new one and has the services written
// again under it. Failures back off, and so does a lease lost soon after it
// was granted, so that the loop never grants leases as fast as etcd answers.
func (e *etcdDiscovery) leaseLoop() {
	defer e.wg.Done()
	wait := minBackoff
	for e.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(e.ctx, callTimeout)
		grant, err := e.cli.Grant(ctx, e.ttl)
		cancel()
		if err != nil {
			e.log.Warn("etcd lease grant failed", "error", err)
			if !sleep(e.ctx, &wait) {
				return
			}
			continue
		}
		ka, err := e.cli.KeepAlive(e.ctx, grant.ID)
		if err != nil {
			e.log.Warn("etcd lease keepalive failed", "error", err)
			e.revoke(grant.ID) // or it would live out its TTL for nothing
			if !sleep(e.ctx, &wait) {
				return
			}
			continue
		}
		e.mu.Lock()
		e.lease, e.have = grant.ID, make(map[serviceKey]core.Service)
		e.mu.Unlock()
		e.nudge()
		e.log.Debug("etcd lease granted", "lease", int64(grant.ID), "ttl", e.ttl)
		kept := false
		for range ka {
			kept = true
		}
		e.mu.Lock()
		e.lease = 0
		e.mu.Unlock()
		if e.ctx.Err() != nil {
			return
		}
		e.log.Warn("etcd lease lost; taking a new one")
		if kept {
			wait = minBackoff // it was kept alive: take a new one at once
		} else if !sleep(e.ctx, &wait) {
			return
		}
	}
}

// revoke gives a lease back to etcd, its keys with it.
func (e *etcdDiscovery) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(e.ctx, callTimeout)
	defer cancel()
	if _, err := e.cli.Revoke(ctx, id); err != nil && e.ctx.Err() == nil {
		e.log.Warn("revoking an etcd lease", "lease", int64(id), "error", err)
	}
}

func sleep(ctx context.Context, wait *time.Duration) bool {
	d := *wait - time.Duration(rand.Int64N(int64(*wait)/4+1))
	*wait = min(2**wait, maxBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (e *etcdDiscovery) nudge() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// syncLoop writes and deletes keys until etcd holds the node's
// registrations under the current lease.
func (e *etcdDiscovery) syncLoop() {
	defer e.wg.Done()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.kick:
		case <-retry.C:
		}
		if !e.syncOnce() {
			retry.Reset(time.Second)
		}
	}
}

func (e *etcdDiscovery) syncOnce() bool {
	e.mu.Lock()
	lease, want, have := e.lease, maps.Clone(e.want), maps.Clone(e.have)
	if lease != 0 {
		// Keys deleted behind the node's back are written again.
		for k := range e.lost {
			delete(have, k)
		}
		clear(e.lost)
	}
	e.mu.Unlock()
	if lease == 0 {
		return true // the next lease brings a sync
	}
	ok := true
	for k, s := range want {
		if h, found := have[k]; found && maps.Equal(h.Metadata, s.Metadata) {
			continue
		}
		val, err := json.Marshal(e.record(s))
		if err == nil {
			ctx, cancel := context.WithTimeout(e.ctx, callTimeout)
			_, err = e.cli.Put(ctx, e.key(s), string(val), clientv3.WithLease(lease))
			cancel()
		}
		if err != nil {
			e.log.Warn("etcd put failed", "service", s.Name, "error", err)
			ok = false
			continue
		}
		have[k] = s
	}
	for k, s := range have {
		if _, found := want[k]; found {
			continue
		}
		ctx, cancel := context.WithTimeout(e.ctx, callTimeout)
		_, err := e.cli.Delete(ctx, e.key(s))
		cancel()
		if err != nil {
			e.log.Warn("etcd delete failed", "service", s.Name, "error", err)
			ok = false
			continue
		}
		delete(have, k)
	}
	e.mu.Lock()
	if e.lease == lease {
		e.have = have
	}
	e.mu.Unlock()
	return ok
}

// record is the value written for s.
func (e *etcdDiscovery) record(s core.Service) record {
	return record{Name: s.Name, Node: s.Node.String(), Port: s.Port, Metadata: s.Metadata, Addrs: e.addrs}
}

func (e *etcdDiscovery) key(s core.Service) string {
	return fmt.Sprintf("%s%s/%s/%d", e.prefix, url.PathEscape(s.Name), s.Node, s.Port)
}

// watchLoop keeps the view: a snapshot (Get), then a watch from the
// snapshot's revision; a compacted revision means changes were missed, so
// the host is told to reset and a new snapshot follows.
func (e *etcdDiscovery) watchLoop() {
	defer e.wg.Done()
	wait := minBackoff
	var rev int64 // 0: a snapshot is needed
	for e.ctx.Err() == nil {
		if rev == 0 {
			r, err := e.snapshot()
			if err != nil {
				e.log.Warn("etcd snapshot failed", "error", err)
				if !sleep(e.ctx, &wait) {
					return
				}
				continue
			}
			rev = r
		}
		next, err := e.follow(rev)
		switch {
		case e.ctx.Err() != nil:
			return
		case errors.Is(err, errCompacted), errors.Is(err, errWentBack):
			e.log.Info("etcd watch cannot resume; resetting the view", "revision", rev, "error", err)
			if r, ok := e.mesh.(sdk.Resetter); ok {
				r.ResetView(fmt.Sprintf("etcd at revision %d: %v", rev, err))
			}
			rev = 0
			continue
		case err != nil:
			e.log.Warn("etcd watch ended; resuming", "revision", next, "error", err)
			if !sleep(e.ctx, &wait) {
				return
			}
		default:
			wait = minBackoff
		}
		rev = next
	}
}

var (
	errCompacted = errors.New("compacted")
	errWentBack  = errors.New("etcd's revision went back")
)

// snapshot reads every key under the prefix and publishes them.
func (e *etcdDiscovery) snapshot() (int64, error) {
	ctx, cancel := context.WithTimeout(e.ctx, callTimeout)
	defer cancel()
	resp, err := e.cli.Get(ctx, e.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	view := make(map[string]core.Service, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if s, ok := e.parse(kv.Key, kv.Value); ok {
			view[string(kv.Key)] = s
		}
	}
	e.mu.Lock()
	e.view = view
	e.publishLocked()
	e.mu.Unlock()
	return resp.Header.Revision, nil
}

// follow watches from rev+1 until the watch ends; it returns the revision
// the view is at.
func (e *etcdDiscovery) follow(rev int64) (int64, error) {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(e.ctx))
	defer cancel()
	wch := e.cli.Watch(ctx, e.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	check := time.NewTicker(e.revisionCheck)
	defer check.Stop()
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case old := <-e.rewatch:
			return old, errors.New("rewatch asked")
		case <-check.C:
			if now, err := e.revision(); err == nil && now < rev {
				return rev, fmt.Errorf("%w to %d", errWentBack, now)
			}
			continue
		case resp, ok = <-wch:
		}
		if !ok {
			return rev, errors.New("watch channel closed")
		}
		if resp.CompactRevision != 0 {
			return rev, errCompacted
		}
		if err := resp.Err(); err != nil {
			return rev, err
		}
		if len(resp.Events) > 0 {
			lost := false
			e.mu.Lock()
			for _, ev := range resp.Events {
				k := string(ev.Kv.Key)
				if ev.Type == clientv3.EventTypeDelete {
					// One of the node's own keys, deleted by another
					// client (or with a lost lease): the sync writes it
					// again while the node has the service.
					if s, ok := e.view[k]; ok && k == e.key(s) {
						if _, mine := e.want[keyOf(s)]; mine {
							e.lost[keyOf(s)], lost = true, true
						}
					}
					delete(e.view, k)
				} else if s, ok := e.parse(ev.Kv.Key, ev.Kv.Value); ok {
					e.view[k] = s
				} else {
					delete(e.view, k)
				}
			}
			e.publishLocked()
			e.mu.Unlock()
			if lost {
				e.nudge()
			}
		}
		rev = max(rev, resp.Header.Revision)
	}
}

// revision asks etcd for its current revision.
func (e *etcdDiscovery) revision() (int64, error) {
	ctx, cancel := context.WithTimeout(e.ctx, callTimeout)
	defer cancel()
	resp, err := e.cli.Get(ctx, e.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// parse reads one key's value; another writer's garbage is skipped, and so
// is a record the host would refuse.
func (e *etcdDiscovery) parse(key, value []byte) (core.Service, bool) {
	s, err := decodeRecord(value)
	if err != nil {
		e.log.Debug("skipping a value that is not a service record", "key", string(key), "error", err)
		return core.Service{}, false
	}
	return s, true
}

// decodeRecord reads a record: the JSON syncOnce writes, its addrs in the
// metadata under "addrs", and a service that core.CheckService accepts on a
// node that is not 0.
func decodeRecord(value []byte) (core.Service, error) {
	if len(value) > maxValueBytes {
		return core.Service{}, fmt.Errorf("value of %d bytes, more than %d", len(value), maxValueBytes)
	}
	var r record
	if err := json.Unmarshal(value, &r); err != nil {
		return core.Service{}, err
	}
	node, err := core.ParseNodeID(r.Node)
	if err != nil {
		return core.Service{}, err
	}
	md := maps.Clone(r.Metadata)
	if len(r.Addrs) > 0 {
		if md == nil {
			md = make(map[string]string, 1)
		}
		md["addrs"] = strings.Join(r.Addrs, ",")
	}
	s := core.Service{Name: r.Name, Node: node, Port: r.Port, Metadata: md}
	if err := core.CheckService(s); err != nil {
		return core.Service{}, err
	}
	return s, nil
}

func (e *etcdDiscovery) publishLocked() {
	if e.publish == nil || e.closed {
		return
	}
	ss := make([]core.Service, 0, len(e.view))
	for _, s := range e.view {
		ss = append(ss, s)
	}
	e.publish(ss)
}

// Register records s and returns; the sync loop writes it to etcd. A
// port-only listener is not announced, as in the embedded discovery, and a
// service whose record the nodes would skip (decodeRecord: a bad name, or
// metadata past core's bounds once the addrs are added) is refused.
func (e *etcdDiscovery) Register(s core.Service) error {
	if s.Name == "" {
		return nil
	}
	val, err := json.Marshal(e.record(s))
	if err == nil {
		_, err = decodeRecord(val)
	}
	if err != nil {
		return fmt.Errorf("the nodes would skip its record: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("closed")
	}
	s.Metadata = maps.Clone(s.Metadata)
	e.want[keyOf(s)] = s
	e.nudge()
	return nil
}

// Deregister forgets s; the sync loop deletes its key.
func (e *etcdDiscovery) Deregister(s core.Service) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.want, keyOf(s))
	e.nudge()
	return nil
}

func (e *etcdDiscovery) LinkUp(core.LinkInfo)                {}
func (e *etcdDiscovery) LinkDown(core.LinkInfo)              {}
func (e *etcdDiscovery) HandleControl(core.LinkInfo, []byte) {}

// Close stops the loops, revokes the lease (its keys go with it) and closes
// the client; it waits at most a few seconds on etcd.
func (e *etcdDiscovery) Close() error {
	e.mu.Lock()
	if e.closed || e.cli == nil {
		e.closed = true
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	lease := e.lease
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	if lease != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := e.cli.Revoke(ctx, lease); err != nil {
			e.log.Warn("revoking the etcd lease", "error", err)
		}
		cancel()
	}
	return e.cli.Close()
}
