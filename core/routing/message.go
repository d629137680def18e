package routing

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/astranet-go/astranet/core"
)

// Message layout (docs/PROTOCOL.md section 11). All integers big-endian.
const (
	// MessageVersion is the first byte of every routing message.
	MessageVersion = 1

	typeUpdate  = 1
	typeRequest = 2

	updateHeaderSize = 6  // version, type, lifetime (2), count (2)
	entrySize        = 12 // node id (8), seqno (2), metric (2)
	requestSize      = 13 // version, type, node id (8), seqno (2), hops

	// lifetimeUnit is the unit of an update's lifetime field.
	lifetimeUnit = 10 * time.Millisecond
	maxLifetime  = 0xFFFF * lifetimeUnit
)

// errMalformed wraps every decoding error.
var errMalformed = errors.New("malformed routing message")

// entry is one route in an update: the sender reaches Dst at Metric, with the
// origin's sequence number Seqno. Metric Infinity retracts the route.
type entry struct {
	Dst    core.NodeID
	Seqno  uint16
	Metric uint16
}

// request asks for a route to Dst with a sequence number at least Seqno; it
// is forwarded at most Hops-1 more times.
type request struct {
	Dst   core.NodeID
	Seqno uint16
	Hops  uint8
}

// message is one decoded routing message: an update (Entries, Lifetime) or a
// request (Request), as Type says.
type message struct {
	Type     uint8
	Lifetime time.Duration
	Entries  []entry
	Request  request
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// decode parses and validates one message. It checks every length and field
// and never keeps a reference to b.
func decode(b []byte) (message, error) {
	if len(b) < 2 {
		return message{}, malformed("%d bytes, shorter than the 2-byte head", len(b))
	}
	if b[0] != MessageVersion {
		return message{}, malformed("version %d, want %d", b[0], MessageVersion)
	}
	switch b[1] {
	case typeUpdate:
		return decodeUpdate(b)
	case typeRequest:
		return decodeRequest(b)
	default:
		return message{}, malformed("unknown type %d", b[1])
	}
}

func decodeUpdate(b []byte) (message, error) {
	if len(b) < updateHeaderSize {
		return message{}, malformed("update of %d bytes, shorter than its %d-byte header", len(b), updateHeaderSize)
	}
	lifetime := binary.BigEndian.Uint16(b[2:])
	count := int(binary.BigEndian.Uint16(b[4:]))
	switch {
	case lifetime == 0:
		return message{}, malformed("update lifetime 0")
	case count == 0:
		return message{}, malformed("update with no entry")
	case len(b) != updateHeaderSize+count*entrySize:
		return message{}, malformed("update of %d bytes for %d entries, want %d", len(b), count, updateHeaderSize+count*entrySize)
	}
	m := message{Type: typeUpdate, Lifetime: time.Duration(lifetime) * lifetimeUnit, Entries: make([]entry, count)}
	p := b[updateHeaderSize:]
	for i := range m.Entries {
		e := entry{
			Dst:    core.NodeID(binary.BigEndian.Uint64(p)),
			Seqno:  binary.BigEndian.Uint16(p[8:]),
			Metric: binary.BigEndian.Uint16(p[10:]),
		}
		if e.Dst == 0 {
			return message{}, malformed("update entry %d: node id 0", i)
		}
		m.Entries[i] = e
		p = p[entrySize:]
	}
	return m, nil
}

func decodeRequest(b []byte) (message, error) {
	if len(b) != requestSize {
		return message{}, malformed("request of %d bytes, want %d", len(b), requestSize)
	}
	r := request{
		Dst:   core.NodeID(binary.BigEndian.Uint64(b[2:])),
		Seqno: binary.BigEndian.Uint16(b[10:]),
		Hops:  b[12],
	}
	switch {
	case r.Dst == 0:
		return message{}, malformed("request for node id 0")
	case r.Hops == 0:
		return message{}, malformed("request with hop count 0")
	}
	return message{Type: typeRequest, Request: r}, nil
}

// encodeLifetime converts d to the lifetime field, rounding up and clamping
// to the field's range.
func encodeLifetime(d time.Duration) uint16 {
	u := (d + lifetimeUnit - 1) / lifetimeUnit
	switch {
	case u < 1:
		return 1
	case u > 0xFFFF:
		return 0xFFFF
	}
	return uint16(u)
}

// appendUpdates encodes entries as updates of at most maxBody bytes each and
// returns the messages. It returns nil for no entries.
func appendUpdates(entries []entry, lifetime time.Duration, maxBody int) [][]byte {
	per := (maxBody - updateHeaderSize) / entrySize
	per = min(max(per, 1), 0xFFFF)
	var out [][]byte
	lt := encodeLifetime(lifetime)
	for len(entries) > 0 {
		n := min(per, len(entries))
		b := make([]byte, 0, updateHeaderSize+n*entrySize)
		b = append(b, MessageVersion, typeUpdate)
		b = binary.BigEndian.AppendUint16(b, lt)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
		for _, e := range entries[:n] {
			b = binary.BigEndian.AppendUint64(b, uint64(e.Dst))
			b = binary.BigEndian.AppendUint16(b, e.Seqno)
			b = binary.BigEndian.AppendUint16(b, e.Metric)
		}
		out = append(out, b)
		entries = entries[n:]
	}
	return out
}

// appendRequest appends r's wire form to b.
func appendRequest(b []byte, r request) []byte {
	b = append(b, MessageVersion, typeRequest)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Dst))
	b = binary.BigEndian.AppendUint16(b, r.Seqno)
	return append(b, r.Hops)
}
