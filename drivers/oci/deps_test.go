package oci

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps: the oci driver is written only against sdk/plugin, as a
// vendor's driver would be: of dcos's packages it (and its internal
// packages) import only sdk/plugin; third-party libraries (the registry
// client) are allowed.
func TestDeps(t *testing.T) {
	const self = "github.com/dcos-kernel/dcos/drivers/oci"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{"\n"}}{{join .Imports "\n"}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, p := range strings.Fields(string(out)) {
		checked++
		if !strings.HasPrefix(p, "github.com/dcos-kernel/dcos/") || p == self || strings.HasPrefix(p, self+"/") {
			continue
		}
		if p != "github.com/dcos-kernel/dcos/sdk/plugin" {
			t.Errorf("drivers/oci imports %s: of dcos, import only sdk/plugin", p)
		}
	}
	if checked < 3 {
		t.Fatalf("go list listed %d packages and imports; want the driver's", checked)
	}
}
