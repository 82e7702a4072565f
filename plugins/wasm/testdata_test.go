package wasm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTestdata_Assembled fails when a committed testdata/*.wasm differs
// from wat2wasm of its .wat (regenerate with testdata/regen.sh). CI runs
// testdata/regen.sh -check, which needs wat2wasm; this test skips without
// it.
func TestTestdata_Assembled(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm not installed (Debian package wabt)")
	}
	wats, err := filepath.Glob("testdata/*.wat")
	if err != nil || len(wats) == 0 {
		t.Fatalf("no .wat files: %v", err)
	}
	dir := t.TempDir()
	for _, wat := range wats {
		name := strings.TrimSuffix(filepath.Base(wat), ".wat") + ".wasm"
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name)
			if b, err := exec.Command("wat2wasm", wat, "-o", out).CombinedOutput(); err != nil {
				t.Fatalf("wat2wasm %s: %v\n%s", wat, err, b)
			}
			if !bytes.Equal(readFile(t, out), readFile(t, filepath.Join("testdata", name))) {
				t.Fatalf("testdata/%s differs from wat2wasm %s: run plugins/wasm/testdata/regen.sh", name, wat)
			}
		})
	}
	// And nothing committed lacks its source.
	wasms, _ := filepath.Glob("testdata/*.wasm")
	for _, w := range wasms {
		if _, err := os.Stat(strings.TrimSuffix(w, ".wasm") + ".wat"); err != nil {
			t.Errorf("%s has no .wat source", w)
		}
	}
}
