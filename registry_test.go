package astranet

import "testing"

// TestSameEntryMetadata: Watch reports a change that touches only an
// instance's metadata, and ignores only Updated.
func TestSameEntryMetadata(t *testing.T) {
	a := ServiceId{Service: "svc", Host: 1, Port: 7, Metadata: map[string]string{"v": "1"}}
	b := a
	b.Metadata = map[string]string{"v": "2"}
	if sameEntry(a, b) {
		t.Error("entries that differ in metadata count as the same")
	}
	c := a
	c.Metadata = map[string]string{"v": "1"}
	if !sameEntry(a, c) {
		t.Error("equal entries count as different")
	}
}
