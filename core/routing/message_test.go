package routing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/astranet-go/astranet/core"
)

// update builds an update body field by field, without appendUpdates' care,
// so that tests can state malformed ones.
func update(lifetime, count uint16, entries ...entry) []byte {
	b := []byte{MessageVersion, typeUpdate}
	b = binary.BigEndian.AppendUint16(b, lifetime)
	b = binary.BigEndian.AppendUint16(b, count)
	for _, e := range entries {
		b = binary.BigEndian.AppendUint64(b, uint64(e.Dst))
		b = binary.BigEndian.AppendUint16(b, e.Seqno)
		b = binary.BigEndian.AppendUint16(b, e.Metric)
	}
	return b
}

func TestDecodeValid(t *testing.T) {
	entries := []entry{{Dst: 1, Seqno: 7, Metric: 0}, {Dst: 0xFFFFFFFFFFFFFFFF, Seqno: 0xFFFF, Metric: Infinity}}
	tests := []struct {
		name string
		in   []byte
		want message
	}{
		{"update", update(350, 2, entries...),
			message{Type: typeUpdate, Lifetime: 3500 * time.Millisecond, Entries: entries}},
		{"update, one entry, shortest lifetime", update(1, 1, entry{Dst: 9, Seqno: 1, Metric: 256}),
			message{Type: typeUpdate, Lifetime: 10 * time.Millisecond, Entries: []entry{{Dst: 9, Seqno: 1, Metric: 256}}}},
		{"request", appendRequest(nil, request{Dst: 42, Seqno: 65535, Hops: 16}),
			message{Type: typeRequest, Request: request{Dst: 42, Seqno: 65535, Hops: 16}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got.Type != tt.want.Type || got.Lifetime != tt.want.Lifetime || got.Request != tt.want.Request ||
				!slices.Equal(got.Entries, tt.want.Entries) {
				t.Fatalf("decode = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	one := entry{Dst: 5, Seqno: 1, Metric: 256}
	request13 := appendRequest(nil, request{Dst: 5, Seqno: 1, Hops: 3})
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"version only", []byte{MessageVersion}},
		{"version 0", []byte{0, typeUpdate, 0, 1, 0, 0}},
		{"version 2", append([]byte{2}, update(1, 1, one)[1:]...)},
		{"type 0", []byte{MessageVersion, 0}},
		{"unknown type", []byte{MessageVersion, 3, 0, 0, 0, 0}},
		{"update header cut", update(1, 1)[:5]},
		{"update lifetime 0", update(0, 1, one)},
		{"update without entries", update(1, 0)},
		{"update count above entries", update(1, 2, one)},
		{"update count below entries", update(1, 1, one, one)},
		{"update entry cut", update(1, 1, one)[:updateHeaderSize+entrySize-1]},
		{"update trailing byte", append(update(1, 1, one), 0)},
		{"update node id 0", update(1, 2, one, entry{Dst: 0, Seqno: 1, Metric: 1})},
		{"update count 65535, one entry", update(0xFFFF, 0xFFFF, one)},
		{"request cut", request13[:requestSize-1]},
		{"request trailing byte", append(request13, 0)},
		{"request node id 0", appendRequest(nil, request{Dst: 0, Seqno: 1, Hops: 3})},
		{"request hop count 0", appendRequest(nil, request{Dst: 5, Seqno: 1, Hops: 0})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := decode(tt.in)
			if err == nil {
				t.Fatalf("decode accepted %x as %+v", tt.in, m)
			}
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
		})
	}
}

func TestAppendUpdatesSplits(t *testing.T) {
	entries := make([]entry, 12000)
	for i := range entries {
		entries[i] = entry{Dst: core.NodeID(i + 1), Seqno: uint16(i), Metric: uint16(i % Infinity)}
	}
	for _, maxBody := range []int{DefaultMaxMessage, smallMessage, 64} {
		msgs := appendUpdates(entries, 3500*time.Millisecond, maxBody)
		per := (maxBody - updateHeaderSize) / entrySize
		if want := (len(entries) + per - 1) / per; len(msgs) != want {
			t.Errorf("max %d: %d messages, want %d", maxBody, len(msgs), want)
		}
		var got []entry
		for _, m := range msgs {
			if len(m) > maxBody {
				t.Fatalf("max %d: a message of %d bytes", maxBody, len(m))
			}
			d, err := decode(m)
			if err != nil {
				t.Fatal(err)
			}
			if d.Lifetime != 3500*time.Millisecond {
				t.Fatalf("lifetime %v", d.Lifetime)
			}
			got = append(got, d.Entries...)
		}
		if !slices.Equal(got, entries) {
			t.Fatalf("max %d: entries do not survive the split", maxBody)
		}
	}
	if msgs := appendUpdates(nil, time.Second, DefaultMaxMessage); msgs != nil {
		t.Errorf("no entries gave %d messages", len(msgs))
	}
}

func TestEncodeLifetime(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want uint16
	}{
		{0, 1},
		{time.Millisecond, 1},
		{10 * time.Millisecond, 1},
		{11 * time.Millisecond, 2},
		{3500 * time.Millisecond, 350},
		{maxLifetime, 0xFFFF},
		{time.Hour, 0xFFFF},
	}
	for _, tt := range tests {
		if got := encodeLifetime(tt.in); got != tt.want {
			t.Errorf("encodeLifetime(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestAppendRequestLayout(t *testing.T) {
	got := appendRequest(nil, request{Dst: 0x0102030405060708, Seqno: 0x090A, Hops: 0x0B})
	want := []byte{MessageVersion, typeRequest, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	if !bytes.Equal(got, want) {
		t.Fatalf("request = %x, want %x", got, want)
	}
}
