package wire

import (
	"encoding/binary"
	"fmt"
)

const resetSize = 4

// Code says why a circuit was reset or a link goes away.
type Code uint32

// Reset and go-away codes.
const (
	CodeNone        Code = 0  // orderly (GOAWAY on Close)
	CodeRefused     Code = 1  // no listener on the port
	CodeNoService   Code = 2  // no listener under the service name
	CodeNoRoute     Code = 3  // no route to the destination node
	CodeBacklog     Code = 4  // the listener's accept backlog is full
	CodeTooMany     Code = 5  // the link's stream limit is reached
	CodeLinkLost    Code = 6  // a link on the circuit's path died
	CodeCancelled   Code = 7  // the application aborted the stream
	CodeProtocol    Code = 8  // the peer broke the protocol (for example, flow control)
	CodeHopLimit    Code = 9  // the OPEN ran out of hops
	CodeShutdown    Code = 10 // the node is closing
	CodeNotAllowed  Code = 11 // the node does not do that (a client asked to route)
	CodeUnavailable Code = 12 // transient: retry later
	codeCount            = 13
)

var codeNames = [codeCount]string{"none", "refused", "no service", "no route", "backlog full",
	"too many streams", "link lost", "cancelled", "protocol error", "hop limit", "shutdown",
	"not allowed", "unavailable"}

func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint32(c))
}

// AppendReset appends a RESET payload to b.
func AppendReset(b []byte, c Code) []byte { return binary.BigEndian.AppendUint32(b, uint32(c)) }

// ParseReset decodes a RESET payload. Unknown codes are kept: a newer peer may
// send them, and they still mean the circuit is gone.
func ParseReset(p []byte) (Code, error) {
	if len(p) != resetSize {
		return 0, errorf("RESET payload of %d bytes, must be %d", len(p), resetSize)
	}
	return Code(binary.BigEndian.Uint32(p)), nil
}
