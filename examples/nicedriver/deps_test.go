package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	sdk     = "github.com/dcos-kernel/dcos/sdk/plugin"
	harness = "github.com/dcos-kernel/dcos/sdk/plugin/plugintest"
)

// goList runs `go list` with args and returns its output's lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.Fields(string(out))
}

// TestDeps: a vendor's driver needs sdk/plugin and the standard library,
// nothing else of dcos. The binary's dependencies are the SDK's and the
// standard library's; its tests may also use the SDK's harness.
func TestDeps(t *testing.T) {
	const nonStd = `{{if not .Standard}}{{.ImportPath}}{{end}}`
	allowed := map[string]bool{"github.com/dcos-kernel/dcos/examples/nicedriver": true}
	for _, p := range goList(t, "-deps", "-f", nonStd, sdk) {
		allowed[p] = true
	}
	for _, p := range goList(t, "-deps", "-f", nonStd, ".") {
		if !allowed[p] {
			t.Errorf("nicedriver depends on %s, which sdk/plugin does not: import only sdk/plugin and the standard library", p)
		}
	}
	// Its own imports: the standard library and the SDK (not, e.g.,
	// plugins/contract, which the SDK itself imports); for its tests also
	// the SDK's harness.
	for _, p := range goList(t, "-f", `{{join .Imports "\n"}}`, ".") {
		if !isStd(p) && p != sdk {
			t.Errorf("nicedriver imports %s: import only sdk/plugin and the standard library", p)
		}
	}
	for _, p := range goList(t, "-f", `{{join .TestImports "\n"}}`, ".") {
		if !isStd(p) && p != sdk && p != harness {
			t.Errorf("nicedriver's tests import %s: use only sdk/plugin, sdk/plugin/plugintest and the standard library", p)
		}
	}
}

// isStd reports whether the import path p is of the standard library: its
// first element has no dot.
func isStd(p string) bool { return !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") }

// TestSize: a driver that wraps a process is at most 150 lines on the SDK's
// executor (issue 14), counting every line of every non-test .go file.
func TestSize(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines += bytes.Count(b, []byte("\n"))
	}
	if lines == 0 || lines > 150 {
		t.Errorf("the driver is %d lines, want at most 150", lines)
	}
}
