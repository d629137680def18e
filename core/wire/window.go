package wire

import "encoding/binary"

const windowSize = 4

// AppendWindow appends a WINDOW payload granting increment bytes of credit.
func AppendWindow(b []byte, increment uint32) []byte {
	return binary.BigEndian.AppendUint32(b, increment)
}

// ParseWindow decodes a WINDOW payload. A zero increment is an error: it can
// only come from a broken peer.
func ParseWindow(p []byte) (uint32, error) {
	if len(p) != windowSize {
		return 0, errorf("WINDOW payload of %d bytes, must be %d", len(p), windowSize)
	}
	n := binary.BigEndian.Uint32(p)
	if n == 0 {
		return 0, errorf("WINDOW increment of 0")
	}
	return n, nil
}
