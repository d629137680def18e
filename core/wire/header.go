package wire

import "fmt"

// HeaderSize is the size of a frame header on the wire.
const HeaderSize = 9

// Type is a frame type.
type Type uint8

// Frame types.
const (
	TypeData    Type = 0x0 // stream bytes; FlagFin half-closes
	TypeOpen    Type = 0x1 // opens a circuit; carries the full address
	TypeAccept  Type = 0x2 // the far end queued the stream for its listener
	TypeReset   Type = 0x3 // the circuit is gone, with a reason code
	TypeWindow  Type = 0x4 // credit: on a circuit, or for the whole link (circuit 0)
	TypePing    Type = 0x5 // keep-alive probe; answered by PONG ahead of data
	TypePong    Type = 0x6 // answer to PING, echoing its payload
	TypeGoAway  Type = 0x7 // the sender opens no more streams and is closing; reason inside
	TypeControl Type = 0x8 // a routing or discovery message for the node, not a stream
	typeCount        = 9
)

var typeNames = [typeCount]string{"DATA", "OPEN", "ACCEPT", "RESET", "WINDOW", "PING", "PONG", "GOAWAY", "CONTROL"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type(0x%02x)", uint8(t))
}

// Flags modify a frame. Only FlagFin is defined, and only on DATA.
type Flags uint8

// FlagFin on a DATA frame: the sender writes nothing more on this circuit.
const FlagFin Flags = 0x1

// Header is the fixed part of every frame.
type Header struct {
	Length  uint32 // payload bytes that follow the header (24 bits)
	Type    Type
	Flags   Flags
	Circuit uint32 // per-link circuit id; 0 addresses the link itself
}

func (h Header) String() string {
	return fmt.Sprintf("%v circuit=%d len=%d flags=%#x", h.Type, h.Circuit, h.Length, uint8(h.Flags))
}

// AppendHeader appends h's wire form to b.
func AppendHeader(b []byte, h Header) []byte {
	return append(b, byte(h.Length>>16), byte(h.Length>>8), byte(h.Length),
		byte(h.Type), byte(h.Flags),
		byte(h.Circuit>>24), byte(h.Circuit>>16), byte(h.Circuit>>8), byte(h.Circuit))
}

// PutHeader writes h into b[:HeaderSize].
func PutHeader(b []byte, h Header) {
	_ = b[HeaderSize-1]
	b[0], b[1], b[2] = byte(h.Length>>16), byte(h.Length>>8), byte(h.Length)
	b[3], b[4] = byte(h.Type), byte(h.Flags)
	b[5], b[6], b[7], b[8] = byte(h.Circuit>>24), byte(h.Circuit>>16), byte(h.Circuit>>8), byte(h.Circuit)
}

// ParseHeader decodes and validates a header from b[:HeaderSize]. maxPayload is
// the largest payload this side accepts (what it announced in its greeting).
// Every rule that does not need the payload is checked here: known type,
// allowed flags, circuit 0 or not as the type demands, and the payload length
// (exact for fixed-size frames, bounded for the others).
func ParseHeader(b []byte, maxPayload uint32) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, errorf("frame header truncated: %d of %d bytes", len(b), HeaderSize)
	}
	h := Header{
		Length:  uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		Type:    Type(b[3]),
		Flags:   Flags(b[4]),
		Circuit: uint32(b[5])<<24 | uint32(b[6])<<16 | uint32(b[7])<<8 | uint32(b[8]),
	}
	if h.Type >= typeCount {
		return h, errorf("unknown frame type 0x%02x", uint8(h.Type))
	}
	allowed := Flags(0)
	if h.Type == TypeData {
		allowed = FlagFin
	}
	if h.Flags&^allowed != 0 {
		return h, errorf("%v: flags %#x not allowed", h.Type, uint8(h.Flags))
	}
	linkLevel := h.Type == TypePing || h.Type == TypePong || h.Type == TypeGoAway || h.Type == TypeControl
	switch {
	case linkLevel && h.Circuit != 0:
		return h, errorf("%v on circuit %d, must be 0", h.Type, h.Circuit)
	case !linkLevel && h.Type != TypeWindow && h.Circuit == 0:
		return h, errorf("%v on circuit 0", h.Type)
	}
	if h.Length > maxPayload {
		return h, errorf("%v payload of %d bytes exceeds the %d-byte limit", h.Type, h.Length, maxPayload)
	}
	if err := checkLength(h); err != nil {
		return h, err
	}
	return h, nil
}

func checkLength(h Header) error {
	var lo, hi uint32
	switch h.Type {
	case TypeData:
		return nil
	case TypeOpen:
		lo, hi = openFixed, openFixed+MaxNameLen
	case TypeAccept:
		lo, hi = acceptSize, acceptSize
	case TypeReset:
		lo, hi = resetSize, resetSize
	case TypeWindow:
		lo, hi = windowSize, windowSize
	case TypePing, TypePong:
		lo, hi = pingSize, pingSize
	case TypeGoAway:
		lo, hi = goAwayFixed, goAwayFixed+MaxReasonLen
	case TypeControl:
		lo, hi = 1, MaxFramePayload
	}
	if h.Length < lo || h.Length > hi {
		if lo == hi {
			return errorf("%v payload of %d bytes, must be %d", h.Type, h.Length, lo)
		}
		return errorf("%v payload of %d bytes outside [%d, %d]", h.Type, h.Length, lo, hi)
	}
	return nil
}
