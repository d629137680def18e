package core

import (
	"errors"
	"fmt"

	"github.com/astranet-go/astranet/core/wire"
)

// Errors a stream, dial or listener returns, each wrapped in a *net.OpError
// where it concerns an address. Test with errors.Is.
var (
	// ErrRefused: the far node has no listener on that port.
	ErrRefused = errors.New("astranet: connection refused")
	// ErrNoService: no node serves that service name.
	ErrNoService = errors.New("astranet: no such service")
	// ErrNoRoute: no link leads to that node.
	ErrNoRoute = errors.New("astranet: no route to node")
	// ErrBacklog: the listener's accept queue is full.
	ErrBacklog = errors.New("astranet: listener backlog full")
	// ErrTooManyStreams: the link carries as many streams as it may.
	ErrTooManyStreams = errors.New("astranet: too many streams on link")
	// ErrLinkLost: a link the stream crossed died.
	ErrLinkLost = errors.New("astranet: link lost")
	// ErrReset: the far end aborted the stream.
	ErrReset = errors.New("astranet: stream reset by peer")
	// ErrNotAllowed: the far node does not do what was asked (a client asked to route).
	ErrNotAllowed = errors.New("astranet: not allowed")
	// ErrClosed: the node, listener or stream is closed.
	ErrClosed = errors.New("astranet: use of closed connection")
	// ErrWriteClosed: Write after CloseWrite.
	ErrWriteClosed = errors.New("astranet: write after CloseWrite")
	// ErrLinkTimeout: a link received nothing for the dead timeout.
	ErrLinkTimeout = errors.New("astranet: link silent past the dead timeout")
	// ErrHandshake: the peer did not complete the greeting.
	ErrHandshake = errors.New("astranet: link handshake failed")

	errTooManyLinks = errors.New("astranet: too many links")
)

// codeErr maps a reset code from the wire to the error a user sees.
func codeErr(c wire.Code) error {
	switch c {
	case wire.CodeRefused:
		return ErrRefused
	case wire.CodeNoService:
		return ErrNoService
	case wire.CodeNoRoute, wire.CodeHopLimit:
		return ErrNoRoute
	case wire.CodeBacklog:
		return ErrBacklog
	case wire.CodeTooMany:
		return ErrTooManyStreams
	case wire.CodeLinkLost:
		return ErrLinkLost
	case wire.CodeNotAllowed:
		return ErrNotAllowed
	case wire.CodeCancelled:
		return ErrReset
	}
	// Other codes (shutdown: a router that is closing refused the stream)
	// say why in the error's text.
	return fmt.Errorf("%w (%v)", ErrReset, c)
}

// errCode maps an error back to the reset code that carries it onward.
func errCode(err error) wire.Code {
	switch {
	case errors.Is(err, ErrRefused):
		return wire.CodeRefused
	case errors.Is(err, ErrNoService):
		return wire.CodeNoService
	case errors.Is(err, ErrNoRoute):
		return wire.CodeNoRoute
	case errors.Is(err, ErrBacklog):
		return wire.CodeBacklog
	case errors.Is(err, ErrTooManyStreams):
		return wire.CodeTooMany
	case errors.Is(err, ErrNotAllowed):
		return wire.CodeNotAllowed
	case errors.Is(err, ErrLinkLost), errors.Is(err, ErrLinkTimeout):
		return wire.CodeLinkLost
	}
	return wire.CodeCancelled
}
