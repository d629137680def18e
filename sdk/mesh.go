package sdk

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
	pluginv1 "github.com/astranet-go/astranet/sdk/proto/astranet/plugin/v1"
)

// Resetter is implemented by the core.Mesh a plugin's Start receives in the
// plugin process. ResetView says the plugin's view may have missed changes
// (an etcd watch that hit a compacted revision, say): the host then replaces
// its view with the next snapshot the plugin publishes, after a reset, rather
// than amending it. In-process the mesh is a node, which has no such method;
// test for it with a type assertion.
type Resetter interface {
	ResetView(reason string)
}

// Configurable is implemented by a plugin's core.Discovery or core.Routing
// that takes settings from the host (plugins.Config.Options). Configure is
// called once, before Start; an error fails the host's Configure call.
type Configurable interface {
	Configure(options map[string]string) error
}

// ErrNoHost: the host offered no Host service, so the plugin cannot send.
var ErrNoHost = errors.New("sdk: the host serves no Host service")

// remoteMesh is the core.Mesh a plugin sees: the host node, across gRPC. Its
// link list is a cache kept by link events so that Links never waits on the
// host (a plugin may call it while the host holds a lock on its side).
type remoteMesh struct {
	id      core.NodeID
	caps    uint32
	host    pluginv1.HostClient // nil when the host serves none
	timeout time.Duration
	reset   func(string)

	mu    sync.Mutex
	links map[uint64]core.LinkInfo
}

func newRemoteMesh(req *pluginv1.ConfigureRequest, host pluginv1.HostClient, timeout time.Duration, reset func(string)) *remoteMesh {
	return &remoteMesh{id: core.NodeID(req.GetNodeId()), caps: req.GetCaps(), host: host, timeout: timeout,
		reset: reset, links: make(map[uint64]core.LinkInfo)}
}

func (m *remoteMesh) ID() core.NodeID { return m.id }
func (m *remoteMesh) Caps() uint32    { return m.caps }

func (m *remoteMesh) Links() []core.LinkInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := slices.Collect(maps.Values(m.links))
	slices.SortFunc(out, func(a, b core.LinkInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (m *remoteMesh) Routes() []core.Route {
	if m.host == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	resp, err := m.host.Routes(ctx, &pluginv1.RoutesRequest{})
	if err != nil {
		return nil
	}
	return fromPBRoutes(resp.GetRoutes())
}

func (m *remoteMesh) Send(link uint64, kind wire.Kind, body []byte) error {
	if m.host == nil {
		return ErrNoHost
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	_, err := m.host.Send(ctx, &pluginv1.SendRequest{Link: link, Kind: uint32(kind), Body: body})
	return err
}

func (m *remoteMesh) ResetView(reason string) {
	if m.reset != nil {
		m.reset(reason)
	}
}

// linkUp caches l and reports whether the cache did not have it.
func (m *remoteMesh) linkUp(l core.LinkInfo) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, had := m.links[l.ID]
	m.links[l.ID] = l
	return !had
}

// linkDown forgets l and reports whether the cache had it.
func (m *remoteMesh) linkDown(l core.LinkInfo) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, had := m.links[l.ID]
	delete(m.links, l.ID)
	return had
}

// refreshLinks asks the host for its links and returns those that came up and
// went down since the cache last knew.
func (m *remoteMesh) refreshLinks() (up, down []core.LinkInfo, err error) {
	if m.host == nil {
		return nil, nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	resp, err := m.host.Links(ctx, &pluginv1.LinksRequest{})
	if err != nil {
		return nil, nil, err
	}
	fresh := make(map[uint64]core.LinkInfo, len(resp.GetLinks()))
	for _, l := range resp.GetLinks() {
		li := fromPBLink(l)
		fresh[li.ID] = li
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, l := range fresh {
		if _, ok := m.links[id]; !ok {
			up = append(up, l)
		}
	}
	for id, l := range m.links {
		if _, ok := fresh[id]; !ok {
			down = append(down, l)
		}
	}
	m.links = fresh
	return up, down, nil
}
