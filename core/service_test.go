package core

import (
	"strings"
	"testing"
)

func TestCheckService(t *testing.T) {
	meta := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[string(rune('a'+i%26))+strings.Repeat("k", i/26)] = "v"
		}
		return m
	}
	for _, tc := range []struct {
		svc  Service
		want string // "" for valid; else a part of the error
	}{
		{Service{Name: "echo", Port: 7}, ""},
		{Service{Name: "echo", Port: 7, Metadata: meta(MaxMetadata)}, ""},
		{Service{Name: "echo", Port: 7, Metadata: map[string]string{strings.Repeat("k", MaxMetadataKey): strings.Repeat("v", MaxMetadataValue)}}, ""},
		{Service{Name: "echo"}, "port 0"},
		{Service{Port: 7}, "no name"},
		{Service{Name: "echo", Port: 7, Metadata: meta(MaxMetadata + 1)}, "metadata keys"},
		{Service{Name: "echo", Port: 7, Metadata: map[string]string{"": "v"}}, "keys must be"},
		{Service{Name: "echo", Port: 7, Metadata: map[string]string{strings.Repeat("k", MaxMetadataKey+1): ""}}, "keys must be"},
		{Service{Name: "echo", Port: 7, Metadata: map[string]string{"k": strings.Repeat("v", MaxMetadataValue+1)}}, "keys must be"},
		{Service{Name: "echo", Port: 7, Metadata: map[string]string{"k": "\xff"}}, "UTF-8"},
		{Service{Name: "bad name", Port: 7}, "name"},
	} {
		err := CheckService(tc.svc)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v, want nil", tc.svc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want an error about %q", tc.svc, err, tc.want)
		}
	}
}
