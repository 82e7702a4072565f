package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// lineWith returns the rest of the first line of s that starts with prefix.
func lineWith(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return rest
		}
	}
	return ""
}

// engineScripts copies testdata/engines into a new directory that tasks,
// which run as their framework's unprivileged uid, can read, and returns
// its path. The directory is removed when the test ends.
func engineScripts(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dcos-e2e-engines-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join("testdata", "engines"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join("testdata", "engines", ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, err := ent.Info()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ent.Name()), b, info.Mode().Perm()|0o444); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
