package core

import (
	"fmt"
	"strconv"
)

// NodeID names a node. It is written as 16 lowercase hex digits.
type NodeID uint64

// String returns the id as 16 lowercase hex digits, as ParseNodeID reads it.
func (id NodeID) String() string { return fmt.Sprintf("%016x", uint64(id)) }

// ParseNodeID reads the 16-hex-digit form written by NodeID.String.
func ParseNodeID(s string) (NodeID, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("astranet: node id %q: want 16 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("astranet: node id %q: want 16 hex digits, not all zero", s)
	}
	return NodeID(v), nil
}

// Addr is an endpoint of a stream: a node and a port on it.
type Addr struct {
	Node    NodeID
	Port    uint32
	Service string // the name the stream was dialled or bound by, if any
}

// Network returns "astranet".
func (a Addr) Network() string { return "astranet" }

// String returns "node:port", the node as 16 hex digits; it leaves out
// Service.
func (a Addr) String() string { return a.Node.String() + ":" + strconv.FormatUint(uint64(a.Port), 10) }
