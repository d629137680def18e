package wire

import "encoding/binary"

// MaxNameLen is the longest service name an OPEN may carry (name with env).
const MaxNameLen = 255

const openFixed = 8 + 4 + 8 + 4 + 4 + 1 + 1 // src, sport, dst, dport, window, hops, name length

// Open is the payload of an OPEN frame: the full address of a new stream. Later
// frames of the stream carry only the circuit id.
type Open struct {
	SrcNode uint64
	SrcPort uint32
	DstNode uint64 // 0: any node that serves Service
	DstPort uint32 // 0 with a Service: the service's port
	Window  uint32 // credit the opener grants the accepting side on this circuit
	Hops    uint8  // hop limit; a router refuses an OPEN that arrives with 0
	Service string // empty when dialling a port
}

// AppendOpen appends o's payload to b. It refuses a service name that
// CheckName refuses, since the peer would refuse it too.
func AppendOpen(b []byte, o *Open) ([]byte, error) {
	if err := CheckName(o.Service); err != nil {
		return b, err
	}
	b = binary.BigEndian.AppendUint64(b, o.SrcNode)
	b = binary.BigEndian.AppendUint32(b, o.SrcPort)
	b = binary.BigEndian.AppendUint64(b, o.DstNode)
	b = binary.BigEndian.AppendUint32(b, o.DstPort)
	b = binary.BigEndian.AppendUint32(b, o.Window)
	b = append(b, o.Hops, byte(len(o.Service)))
	return append(b, o.Service...), nil
}

// OpenSize is the payload size of o.
func OpenSize(o *Open) int { return openFixed + len(o.Service) }

// ParseOpen decodes and validates an OPEN payload.
func ParseOpen(p []byte) (Open, error) {
	if len(p) < openFixed {
		return Open{}, errorf("OPEN payload of %d bytes, need at least %d", len(p), openFixed)
	}
	o := Open{
		SrcNode: binary.BigEndian.Uint64(p[0:8]),
		SrcPort: binary.BigEndian.Uint32(p[8:12]),
		DstNode: binary.BigEndian.Uint64(p[12:20]),
		DstPort: binary.BigEndian.Uint32(p[20:24]),
		Window:  binary.BigEndian.Uint32(p[24:28]),
		Hops:    p[28],
	}
	n := int(p[29])
	if len(p) != openFixed+n {
		return o, errorf("OPEN name length %d does not match payload of %d bytes", n, len(p))
	}
	o.Service = string(p[openFixed:])
	switch {
	case o.SrcNode == 0:
		return o, errorf("OPEN from node 0")
	case o.Window < MinWindow:
		return o, errorf("OPEN window %d below %d", o.Window, MinWindow)
	case o.DstPort == 0 && o.Service == "":
		return o, errorf("OPEN names neither a port nor a service")
	case o.DstNode == 0 && o.Service == "":
		return o, errorf("OPEN to port %d names no node", o.DstPort)
	}
	if err := CheckName(o.Service); err != nil {
		return o, err
	}
	return o, nil
}

// CheckName reports whether s is acceptable as a service name on the wire:
// at most MaxNameLen bytes of printable ASCII without spaces or ':'.
func CheckName(s string) error {
	if len(s) > MaxNameLen {
		return errorf("service name of %d bytes exceeds %d", len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return errorf("service name %q: byte 0x%02x not allowed", s, c)
		}
	}
	return nil
}
