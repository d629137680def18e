package wire

import "encoding/binary"

const acceptSize = 8 + 4 + 4 // node, port, window

// Accept is the payload of an ACCEPT frame: the stream is queued for a
// listener on Node:Port, and the acceptor grants Window credit.
type Accept struct {
	Node   uint64
	Port   uint32
	Window uint32
}

// AppendAccept appends a's payload to b.
func AppendAccept(b []byte, a Accept) []byte {
	b = binary.BigEndian.AppendUint64(b, a.Node)
	b = binary.BigEndian.AppendUint32(b, a.Port)
	return binary.BigEndian.AppendUint32(b, a.Window)
}

// ParseAccept decodes and validates an ACCEPT payload.
func ParseAccept(p []byte) (Accept, error) {
	if len(p) != acceptSize {
		return Accept{}, errorf("ACCEPT payload of %d bytes, must be %d", len(p), acceptSize)
	}
	a := Accept{
		Node:   binary.BigEndian.Uint64(p[0:8]),
		Port:   binary.BigEndian.Uint32(p[8:12]),
		Window: binary.BigEndian.Uint32(p[12:16]),
	}
	switch {
	case a.Node == 0 || a.Port == 0:
		return a, errorf("ACCEPT from %d:%d, node and port must be non-zero", a.Node, a.Port)
	case a.Window < MinWindow:
		return a, errorf("ACCEPT window %d below %d", a.Window, MinWindow)
	}
	return a, nil
}
