package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"

	"github.com/astranet-go/astranet/core"
)

// FuzzParse: a services file is untrusted (a wrong path, a half-written
// file, another tool's output). parse must refuse what it cannot publish,
// with an error that says why, and what it accepts must be services the host
// takes (core.CheckService, a node that is not 0) that write back into a
// file that parses to the same services.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"services": [{"name": "echo", "node": "00000000000000b2", "port": 7, "metadata": {"zone": "a"}}]}`,
		`{"services": [{"name": "a", "node": "0000000000000001", "port": 1}, {"name": "b.staging", "node": "ffffffffffffffff", "port": 4294967295, "metadata": {}}]}`,
		`{"services": []}`,
		`{"services": null}`,
		`{}`,
		`{"services": [{"name": "a", "node": "xyz", "port": 7}]}`,
		`{"services": [{"name": "a", "node": "0000000000000000", "port": 7}]}`,
		`{"services": [{"name": "a", "node": "00000000000000b2", "port": -1}]}`,
		`{"services": [{"name": "a", "node": "00000000000000b2", "port": 4294967296}]}`,
		`{"services": [{"name": "a", "node": "00000000000000b2", "port": 7, "metadata": {"k": 1}}]}`,
		`{"services": [{"name": "a", "node": "00000000000000b2", "port": 0}]}`,
		`{"services": [{"name": "", "node": "00000000000000b2", "port": 7}]}`,
		`{"services": [{"name": "a:b", "node": "00000000000000b2", "port": 7}]}`,
		`{"services": [{"name": "a", "node": "00000000000000b2", "port": 7, "metadata": {"": "v"}}]}`,
		`{"services": [{"name": "a", "node": "00000000000000b2", "port": 7, "metadata": {"k": "\xff"}}]}`,
		`{"SERVICES": [{"NAME": "a", "Node": "00000000000000B2", "port": 7}, {"name": "a", "node": "00000000000000b2", "port": 7}]}`,
		`{"services": [ not json`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ss, err := parse(bytes.NewReader(b))
		if err != nil {
			if ss != nil || err.Error() == "" {
				t.Fatalf("parse returned %v with error %q", ss, err)
			}
			return
		}
		if len(ss) > maxServices {
			t.Fatalf("parse accepted %d services", len(ss))
		}
		var ff fileFormat
		for _, s := range ss {
			if err := core.CheckService(s); err != nil || s.Node == 0 {
				t.Fatalf("parse accepted %+v, which the host refuses: %v", s, err)
			}
			ff.Services = append(ff.Services, fileService{Name: s.Name, Node: s.Node.String(), Port: s.Port, Metadata: s.Metadata})
		}
		out, err := json.Marshal(ff)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parse(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("parse accepted %q but not its own services written back, %s: %v", b, out, err)
		}
		if len(again) != len(ss) {
			t.Fatalf("written back, %d services became %d", len(ss), len(again))
		}
		for i := range ss {
			a, b := ss[i], again[i]
			if a.Name != b.Name || a.Node != b.Node || a.Port != b.Port || !maps.Equal(a.Metadata, b.Metadata) {
				t.Fatalf("written back, %+v became %+v", a, b)
			}
		}
	})
}
