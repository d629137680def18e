package wire

// Kind says which part of a node a CONTROL frame is for.
type Kind uint8

// Control kinds. Kinds from KindUser on are free for plugins.
const (
	KindRouting   Kind = 1
	KindDiscovery Kind = 2
	KindUser      Kind = 16
)

// AppendControl appends a CONTROL payload: the kind byte, then body.
func AppendControl(b []byte, k Kind, body []byte) []byte {
	return append(append(b, byte(k)), body...)
}

// ParseControl splits a CONTROL payload into its kind and body. The body
// aliases p.
func ParseControl(p []byte) (Kind, []byte, error) {
	if len(p) < 1 {
		return 0, nil, errorf("CONTROL payload empty")
	}
	if p[0] == 0 {
		return 0, nil, errorf("CONTROL kind 0 is reserved")
	}
	return Kind(p[0]), p[1:], nil
}
