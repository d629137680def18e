package discovery

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the discovery message decoder: it must
// never panic, and a message it accepts must re-encode to the same bytes and
// keep every bound.
func FuzzDecode(f *testing.F) {
	good, _ := appendSnapshot(nil, sampleSnapshot())
	empty, _ := appendSnapshot(nil, &snapshot{origin: 1, interval: minInterval})
	f.Add(good)
	f.Add(empty)
	f.Add(good[:len(good)-3])
	f.Add([]byte{msgVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeSnapshot(b)
		if err != nil {
			if s != nil {
				t.Fatal("a snapshot with an error")
			}
			return
		}
		for _, svc := range s.services {
			if svc.Node != s.origin || checkService(svc) != nil {
				t.Fatalf("accepted a service the encoder refuses: %+v", svc)
			}
		}
		again, err := appendSnapshot(nil, s)
		if err != nil {
			t.Fatalf("accepted message does not re-encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n% x\n% x", again, b)
		}
	})
}
