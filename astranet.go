package astranet

import (
	"context"
	"io"
	"net"
	"time"

	"github.com/astranet-go/astranet/core"
)

// AstraNet is a node of the network. Every method of the original astranet
// interface is here with its shape, plus DialContext, BindMeta, ID, Close and
// Shutdown.
type AstraNet interface {
	// Dial opens a stream to hp: "<node-id>:<port>", "name" or "name:port".
	// network selects how an instance of a service is chosen: "" at random,
	// "roundrobin" in turn, "nearest" by lowest route metric,
	// "registry://<key>" by consistent hashing on key, "vport2registry" by
	// consistent hashing on the port. A name waits for discovery to know it;
	// Dial waits at most 10 s in all.
	Dial(network, hp string) (net.Conn, error)
	// DialContext is Dial bounded by ctx instead of the default timeout.
	DialContext(ctx context.Context, network, hp string) (net.Conn, error)
	// DialTimeout is Dial bounded by t.
	DialTimeout(network, hp string, t time.Duration) (net.Conn, error)
	// Bind listens on hp: ":port", "name" or "name:port". network is ignored
	// (kept for the original's shape).
	Bind(network, hp string) (net.Listener, error)
	// BindMeta is Bind with metadata that discovery announces with the
	// service (ServiceId.Metadata at every node that sees it).
	BindMeta(network, hp string, metadata map[string]string) (net.Listener, error)

	// Attach runs a link over conn and blocks until the link ends.
	Attach(conn io.ReadWriter) error
	// ListenAndServe accepts links on address; it returns once it listens.
	ListenAndServe(network, address string) error
	// Join keeps a link to address up, re-dialling with backoff, until Close.
	// It returns after the first link's handshake, or its error.
	Join(network, address string) error

	// Services lists the services this node knows of.
	Services() []ServiceId
	// Routes lists the nodes this node reaches and how.
	Routes() []ServiceId
	// ServiceMap and RoutesMap are Services and Routes as live registries.
	ServiceMap() *RegistryStorage
	RoutesMap() *RegistryStorage

	// WithEnv, WithLoopBack, Client, Server, Router and New return a fresh node
	// (with a new id) configured like this one plus the change.
	//
	// WithEnv appends ".<env>" to every service name the node binds or dials.
	WithEnv(env ...string) Multiplexer
	// WithLoopBack lets the node dial its own listeners.
	WithLoopBack() Multiplexer
	// Client forwards no transit stream and announces none of the services
	// it binds (a dial by name does not find them; one by node id and port
	// does).
	Client() Multiplexer
	// Server forwards no transit stream; it announces its services.
	Server() Multiplexer
	// Router forwards transit streams and, as Client, announces none of the
	// services it binds.
	Router() Multiplexer
	// New routes, serves and dials, as a node from New does.
	New() Multiplexer

	// HttpDial is Dial for http.Transport: it drops a ":80" port after a
	// service name ("<node-id>:80" keeps it).
	HttpDial(network, host string) (net.Conn, error)

	// ID is the node's id. It starts the node's engine (and any plugin);
	// it is 0 if the engine cannot start or the node was closed before
	// its first use.
	ID() NodeID
	// Close stops the node and every goroutine it started.
	Close() error
	// Shutdown stops the node gracefully: it refuses new links, streams to
	// its listeners and streams routed through it at once (the embedded
	// routing withdraws the routes through it, so that neighbours route
	// around it), waits until every
	// stream has finished (closed, and what was written handed to the
	// network) or ctx is done, and then closes as Close does. It returns
	// ctx's error if ctx ended the wait. Dial keeps working meanwhile.
	Shutdown(ctx context.Context) error
}

// Multiplexer is the original name of AstraNet.
type Multiplexer = AstraNet

// NodeID names a node: a uint64, written as 16 lowercase hex digits.
type NodeID = core.NodeID

// ParseNodeID reads a node id written as 16 hex digits.
func ParseNodeID(s string) (NodeID, error) { return core.ParseNodeID(s) }

// Errors that dials, streams and listeners return, wrapped in *net.OpError.
// Test with errors.Is.
var (
	ErrRefused        = core.ErrRefused
	ErrNoService      = core.ErrNoService
	ErrNoRoute        = core.ErrNoRoute
	ErrBacklog        = core.ErrBacklog
	ErrTooManyStreams = core.ErrTooManyStreams
	ErrLinkLost       = core.ErrLinkLost
	ErrReset          = core.ErrReset
	ErrClosed         = core.ErrClosed
)

// DefaultDialTimeout bounds Dial, as in the original.
const DefaultDialTimeout = 10 * time.Second
