package host

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFileName(t *testing.T) {
	tests := []struct {
		file       string
		kind, name string
		ok         bool
	}{
		{"dcos-driver-exec", "driver", "exec", true},
		{"dcos-isolator-cgroups_v2", "isolator", "cgroups_v2", true},
		{"dcos-driver-0-x", "driver", "0-x", true},
		{"dcos-driver-", "", "", false},
		{"dcos-driver-Exec", "", "", false},
		{"dcos-driver--x", "", "", false},
		{"dcos-driver-x.sh", "", "", false},
		{"dcos-net-x", "net", "x", true},
		{"dcos-storage-local", "storage", "local", true},
		{"dcos-net-", "", "", false},
		{"dcos-storage-Local", "", "", false},
		{"dcos-volume-x", "", "", false},
		{"terraform-provider-x", "", "", false},
		{"SHA256SUMS", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			kind, name, ok := parseFileName(tt.file)
			if kind != tt.kind || name != tt.name || ok != tt.ok {
				t.Errorf("parseFileName = %q, %q, %v; want %q, %q, %v", kind, name, ok, tt.kind, tt.name, tt.ok)
			}
		})
	}
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	files := map[string]os.FileMode{
		"dcos-driver-a":      0o755,
		"dcos-isolator-b":    0o700,
		"dcos-net-n":         0o755,
		"dcos-storage-s":     0o755,
		"dcos-storage-":      0o755,
		"dcos-driver-noexec": 0o644,
		"dcos-driver-Bad":    0o755,
		"README":             0o644,
	}
	for f, mode := range files {
		if err := os.WriteFile(filepath.Join(dir, f), nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "dcos-driver-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "dcos-driver-a"), filepath.Join(dir, "dcos-driver-link")); err != nil {
		t.Fatal(err)
	}
	got, err := discover(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	want := []found{
		{"driver", "a", filepath.Join(dir, "dcos-driver-a")},
		{"driver", "link", filepath.Join(dir, "dcos-driver-link")},
		{"isolator", "b", filepath.Join(dir, "dcos-isolator-b")},
		{"net", "n", filepath.Join(dir, "dcos-net-n")},
		{"storage", "s", filepath.Join(dir, "dcos-storage-s")},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(found{})); diff != "" {
		t.Errorf("discover (-want +got):\n%s", diff)
	}
}
