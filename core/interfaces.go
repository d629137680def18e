package core

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/astranet-go/astranet/core/wire"
)

// LinkInfo describes one link to a neighbour, as routing and discovery see it.
type LinkInfo struct {
	ID       uint64 // unique within the node for the node's lifetime
	Peer     NodeID
	Network  string        // the transport network ("tcp4", "pipe", ...), or "attach"
	Caps     uint32        // the peer's capability bits (wire.Cap*)
	RTT      time.Duration // last measured round trip; 0 until measured
	Streams  int           // circuits open on the link
	Buffered int64         // bytes received and not yet read, over all its streams
}

// Mesh is what a node offers the routing and discovery running in it: who it
// is, its links, and the control plane. Its methods are safe for concurrent use.
type Mesh interface {
	// ID is the node's id.
	ID() NodeID
	// Links lists the node's live links.
	Links() []LinkInfo
	// Caps are the node's capability bits (wire.Cap*): a node without
	// wire.CapRouter forwards no transit stream and must not advertise routes
	// through itself; one without wire.CapServer advertises no services.
	Caps() uint32
	// Routes is the route table routing last published.
	Routes() []Route
	// Send sends a control message of kind to the neighbour on link. It does not
	// wait for the bytes to leave. A message is at most the peer's frame size
	// less one byte (64 KiB by default). Send never calls back into routing or
	// discovery: a link it finds hopelessly behind is closed on another
	// goroutine.
	Send(link uint64, kind wire.Kind, body []byte) error
}

// Route is how a node reaches another node: through which link, at what metric.
type Route struct {
	Dst     NodeID
	Link    uint64 // LinkInfo.ID of the next hop
	NextHop NodeID
	Metric  uint32
	Updated time.Time
}

// Routing decides through which link each node is reached. The node feeds it
// link events and the routing control messages its neighbours send, and reads
// the table it publishes; a frame or a warm dial never waits on it.
type Routing interface {
	// Start begins routing for m. publish replaces the node's route table; it
	// may be called from any goroutine, at any time until Close returns.
	Start(m Mesh, publish func([]Route)) error
	// LinkUp and LinkDown report a link that came up or went away.
	LinkUp(LinkInfo)
	LinkDown(LinkInfo)
	// HandleControl receives a wire.KindRouting message from the neighbour on
	// from. body is valid only during the call.
	HandleControl(from LinkInfo, body []byte)
	// Close stops routing; it publishes nothing afterwards.
	Close() error
}

// Service is one bound listener as discovery announces it.
type Service struct {
	Name     string // with its environment suffix; "" for a port-only listener
	Node     NodeID
	Port     uint32
	Metadata map[string]string
}

// Bounds on a service's metadata, which discovery carries to every node.
const (
	MaxMetadata      = 16  // keys per service
	MaxMetadataKey   = 64  // bytes per key (at least 1)
	MaxMetadataValue = 256 // bytes per value
)

// CheckService reports why svc cannot be announced, nor taken from a
// neighbour or a plugin: it needs a port, a name that wire.CheckName
// accepts, and at most MaxMetadata keys of UTF-8 within the bounds above.
// The node is not checked: a node's own services are registered before it
// fills it in.
func CheckService(svc Service) error {
	switch {
	case svc.Port == 0:
		return fmt.Errorf("%q has port 0", svc.Name)
	case svc.Name == "":
		return fmt.Errorf("port %d has no name", svc.Port)
	case len(svc.Metadata) > MaxMetadata:
		return fmt.Errorf("%q has %d metadata keys, more than %d", svc.Name, len(svc.Metadata), MaxMetadata)
	}
	if err := wire.CheckName(svc.Name); err != nil {
		return err
	}
	for k, v := range svc.Metadata {
		if len(k) == 0 || len(k) > MaxMetadataKey || len(v) > MaxMetadataValue || !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%q: metadata %q: keys must be 1..%d and values 0..%d bytes of UTF-8",
				svc.Name, k, MaxMetadataKey, MaxMetadataValue)
		}
	}
	return nil
}

// Withdrawer is a Routing that can stop routing transit streams through its
// node. Node.Shutdown calls Withdraw as the node begins to drain, so that
// neighbours route around it before it closes. The embedded distance-vector
// routing implements it; a Routing that does not is left as it is (a
// draining node then refuses transit streams until it closes).
type Withdrawer interface {
	Withdraw()
}

// Discovery tells a node which nodes serve which service names. Like Routing,
// it publishes snapshots that the data plane reads without waiting.
type Discovery interface {
	// Start begins discovery for m. publish replaces the node's view of the
	// services in the mesh.
	Start(m Mesh, publish func([]Service)) error
	// Register and Deregister announce and withdraw a local service.
	Register(Service) error
	Deregister(Service) error
	// LinkUp and LinkDown report a link that came up or went away.
	LinkUp(LinkInfo)
	LinkDown(LinkInfo)
	// HandleControl receives a wire.KindDiscovery message. body is valid only
	// during the call.
	HandleControl(from LinkInfo, body []byte)
	// Close stops discovery; it publishes nothing afterwards.
	Close() error
}
