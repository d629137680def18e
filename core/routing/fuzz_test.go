package routing

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the message decoder: it must never
// panic, must reject with errMalformed, and whatever it accepts must encode
// back to exactly the same bytes (the format has one encoding per message).
// Run: go test -run='^$' -fuzz='^FuzzDecode$' -fuzztime=30s ./core/routing/
func FuzzDecode(f *testing.F) {
	one := entry{Dst: 0x0123456789ABCDEF, Seqno: 42, Metric: 700}
	seeds := [][]byte{
		update(350, 1, one),
		update(1, 3, one, entry{Dst: 2, Seqno: 0xFFFF, Metric: Infinity}, entry{Dst: 3}),
		appendRequest(nil, request{Dst: 7, Seqno: 9, Hops: 16}),
		nil,
		{MessageVersion},
		{2, typeUpdate, 0, 1, 0, 1},
		{MessageVersion, 9},
		update(0, 1, one),
		update(1, 0),
		update(1, 2, one),
		update(1, 1, entry{}),
		appendRequest(nil, request{Dst: 7, Seqno: 9, Hops: 0}),
		appendRequest(nil, request{Seqno: 9, Hops: 1}),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		var again []byte
		switch m.Type {
		case typeUpdate:
			msgs := appendUpdates(m.Entries, m.Lifetime, len(b))
			if len(msgs) != 1 {
				t.Fatalf("%d entries re-encode into %d messages", len(m.Entries), len(msgs))
			}
			again = msgs[0]
		case typeRequest:
			again = appendRequest(nil, m.Request)
		default:
			t.Fatalf("decoded unknown type %d", m.Type)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded %x as %+v, which encodes as %x", b, m, again)
		}
	})
}
