package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/astranet-go/astranet/core"
	"github.com/hashicorp/go-hclog"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// FuzzParse: the keys under the prefix are anyone's to write, so a value
// read from etcd is untrusted. parse must skip, with a log line that names
// the key, whatever the host would not take (core.CheckService, node 0), and
// what it takes must write back (as syncOnce writes a record) into a value
// that parses to the same service.
func FuzzParse(f *testing.F) {
	for _, v := range []string{
		`{"name":"echo","node":"00000000000000b2","port":7,"metadata":{"zone":"a"},"addrs":["127.0.0.1:10000","[::1]:10001"]}`,
		`{"name":"echo.staging","node":"ffffffffffffffff","port":4294967295}`,
		`{"name":"a","node":"0000000000000001","port":1,"metadata":{"addrs":"x"},"addrs":["y"]}`,
		`{"name":"a","node":"0000000000000001","port":1,"addrs":[]}`,
		`{"name":"x","node":"nothex","port":1}`,
		`{"name":"x","node":"0000000000000000","port":1}`,
		`{"name":"x","node":"0000000000000001","port":-1}`,
		`{"name":"x","node":"0000000000000001","port":1,"metadata":{"k":1}}`,
		`{"name":"x","node":"0000000000000001","port":1,"addrs":"not a list"}`,
		`{"name":"x","node":"0000000000000001","port":0}`,
		`{"name":"","node":"0000000000000001","port":1}`,
		`{"name":"a:b","node":"0000000000000001","port":1}`,
		`{"name":"x","node":"0000000000000001","port":1,"metadata":{"":"v"}}`,
		`{"name":"x","node":"0000000000000001","port":1,"metadata":{"k0":"","k1":"","k2":"","k3":"","k4":"","k5":"","k6":"","k7":"","k8":"","k9":"","ka":"","kb":"","kc":"","kd":"","ke":"","kf":""},"addrs":["a"]}`,
		`{"name":"x","node":"0000000000000001","port":1,"addrs":["` + strings.Repeat("a", 257) + `"]}`,
		`{"NAME":"x","Node":"000000000000000A","port":1,"name":"y"}`,
		`{`, ``, `null`, `[]`, `"x"`,
	} {
		f.Add([]byte("/astranet/services/echo/00000000000000b2/7"), []byte(v))
	}
	f.Add([]byte("/astranet/services/junk"), []byte(strings.Repeat(" ", maxValueBytes)+"{}"))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		var logged bytes.Buffer
		e := newEtcdDiscovery(hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Debug}))
		s, ok := e.parse(key, value)
		if !ok {
			if s.Name != "" || s.Node != 0 || s.Port != 0 || s.Metadata != nil {
				t.Fatalf("parse skipped %q but returned %+v", value, s)
			}
			if !strings.Contains(logged.String(), "skipping") || !strings.Contains(logged.String(), "key=") {
				t.Fatalf("parse skipped %q without a log line that names the key: %q", value, logged.String())
			}
			return
		}
		if len(value) > maxValueBytes {
			t.Fatalf("parse took a value of %d bytes", len(value))
		}
		if err := core.CheckService(s); err != nil || s.Node == 0 {
			t.Fatalf("parse took %+v from %q, which the host refuses: %v", s, value, err)
		}
		var r record
		if err := json.Unmarshal(value, &r); err != nil {
			t.Fatalf("parse took %q, which does not unmarshal: %v", value, err)
		}
		if len(r.Addrs) > 0 && s.Metadata["addrs"] != strings.Join(r.Addrs, ",") {
			t.Fatalf("parse of %q gave addrs %q", value, s.Metadata["addrs"])
		}
		again, err := json.Marshal(record{Name: s.Name, Node: s.Node.String(), Port: s.Port, Metadata: s.Metadata})
		if err != nil {
			t.Fatal(err)
		}
		s2, ok := e.parse(key, again)
		if !ok || s2.Name != s.Name || s2.Node != s.Node || s2.Port != s.Port || !maps.Equal(s2.Metadata, s.Metadata) {
			t.Fatalf("parse took %+v from %q, but %+v, %v from it written back, %s", s, value, s2, ok, again)
		}
	})
}

// FuzzConfigure: the options come from the host's configuration. An option
// given is taken within its bounds (a prefix that starts and ends with /, a
// ttl of at least minTTL seconds and at most the lease TTL etcd grants, a
// positive dial timeout, addrs that fit a metadata value) or refused with an
// error that names it.
func FuzzConfigure(f *testing.F) {
	f.Add("127.0.0.1:2379", true, "/astranet/services/", true, "10", true, "127.0.0.1:10000", true, "5s")
	f.Add("a, b,,c", false, "", false, "", false, "", false, "")
	f.Add(" , ", true, "/", true, "2", true, " , ", true, "1ns")
	f.Add("x", false, "", true, "9000000000", false, "", true, "2562047h47m16.854775807s")
	f.Add("x", true, "nope", true, "1", true, "", true, "-1s")
	f.Add("x", true, "/p", true, "ten", true, "x", true, "0")
	f.Add("x", true, "p/", true, "+10", true, "x", true, "soon")
	f.Fuzz(func(t *testing.T, endpoints string, hasPrefix bool, prefix string, hasTTL bool, ttl string,
		hasAddrs bool, addrs string, hasTimeout bool, timeout string) {
		opts := map[string]string{"endpoints": endpoints}
		for _, o := range []struct {
			has  bool
			k, v string
		}{{hasPrefix, "prefix", prefix}, {hasTTL, "ttl", ttl}, {hasAddrs, "addrs", addrs}, {hasTimeout, "dial_timeout", timeout}} {
			if o.has {
				opts[o.k] = o.v
			}
		}
		e := newEtcdDiscovery(hclog.NewNullLogger())
		if err := e.Configure(opts); err != nil {
			named := false
			for k := range opts {
				named = named || strings.Contains(err.Error(), k)
			}
			if !named {
				t.Fatalf("Configure(%q): %q names no option", opts, err)
			}
			return
		}
		switch {
		case len(e.endpoints) == 0 || slices.Contains(e.endpoints, ""):
			t.Fatalf("Configure(%q) took endpoints %q", opts, e.endpoints)
		case !strings.HasPrefix(e.prefix, "/") || !strings.HasSuffix(e.prefix, "/"):
			t.Fatalf("Configure(%q) took prefix %q", opts, e.prefix)
		case e.ttl < minTTL || e.ttl > clientv3.MaxLeaseTTL:
			t.Fatalf("Configure(%q) took a ttl of %d s, outside [%d, %d]", opts, e.ttl, minTTL, clientv3.MaxLeaseTTL)
		case e.dialTimeout <= 0:
			t.Fatalf("Configure(%q) took dial timeout %v", opts, e.dialTimeout)
		case len(strings.Join(e.addrs, ",")) > core.MaxMetadataValue:
			t.Fatalf("Configure(%q) took addrs of %d bytes", opts, len(strings.Join(e.addrs, ",")))
		}
	})
}
