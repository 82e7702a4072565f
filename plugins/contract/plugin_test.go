package contract

import (
	"strings"
	"testing"
)

func TestServeConfigMulti(t *testing.T) {
	tests := []struct {
		name    string
		impls   map[string]any
		wantErr string
	}{
		{"driver and isolator", map[string]any{KindDriver: &fakeDriver{}, KindIsolator: &fakeIsolator{}}, ""},
		{"one", map[string]any{KindIsolator: &fakeIsolator{}}, ""},
		{"none", nil, "no plugin"},
		{"wrong impl", map[string]any{KindDriver: &fakeDriver{}, KindIsolator: &fakeDriver{}}, "does not implement contract.Isolator"},
		{"unknown kind", map[string]any{KindDriver: &fakeDriver{}, "gpu": &fakeDriver{}}, `unknown plugin kind "gpu"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := ServeConfigMulti(tt.impls)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for v, set := range sc.VersionedPlugins {
				if len(set) != len(tt.impls) {
					t.Errorf("version %d serves %d plugins, want %d", v, len(set), len(tt.impls))
				}
				for kind := range tt.impls {
					if set[kind] == nil {
						t.Errorf("version %d: no %s plugin", v, kind)
					}
				}
			}
			if sc.VersionedPlugins[ProtocolVersion] == nil {
				t.Errorf("no plugin set at protocol version %d", ProtocolVersion)
			}
		})
	}
}
