package wire

import "encoding/binary"

const pingSize = 8

// AppendPing appends a PING or PONG payload: an opaque value the answer echoes.
func AppendPing(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// ParsePing decodes a PING or PONG payload.
func ParsePing(p []byte) (uint64, error) {
	if len(p) != pingSize {
		return 0, errorf("PING payload of %d bytes, must be %d", len(p), pingSize)
	}
	return binary.BigEndian.Uint64(p), nil
}
