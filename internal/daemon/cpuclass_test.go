package daemon

import (
	"testing"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestParseRoleCPUClasses(t *testing.T) {
	roles := map[string]kernel.RoleConfig{"batch": {Weight: 0.5}}
	if err := parseRoleCPUClasses(roles, []string{"batch=idle", "web=NORMAL", "ml=CPU_CLASS_IDLE"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]kernel.RoleConfig{
		"batch": {Weight: 0.5, CPUClass: pb.CpuClass_CPU_CLASS_IDLE},
		"web":   {CPUClass: pb.CpuClass_CPU_CLASS_NORMAL},
		"ml":    {CPUClass: pb.CpuClass_CPU_CLASS_IDLE},
	}
	for n, w := range want {
		if roles[n] != w {
			t.Errorf("role %s: %+v, want %+v", n, roles[n], w)
		}
	}
	for _, bad := range []string{"batch", "=idle", "batch=", "batch=low", "batch=class_idle"} {
		if err := parseRoleCPUClasses(map[string]kernel.RoleConfig{}, []string{bad}); err == nil {
			t.Errorf("--role-cpu-class %q: want an error", bad)
		}
	}
}
