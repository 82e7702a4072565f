package storage

import (
	"encoding/json"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

func TestParseHostVolume(t *testing.T) {
	tests := []struct {
		in      string
		name    string
		want    HostVolume
		wantErr bool
	}{
		{"certs=/etc/ssl/certs,ro", "certs", HostVolume{Path: "/etc/ssl/certs", ReadOnly: true}, false},
		{"data=/srv/data", "data", HostVolume{Path: "/srv/data"}, false},
		{"data=/srv/data/,rw", "data", HostVolume{Path: "/srv/data"}, false},
		{"data=srv/data", "", HostVolume{}, true},
		{"=/srv", "", HostVolume{}, true},
		{"data=", "", HostVolume{}, true},
		{"/srv", "", HostVolume{}, true},
		{"data=/srv,rx", "", HostVolume{}, true},
		{"a/b=/srv", "", HostVolume{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, hv, err := ParseHostVolume(tt.in)
			if (err != nil) != tt.wantErr || name != tt.name || hv != tt.want {
				t.Errorf("ParseHostVolume(%q) = %q, %+v, %v; want %q, %+v, error %v", tt.in, name, hv, err, tt.name, tt.want, tt.wantErr)
			}
		})
	}
}

func TestEscapeID(t *testing.T) {
	tests := []struct {
		id, want string
		ok       bool
	}{
		{"task-1", "task-1", true},
		{"a/b", "a%2Fb", true},
		{"..", "", false},
		{".", "", false},
		{"", "", false},
		{"..%2F", "..%252F", true},
	}
	for _, tt := range tests {
		got, err := escapeID(tt.id)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("escapeID(%q) = %q, %v; want %q, ok %v", tt.id, got, err, tt.want, tt.ok)
		}
		if tt.ok {
			if back, ok := unescapeID(got); !ok || back != tt.id {
				t.Errorf("unescapeID(%q) = %q, %v; want %q", got, back, ok, tt.id)
			}
		}
	}
	if _, ok := unescapeID("a%2fb"); ok {
		t.Error("unescapeID accepted a name escapeID never makes")
	}
}

func TestCheckTarget(t *testing.T) {
	for _, tt := range []struct {
		target string
		ok     bool
	}{
		{"data", true}, {"a/b", true}, {"", false}, {".", false}, {"..", false},
		{"../a", false}, {"/a", false}, {"a/../b", false}, {"a/", false}, {"a//b", false},
	} {
		if err := checkTarget(tt.target); (err == nil) != tt.ok {
			t.Errorf("checkTarget(%q) = %v, want ok %v", tt.target, err, tt.ok)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	good, _ := json.Marshal(&volumeMeta{Volume: contract.Volume{ID: "v", Role: "r", Path: "/p", SizeBytes: MinSize, Enforced: true},
		Version: metaVersion, Enforcement: EnforceLoop})
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"ID":"v","Role":"r","Path":"/p","SizeBytes":-1,"version":1,"enforcement":"none"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeMeta(b)
		if err != nil {
			return
		}
		// What decodes is a usable record, and survives a round trip.
		if v.ID == "" || v.Role == "" || v.SizeBytes < MinSize || v.Enforced != (v.Enforcement != EnforceNone) {
			t.Fatalf("decodeMeta accepted %+v", v)
		}
		again, _ := json.Marshal(v)
		if v2, err := decodeMeta(again); err != nil || *v2 != *v {
			t.Fatalf("round trip: %+v, %v; want %+v", v2, err, v)
		}
	})
}
