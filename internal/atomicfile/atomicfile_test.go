package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(string, []byte) error
	}{
		{"Write", Write},
		{"WriteDurable", WriteDurable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f.json")
			for _, content := range []string{"first", "second, longer"} {
				if err := tc.write(path, []byte(content)); err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(path); err != nil || string(b) != content {
					t.Fatalf("read back %q, %v; want %q", b, err, content)
				}
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, %v; want 0600", fi.Mode(), err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("dir holds %d entries, want only the file", len(ents))
			}
			// A directory that does not exist: an error, nothing created.
			if err := tc.write(filepath.Join(dir, "no", "f"), nil); err == nil {
				t.Error("write into a missing directory succeeded")
			}
			// A rename that fails (path is a non-empty directory) leaves no
			// temporary file behind.
			sub := filepath.Join(dir, "sub")
			if err := os.MkdirAll(filepath.Join(sub, "x"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := tc.write(sub, []byte("x")); err == nil {
				t.Error("replacing a non-empty directory succeeded")
			}
			for _, e := range must(os.ReadDir(dir)) {
				if IsTemp(e.Name()) {
					t.Errorf("temporary file %s left", e.Name())
				}
			}
		})
	}
}

func TestIsTemp(t *testing.T) {
	for name, want := range map[string]bool{
		".t-1.json.123.tmp": true,
		"t-1.json":          false,
		"t-1.tmp":           false,
		".hidden":           false,
	} {
		if got := IsTemp(name); got != want {
			t.Errorf("IsTemp(%q) = %v, want %v", name, got, want)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
