package discovery

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/astranet-go/astranet/core"
	"github.com/astranet-go/astranet/core/wire"
)

// The discovery message is the body of a CONTROL frame of kind
// wire.KindDiscovery. docs/PROTOCOL.md section 12 specifies it; this file is
// its reference codec.
const (
	msgVersion  = 1 // first byte of every message
	msgSnapshot = 1 // the only message type of version 1

	// maxMessage bounds one message, and so one origin's snapshot: the whole
	// service set of a node travels in a single message, which fits the
	// default 64 KiB frame with room to spare.
	maxMessage = 60 << 10

	maxMetadata = core.MaxMetadata
	maxKeyLen   = core.MaxMetadataKey
	maxValueLen = core.MaxMetadataValue

	// minInterval and maxInterval bound the refresh interval an origin may
	// announce; receivers expire its services after 3.5 of them.
	minInterval = time.Millisecond
	maxInterval = time.Hour

	headerLen = 1 + 1 + 4 + 8 + 8 + 4 + 2 // version, type, age, origin, seq, interval, count
	ageOffset = 2                         // where the age field sits, rewritten by every relay
)

var (
	// ErrTooManyServices: a node's service set would no longer fit in one
	// discovery message (60 KiB).
	ErrTooManyServices = errors.New("discovery: service set too large for one announcement")
	// ErrBadService: a service has a name or metadata that the wire format
	// cannot carry (see docs/PROTOCOL.md section 12).
	ErrBadService = errors.New("discovery: service cannot be announced")

	// errMalformed wraps every reason a received message is refused.
	errMalformed = errors.New("malformed discovery message")
)

// snapshot is one origin's whole service set as a message carries it.
type snapshot struct {
	age      time.Duration // how long ago the sender last heard from the origin
	origin   core.NodeID
	seq      uint64        // bumped by the origin on every change
	interval time.Duration // the origin's refresh interval
	services []core.Service
	msg      string // the message decoded; the services' strings share its memory. Unset for encoding.
}

// appendSnapshot appends s's wire form to b. It sorts the services by port
// and the metadata by key, the canonical order receivers require, and refuses
// a service the wire cannot carry.
func appendSnapshot(b []byte, s *snapshot) ([]byte, error) {
	if len(s.services) > 0xffff {
		return nil, ErrTooManyServices
	}
	ss := slices.SortedFunc(slices.Values(s.services), func(a, b core.Service) int { return cmp.Compare(a.Port, b.Port) })
	start := len(b)
	b = append(b, msgVersion, msgSnapshot)
	b = binary.BigEndian.AppendUint32(b, millis(s.age))
	b = binary.BigEndian.AppendUint64(b, uint64(s.origin))
	b = binary.BigEndian.AppendUint64(b, s.seq)
	b = binary.BigEndian.AppendUint32(b, millis(s.interval))
	b = binary.BigEndian.AppendUint16(b, uint16(len(ss)))
	for i, svc := range ss {
		if err := checkService(svc); err != nil {
			return nil, err
		}
		if svc.Node != s.origin {
			return nil, fmt.Errorf("%w: %q is on node %v, not on the announcing %v", ErrBadService, svc.Name, svc.Node, s.origin)
		}
		if i > 0 && svc.Port == ss[i-1].Port {
			return nil, fmt.Errorf("%w: port %d announced twice", ErrBadService, svc.Port)
		}
		b = binary.BigEndian.AppendUint32(b, svc.Port)
		b = append(b, byte(len(svc.Name)))
		b = append(b, svc.Name...)
		b = append(b, byte(len(svc.Metadata)))
		for _, k := range slices.Sorted(maps.Keys(svc.Metadata)) {
			v := svc.Metadata[k]
			b = append(b, byte(len(k)))
			b = append(b, k...)
			b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
			b = append(b, v...)
		}
		if len(b)-start > maxMessage {
			return nil, ErrTooManyServices
		}
	}
	return b, nil
}

// checkService reports whether svc can be announced (core.CheckService).
func checkService(svc core.Service) error {
	if err := core.CheckService(svc); err != nil {
		return fmt.Errorf("%w: %w", ErrBadService, err)
	}
	return nil
}

// decodeSnapshot parses a message. Every byte is untrusted: it checks every
// length and field, requires the canonical order appendSnapshot writes, and
// refuses trailing bytes, so that a message it accepts re-encodes to itself.
// It copies p once, into the snapshot's msg, and the names and metadata of
// the services are parts of that copy rather than allocations of their own.
func decodeSnapshot(p []byte) (*snapshot, error) {
	if len(p) > maxMessage {
		return nil, malformed("%d bytes, more than %d", len(p), maxMessage)
	}
	if len(p) < 2 {
		return nil, malformed("%d bytes, too short for a version and type", len(p))
	}
	if p[0] != msgVersion {
		return nil, malformed("version %d, this node speaks %d", p[0], msgVersion)
	}
	if p[1] != msgSnapshot {
		return nil, malformed("unknown type %d", p[1])
	}
	if len(p) < headerLen {
		return nil, malformed("%d bytes, too short for the %d-byte header", len(p), headerLen)
	}
	s := &snapshot{
		age:      time.Duration(binary.BigEndian.Uint32(p[2:])) * time.Millisecond,
		origin:   core.NodeID(binary.BigEndian.Uint64(p[6:])),
		seq:      binary.BigEndian.Uint64(p[14:]),
		interval: time.Duration(binary.BigEndian.Uint32(p[22:])) * time.Millisecond,
	}
	count := int(binary.BigEndian.Uint16(p[26:]))
	switch {
	case s.origin == 0:
		return nil, malformed("origin 0")
	case s.interval < minInterval || s.interval > maxInterval:
		return nil, malformed("interval %v outside [%v, %v]", s.interval, minInterval, maxInterval)
	}
	s.msg = string(p)
	r := reader{p: s.msg[headerLen:]}
	s.services = make([]core.Service, 0, min(count, len(r.p)/7))
	for i := range count {
		svc := core.Service{Node: s.origin}
		svc.Port = r.uint32()
		svc.Name = r.bytes(int(r.byte()))
		n := int(r.byte())
		if r.bad {
			return nil, malformed("service %d of %d cut short", i+1, count)
		}
		if svc.Port == 0 || (i > 0 && svc.Port <= s.services[i-1].Port) {
			return nil, malformed("service %d: port %d out of order or 0", i+1, svc.Port)
		}
		if svc.Name == "" {
			return nil, malformed("service %d: empty name", i+1)
		}
		if err := wire.CheckName(svc.Name); err != nil {
			return nil, malformed("service %d: %v", i+1, err)
		}
		if n > maxMetadata {
			return nil, malformed("service %q: %d metadata keys, more than %d", svc.Name, n, maxMetadata)
		}
		if n > 0 {
			svc.Metadata = make(map[string]string, n)
		}
		var prev string
		for j := range n {
			k := r.bytes(int(r.byte()))
			v := r.bytes(int(r.uint16()))
			switch {
			case r.bad:
				return nil, malformed("service %q: metadata %d of %d cut short", svc.Name, j+1, n)
			case len(k) == 0 || len(k) > maxKeyLen || len(v) > maxValueLen:
				return nil, malformed("service %q: metadata key of %d or value of %d bytes", svc.Name, len(k), len(v))
			case j > 0 && k <= prev:
				return nil, malformed("service %q: metadata key %q out of order", svc.Name, k)
			case !utf8.ValidString(k) || !utf8.ValidString(v):
				return nil, malformed("service %q: metadata %q not UTF-8", svc.Name, k)
			}
			prev = k
			svc.Metadata[k] = v
		}
		s.services = append(s.services, svc)
	}
	if len(r.p) != 0 {
		return nil, malformed("%d bytes after the last service", len(r.p))
	}
	return s, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// setAge rewrites the age field of an encoded message in place.
func setAge(msg []byte, age time.Duration) {
	binary.BigEndian.PutUint32(msg[ageOffset:], millis(age))
}

// millis converts d to whole milliseconds for the wire, saturating.
func millis(d time.Duration) uint32 {
	return uint32(min(max(d.Milliseconds(), 0), 0xffffffff))
}

// reader consumes a message front to back; a read past the end sets bad and
// yields zeros, so a parser checks once per field group. It reads a string,
// so that what it yields shares the string's memory.
type reader struct {
	p   string
	bad bool
}

// bytes yields the next n bytes, or "" past the end.
func (r *reader) bytes(n int) string {
	if n > len(r.p) {
		r.bad = true
		r.p = ""
		return ""
	}
	b := r.p[:n]
	r.p = r.p[n:]
	return b
}

func (r *reader) byte() byte {
	if b := r.bytes(1); b != "" {
		return b[0]
	}
	return 0
}

func (r *reader) uint16() uint16 {
	if b := r.bytes(2); b != "" {
		return uint16(b[0])<<8 | uint16(b[1])
	}
	return 0
}

func (r *reader) uint32() uint32 {
	if b := r.bytes(4); b != "" {
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	return 0
}
