package sdktest

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"sync"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
)

// Sent is one control message an implementation sent through a Mesh.
type Sent struct {
	Link uint64
	Kind wire.Kind
	Body []byte
}

// Mesh is a fake core.Mesh: a node with the links a test gives it, which
// records the control messages sent through it.
type Mesh struct {
	id   core.NodeID
	caps uint32

	mu      sync.Mutex
	links   []core.LinkInfo
	routes  []core.Route
	sent    []Sent
	deliver func(Sent) // set by a Net: carries the message to the peer
}

// maxSent bounds the messages a Mesh remembers.
const maxSent = 10000

// NewMesh returns a server-and-router node with a random id and no links.
func NewMesh() *Mesh {
	var b [8]byte
	rand.Read(b[:])
	id := core.NodeID(binary.BigEndian.Uint64(b[:]) | 1)
	return &Mesh{id: id, caps: wire.CapRouter | wire.CapServer | wire.CapClient}
}

func (m *Mesh) ID() core.NodeID { return m.id }
func (m *Mesh) Caps() uint32    { return m.caps }

func (m *Mesh) Links() []core.LinkInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.links)
}

func (m *Mesh) Routes() []core.Route {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.routes)
}

// Send records the message; it fails for a link the mesh does not have.
func (m *Mesh) Send(link uint64, kind wire.Kind, body []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.ContainsFunc(m.links, func(l core.LinkInfo) bool { return l.ID == link }) {
		return core.ErrLinkLost
	}
	msg := Sent{link, kind, bytes.Clone(body)}
	if len(m.sent) == maxSent {
		m.sent = slices.Delete(m.sent, 0, maxSent/2)
	}
	m.sent = append(m.sent, msg)
	if m.deliver != nil {
		m.deliver(msg)
	}
	return nil
}

// AddLink gives the mesh a link; the caller reports it with LinkUp.
func (m *Mesh) AddLink(l core.LinkInfo) {
	m.mu.Lock()
	m.links = append(m.links, l)
	m.mu.Unlock()
}

// RemoveLink takes a link away; the caller reports it with LinkDown.
func (m *Mesh) RemoveLink(id uint64) {
	m.mu.Lock()
	m.links = slices.DeleteFunc(m.links, func(l core.LinkInfo) bool { return l.ID == id })
	m.mu.Unlock()
}

// Sent returns the messages sent so far.
func (m *Mesh) Sent() []Sent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sent)
}
