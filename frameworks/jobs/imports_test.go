package jobs

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports checks that jobs is built on the public SDK only: no
// package it imports (directly or not) is under kernel/, agent/ or an
// internal/ folder of this module.
func TestImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/dcos-kernel/dcos/"
	for _, p := range strings.Fields(string(out)) {
		rest, ours := strings.CutPrefix(p, mod)
		if !ours {
			continue
		}
		if strings.HasPrefix(rest, "kernel") || strings.HasPrefix(rest, "agent") || strings.HasPrefix(rest, "internal/") || strings.Contains(rest, "/internal/") {
			t.Errorf("frameworks/jobs imports %s", p)
		}
	}
}
