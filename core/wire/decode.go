package wire

// Frame is one decoded frame. Exactly the field that matches Header.Type is
// set; Payload aliases the input (the data of DATA, the body of CONTROL).
type Frame struct {
	Header
	Open    Open
	Accept  Accept
	Code    Code   // RESET
	Credit  uint32 // WINDOW
	Ping    uint64 // PING, PONG
	GoAway  GoAway
	Kind    Kind   // CONTROL
	Payload []byte // DATA, CONTROL body
}

// Decode is the single parser entry point: it decodes one whole frame from the
// front of b and reports how many bytes it used. If b holds less than a whole
// frame, it returns n == 0 and a nil error: read more and call again.
func Decode(b []byte, maxPayload uint32) (f Frame, n int, err error) {
	if len(b) < HeaderSize {
		return f, 0, nil
	}
	h, err := ParseHeader(b, maxPayload)
	if err != nil {
		return f, 0, err
	}
	end := HeaderSize + int(h.Length)
	if len(b) < end {
		return f, 0, nil
	}
	f.Header = h
	if err := f.parsePayload(b[HeaderSize:end]); err != nil {
		return f, 0, err
	}
	return f, end, nil
}

func (f *Frame) parsePayload(p []byte) (err error) {
	switch f.Type {
	case TypeData:
		f.Payload = p
	case TypeOpen:
		f.Open, err = ParseOpen(p)
	case TypeAccept:
		f.Accept, err = ParseAccept(p)
	case TypeReset:
		f.Code, err = ParseReset(p)
	case TypeWindow:
		f.Credit, err = ParseWindow(p)
	case TypePing, TypePong:
		f.Ping, err = ParsePing(p)
	case TypeGoAway:
		f.GoAway, err = ParseGoAway(p)
	case TypeControl:
		f.Kind, f.Payload, err = ParseControl(p)
	}
	return err
}

// ParsePayload decodes the payload p of a frame whose header h came from
// ParseHeader.
func ParsePayload(h Header, p []byte) (Frame, error) {
	f := Frame{Header: h}
	err := f.parsePayload(p)
	return f, err
}
