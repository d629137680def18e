package discovery

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
)

func sampleSnapshot() *snapshot {
	return &snapshot{
		age: 1500 * time.Millisecond, origin: 0xabc, seq: 7, interval: time.Second,
		services: []core.Service{
			{Name: "web.prod", Node: 0xabc, Port: 80, Metadata: map[string]string{"zone": "eu", "version": "2", "e": ""}},
			{Name: "db", Node: 0xabc, Port: 5},
		},
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, s := range []*snapshot{
		sampleSnapshot(),
		{origin: 1, seq: 0, interval: minInterval},                        // empty: a withdrawal of everything
		{origin: ^core.NodeID(0), seq: ^uint64(0), interval: maxInterval}, // extremes
	} {
		b, err := appendSnapshot(nil, s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeSnapshot(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.age != s.age || got.origin != s.origin || got.seq != s.seq || got.interval != s.interval {
			t.Errorf("header: got %+v, want %+v", got, s)
		}
		if fmt.Sprint(got.services) != fmt.Sprint(canonicalByPort(s.services)) {
			t.Errorf("services: got %v, want %v", got.services, s.services)
		}
		if again, _ := appendSnapshot(nil, got); !bytes.Equal(again, b) {
			t.Errorf("re-encoding differs")
		}
	}
}

// canonicalByPort orders services as the wire does.
func canonicalByPort(ss []core.Service) []core.Service {
	return slices.SortedFunc(slices.Values(ss), func(a, b core.Service) int { return cmp.Compare(a.Port, b.Port) })
}

func TestSnapshotLayout(t *testing.T) {
	b, err := appendSnapshot(nil, &snapshot{age: 2 * time.Second, origin: 0x0102030405060708, seq: 9, interval: 50 * time.Millisecond,
		services: []core.Service{{Name: "ab", Node: 0x0102030405060708, Port: 7, Metadata: map[string]string{"k": "vv"}}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		1, 1, // version, type
		0, 0, 0x07, 0xd0, // age 2000 ms
		1, 2, 3, 4, 5, 6, 7, 8, // origin
		0, 0, 0, 0, 0, 0, 0, 9, // seq
		0, 0, 0, 50, // interval ms
		0, 1, // count
		0, 0, 0, 7, 2, 'a', 'b', // port, name
		1, 1, 'k', 0, 2, 'v', 'v', // one key
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("got  % x\nwant % x", b, want)
	}
	setAge(b, 3*time.Millisecond)
	if binary.BigEndian.Uint32(b[2:]) != 3 {
		t.Error("setAge did not rewrite the age")
	}
	if millis(-time.Second) != 0 || millis(100*24*time.Hour) != 0xffffffff {
		t.Error("millis does not saturate")
	}
}

func TestDecodeRefuses(t *testing.T) {
	good, err := appendSnapshot(nil, sampleSnapshot())
	if err != nil {
		t.Fatal(err)
	}
	// Offsets in good: header 28; service "db" port 5 at 28, name len 32,
	// name 33..34, meta count 35; "web.prod" port 80 from 36.
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"version", edit(func(b []byte) []byte { b[0] = 2; return b }), "version 2"},
		{"type", edit(func(b []byte) []byte { b[1] = 9; return b }), "unknown type"},
		{"short header", good[:20], "header"},
		{"origin 0", edit(func(b []byte) []byte { clear(b[6:14]); return b }), "origin 0"},
		{"interval 0", edit(func(b []byte) []byte { clear(b[22:26]); return b }), "interval"},
		{"interval long", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[22:], 3600001); return b }), "interval"},
		{"count high", edit(func(b []byte) []byte { b[27]++; return b }), "cut short"},
		{"count low", edit(func(b []byte) []byte { b[27]--; return b }), "after the last"},
		{"trailing", append(append([]byte(nil), good...), 0), "after the last"},
		{"cut", good[:len(good)-1], "cut short"},
		{"port 0", edit(func(b []byte) []byte { clear(b[28:32]); return b }), "port 0"},
		{"ports out of order", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[28:], 80); return b }), "out of order"},
		{"empty name", edit(func(b []byte) []byte { b[32] = 0; return b }), ""},
		{"bad name", edit(func(b []byte) []byte { b[33] = ':'; return b }), "not allowed"},
		{"too many keys", edit(func(b []byte) []byte { b[35] = maxMetadata + 1; return b }), "metadata keys"},
		{"too big", make([]byte, maxMessage+1), "more than"},
	} {
		_, err := decodeSnapshot(tc.b)
		if err == nil || !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error about %q", tc.name, err, tc.want)
		}
	}

	// Metadata: out of order, duplicate, empty key, long value, not UTF-8.
	svc := func(md string) []byte {
		b := append([]byte(nil), good[:26]...)
		b = append(b, 0, 1, 0, 0, 0, 1, 1, 'x')
		return append(b, md...)
	}
	for name, md := range map[string]string{
		"order":     "\x02\x01b\x00\x00\x01a\x00\x00",
		"duplicate": "\x02\x01a\x00\x00\x01a\x00\x00",
		"empty key": "\x01\x00\x00\x00",
		"long":      "\x01\x01a\x01\x01" + strings.Repeat("v", 257),
		"utf8":      "\x01\x01a\x00\x01\xff",
	} {
		if _, err := decodeSnapshot(svc(md)); !errors.Is(err, errMalformed) {
			t.Errorf("metadata %s: got %v", name, err)
		}
	}
	if _, err := decodeSnapshot(svc("\x01\x01a\x00\x00")); err != nil {
		t.Errorf("the valid base of the metadata cases: %v", err)
	}
}
