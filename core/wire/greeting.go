package wire

import (
	"encoding/binary"
	"io"
)

// Magic opens every link greeting.
const Magic = "ASTN"

// Version is the protocol version this package speaks.
const Version = 1

// GreetingSize is the size of a version 1 greeting on the wire. A peer may send
// a longer body (a later version's extra fields); the extra bytes are skipped.
const GreetingSize = 32

const (
	greetingBodyV1  = 24   // node, caps, max frame, link window, stream window
	greetingBodyMax = 1024 // larger bodies are refused as garbage
)

// Capability bits announced in the greeting.
const (
	CapRouter uint32 = 1 << iota // forwards transit streams
	CapServer                    // accepts streams and advertises services
	CapClient                    // opens streams
)

// Limits on what a greeting may announce.
const (
	MinFramePayload = 1 << 12 // 4 KiB
	MaxFramePayload = 1<<24 - 1
	MinWindow       = 1 << 12
)

// Greeting is what each side of a link says first.
type Greeting struct {
	Node         uint64 // the sender's node id; never 0
	Caps         uint32 // Cap* bits
	MaxFrame     uint32 // largest frame payload the sender accepts
	LinkWindow   uint32 // link credit the sender grants at start (its receive budget)
	StreamWindow uint32 // credit the sender grants each new stream unless OPEN/ACCEPT says otherwise
}

// AppendGreeting appends g's wire form to b.
func AppendGreeting(b []byte, g Greeting) []byte {
	b = append(b, Magic...)
	b = append(b, Version, 0)
	b = binary.BigEndian.AppendUint16(b, greetingBodyV1)
	b = binary.BigEndian.AppendUint64(b, g.Node)
	b = binary.BigEndian.AppendUint32(b, g.Caps)
	b = binary.BigEndian.AppendUint32(b, g.MaxFrame)
	b = binary.BigEndian.AppendUint32(b, g.LinkWindow)
	b = binary.BigEndian.AppendUint32(b, g.StreamWindow)
	return b
}

// ReadGreeting reads and validates one greeting from r. It reads exactly the
// greeting's bytes, so frames that follow stay in r.
func ReadGreeting(r io.Reader) (Greeting, error) {
	var head [8]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return Greeting{}, err
	}
	if string(head[:4]) != Magic {
		return Greeting{}, errorf("greeting: bad magic %q, want %q (not an astranet peer?)", head[:4], Magic)
	}
	if head[4] != Version {
		return Greeting{}, errorf("greeting: unsupported version %d, this node speaks %d", head[4], Version)
	}
	n := int(binary.BigEndian.Uint16(head[6:8]))
	if n < greetingBodyV1 || n > greetingBodyMax {
		return Greeting{}, errorf("greeting: body length %d outside [%d, %d]", n, greetingBodyV1, greetingBodyMax)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF { // the head came, so this is a cut, not a clean close
			err = io.ErrUnexpectedEOF
		}
		return Greeting{}, err
	}
	return ParseGreetingBody(body)
}

// ParseGreetingBody validates the fields after the 8-byte greeting head.
func ParseGreetingBody(body []byte) (Greeting, error) {
	if len(body) < greetingBodyV1 {
		return Greeting{}, errorf("greeting: body of %d bytes, need %d", len(body), greetingBodyV1)
	}
	g := Greeting{
		Node:         binary.BigEndian.Uint64(body[0:8]),
		Caps:         binary.BigEndian.Uint32(body[8:12]),
		MaxFrame:     binary.BigEndian.Uint32(body[12:16]),
		LinkWindow:   binary.BigEndian.Uint32(body[16:20]),
		StreamWindow: binary.BigEndian.Uint32(body[20:24]),
	}
	switch {
	case g.Node == 0:
		return g, errorf("greeting: node id 0 is reserved")
	case g.MaxFrame < MinFramePayload || g.MaxFrame > MaxFramePayload:
		return g, errorf("greeting: max frame %d outside [%d, %d]", g.MaxFrame, MinFramePayload, MaxFramePayload)
	case g.LinkWindow < MinWindow:
		return g, errorf("greeting: link window %d below %d", g.LinkWindow, MinWindow)
	case g.StreamWindow < MinWindow || g.StreamWindow > g.LinkWindow:
		return g, errorf("greeting: stream window %d outside [%d, link window %d]", g.StreamWindow, MinWindow, g.LinkWindow)
	}
	return g, nil
}
