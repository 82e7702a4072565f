package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLookPathIn(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, mode := range map[string]os.FileMode{"usr/bin/nginx": 0o755, "usr/bin/data": 0o644} {
		if err := os.WriteFile(filepath.Join(root, name), nil, mode); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"bin":          "/usr/bin",           // absolute: resolved inside root
		"usr/bin/up":   "../../../../../etc", // climbs no higher than root
		"usr/bin/host": "/etc/passwd",        // the container's /etc/passwd, which does not exist
		"usr/bin/loop": "loop",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, command, path, want string
	}{
		{"absolute", "/usr/bin/nginx", "", "/usr/bin/nginx"},
		{"through an absolute link", "/bin/nginx", "", "/bin/nginx"},
		{"in PATH", "nginx", "/sbin:/bin", "/bin/nginx"},
		{"relative PATH entries skipped", "nginx", "usr/bin", `not found in ` + root},
		{"not executable", "/usr/bin/data", "", "permission denied"},
		{"a link out of root stays in", "/usr/bin/host", "", "no such file"},
		{"dot-dot stops at root", "/usr/bin/up/nginx", "", "no such file"},
		{"loop", "/usr/bin/loop", "", "too many levels"},
		{"relative with slash", "bin/nginx", "", "want an absolute path inside the container"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookPathIn(root, tt.command, tt.path)
			if err != nil {
				got = err.Error()
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("lookPathIn(%q, %q) = %q, want %q", tt.command, tt.path, got, tt.want)
			}
		})
	}
}
