package wire

import "encoding/binary"

// MaxReasonLen bounds the text a GOAWAY carries.
const MaxReasonLen = 1024

const goAwayFixed = 4

// GoAway is the payload of a GOAWAY frame: the sender is closing the link and
// says why.
type GoAway struct {
	Code   Code
	Reason string
}

// AppendGoAway appends g's payload to b, cutting the reason to MaxReasonLen.
func AppendGoAway(b []byte, g GoAway) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(g.Code))
	r := g.Reason
	if len(r) > MaxReasonLen {
		r = r[:MaxReasonLen]
	}
	return append(b, r...)
}

// ParseGoAway decodes a GOAWAY payload.
func ParseGoAway(p []byte) (GoAway, error) {
	if len(p) < goAwayFixed || len(p) > goAwayFixed+MaxReasonLen {
		return GoAway{}, errorf("GOAWAY payload of %d bytes outside [%d, %d]", len(p), goAwayFixed, goAwayFixed+MaxReasonLen)
	}
	return GoAway{Code: Code(binary.BigEndian.Uint32(p)), Reason: string(p[goAwayFixed:])}, nil
}
