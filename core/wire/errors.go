package wire

import "fmt"

// ProtocolError reports input that breaks the wire format. A link that reads
// one closes with it; the message names the field and the value seen.
type ProtocolError struct {
	What string
}

func (e *ProtocolError) Error() string { return "astranet protocol error: " + e.What }

func errorf(format string, args ...any) error {
	return &ProtocolError{What: fmt.Sprintf(format, args...)}
}
