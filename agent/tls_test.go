package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// TestAgent_GiveCABundle: a task gets the cluster's bundle in its
// sandbox, readable by all, named by DCOS_CA_FILE, unless it sets the
// variable itself or the agent has no bundle.
func TestAgent_GiveCABundle(t *testing.T) {
	bundle := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	tests := []struct {
		name   string
		bundle []byte
		env    map[string]string
		want   string // DCOS_CA_FILE afterwards; "sandbox": the sandbox's file
	}{
		{"bundle", bundle, map[string]string{"A": "1"}, "sandbox"},
		{"no env map", bundle, nil, "sandbox"},
		{"task sets its own", bundle, map[string]string{EnvCAFile: "/etc/mine.pem"}, "/etc/mine.pem"},
		{"no bundle", nil, map[string]string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sandbox := t.TempDir()
			a := &Agent{caBundle: tt.bundle}
			cfg := &contract.TaskConfig{Env: tt.env}
			if err := a.giveCABundle(cfg, sandbox); err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "sandbox" {
				want = filepath.Join(sandbox, caFileName)
				b, err := os.ReadFile(want)
				if err != nil || string(b) != string(bundle) {
					t.Errorf("bundle file: %q, %v", b, err)
				}
				if fi, err := os.Stat(want); err != nil || fi.Mode().Perm() != 0o644 {
					t.Errorf("bundle file mode: %v, %v; want 0644", fi, err)
				}
			}
			if got := cfg.Env[EnvCAFile]; got != want {
				t.Errorf("%s = %q, want %q", EnvCAFile, got, want)
			}
		})
	}
}
