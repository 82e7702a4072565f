//go:build linux

package cgroups

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// TestNew_unprivileged re-runs this test binary as nobody: New must refuse
// with an error wrapping contract.ErrNotSupported that says why, so the
// agent can warn once and run tasks without isolation.
func TestNew_unprivileged(t *testing.T) {
	skipUnlessCgroups(t)
	dir, err := os.MkdirTemp("", "dcos-isolator-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "cgroups.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestUnprivilegedHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "DCOS_ISOLATOR_UNPRIVILEGED=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	if err != nil {
		t.Fatalf("helper as nobody: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestUnprivilegedHelper") {
		t.Fatal("helper did not run")
	}
}

// TestUnprivilegedHelper runs only inside TestNew_unprivileged.
func TestUnprivilegedHelper(t *testing.T) {
	if os.Getenv("DCOS_ISOLATOR_UNPRIVILEGED") != "1" {
		t.Skip("helper for TestNew_unprivileged")
	}
	if os.Geteuid() == 0 {
		t.Fatal("helper runs as root")
	}
	i, err := New(Config{})
	if err == nil {
		t.Fatalf("New succeeded without privileges (parent %s)", i.parent)
	}
	t.Logf("New: %v", err)
	if !errors.Is(err, contract.ErrNotSupported) {
		t.Errorf("New: %v, want ErrNotSupported", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "not root: cannot create cgroups in /") {
		t.Errorf("message %q does not say why", msg)
	}
}
