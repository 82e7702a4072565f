package e2e

import (
	"strings"
	"testing"
	"time"
)

// roleRow returns role name's row of `dcosctl role ls` without its
// CPU-CLASS and CPUSET columns (NAME WEIGHT QUOTA USAGE PENDING), or nil.
func roleRow(t *testing.T, e *env, name string) []string {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(e.mustCtl("role", "ls")), "\n")[1:] {
		if f := strings.Fields(l); len(f) == 7 && f[0] == name {
			return append(f[:2:2], f[4:]...)
		}
	}
	return nil
}

// TestRoleQuota is issue 16's "a policy that over-commits a role's quota
// gets those placements refused, with the quota reason shown", on a real
// dcosd dev through dcosctl: dcosd starts with --role-quota capped:cpus=1,
// `dcosctl role set` raises it to 2, the active policy (firstfit.wasm, in
// WebAssembly text, ignores quotas) places all three 1-cpu instances, and
// the kernel grants two and keeps the third pending with the quota's
// reason, shown by `dcosctl alloc` and `dcosctl allocs`. Raising the quota
// to 3 places it; after a restart with the same flags the RoleSet still
// wins over --role-quota.
func TestRoleQuota(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	flags := []string{"--resources", "cpus=8,mem=8Gi", "--role-quota", "capped:cpus=1", "--role-weight", "capped=2"}
	dev := e.startDev(flags...)
	if got := roleRow(t, e, "capped"); strings.Join(got, " ") != "capped 2 cpus=1 - 0" {
		t.Fatalf("role ls at start: %q, want the flags' weight 2 and quota cpus=1", got)
	}
	out := e.mustCtl("role", "set", "capped", "--quota", "cpus=2")
	if !strings.Contains(out, "cpus=2") {
		t.Fatalf("role set answered %q", out)
	}
	e.mustCtl("policy", "load", testdata+"firstfit.wasm", "--name", "ignores-quotas")
	if got := activePolicy(t, e); got != "ignores-quotas" {
		t.Fatalf("active policy %q", got)
	}

	const reason = "role capped: quota cpus=2 reached"
	out = e.mustCtl("alloc", "--cpus", "1", "--mem", "64Mi", "--count", "3", "--role", "capped")
	if strings.Count(out, "GRANTED") != 2 || strings.Count(out, "PENDING") != 1 || !strings.Contains(out, "pending: "+reason) {
		t.Fatalf("dcosctl alloc printed:\n%s\nwant 2 granted, 1 pending with %q", out, reason)
	}
	if out := e.mustCtl("allocs"); !strings.Contains(out, reason) {
		t.Fatalf("dcosctl allocs does not show the quota reason:\n%s", out)
	}
	if got := roleRow(t, e, "capped"); strings.Join(got, " ") != "capped 2 cpus=2 cpus=2,mem=128Mi 1" {
		t.Fatalf("role ls: %q, want the role at its quota with one pending", got)
	}
	// Another role is not held by capped's quota.
	if out := e.mustCtl("alloc", "--cpus", "1", "--mem", "64Mi", "--role", "other"); !strings.Contains(out, "GRANTED") {
		t.Fatalf("role other's allocation:\n%s", out)
	}

	e.mustCtl("role", "set", "capped", "--quota", "cpus=3")
	e.eventually("the held instance placed under the raised quota", func() (bool, string) {
		got := roleRow(t, e, "capped")
		return strings.Join(got, " ") == "capped 2 cpus=3 cpus=3,mem=192Mi 0", strings.Join(got, " ")
	})

	if !dev.stop(10 * time.Second) {
		t.Fatal("dcosd dev did not stop")
	}
	e.startDev(flags...)
	if got := roleRow(t, e, "capped"); strings.Join(got, " ") != "capped 2 cpus=3 cpus=3,mem=192Mi 0" {
		t.Fatalf("role ls after a restart with --role-quota capped:cpus=1: %q, want the RoleSet's cpus=3", got)
	}
}
