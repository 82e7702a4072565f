package kernel_test

import (
	"context"
	"testing"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestKernel_RoleCPUClass: a role's CPU class comes from the start-up
// default or RoleSet (which wins, and survives a restart), RoleList shows
// it, and Launch copies the class of the allocation's role into the Task;
// a later RoleSet changes only the tasks launched after it.
func TestKernel_RoleCPUClass(t *testing.T) {
	t.Parallel()
	const (
		normal = pb.CpuClass_CPU_CLASS_NORMAL
		idle   = pb.CpuClass_CPU_CLASS_IDLE
	)
	e := newEnv(t)
	flags := kernel.Config{Roles: map[string]kernel.RoleConfig{"batch": {CPUClass: idle}}}
	k, stop := e.startWith(t, flags)
	ctx := context.Background()
	register(t, k, 8, 8<<30)
	launch := func(k *kernel.Kernel, role string) *pb.Task {
		t.Helper()
		a, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Role: role, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
		if err != nil {
			t.Fatal(err)
		}
		lr, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: a.GetAllocations()[0].GetId(), Command: "x"})
		if err != nil {
			t.Fatal(err)
		}
		return lr.GetTask()
	}
	classes := func(when string, k *kernel.Kernel, want map[string]pb.CpuClass) {
		t.Helper()
		for role, c := range want {
			r := roleOf(t, k, ops, role)
			if r.CpuClass == nil || r.GetCpuClass() != c {
				t.Errorf("%s: role %s cpu_class %v, want %v", when, role, r.CpuClass, c)
			}
		}
	}

	if c := launch(k, "batch").GetCpuClass(); c != idle {
		t.Errorf("task of role batch (start-up idle): cpu_class %v, want IDLE", c)
	}
	if c := launch(k, "web").GetCpuClass(); c != normal {
		t.Errorf("task of role web (never set): cpu_class %v, want NORMAL", c)
	}
	classes("start-up", k, map[string]pb.CpuClass{"batch": idle, "web": normal})

	set, err := k.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "web", CpuClass: ptr(idle)})
	if err != nil {
		t.Fatal(err)
	}
	if r := set.GetRole(); r.GetCpuClass() != idle || r.GetWeight() != 1 || r.GetUsage().GetCpus() != 1 {
		t.Fatalf("RoleSet answered %v; want cpu class IDLE, weight 1, usage 1 cpu", r)
	}
	// An explicit NORMAL overrides the start-up IDLE.
	if _, err := k.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "batch", CpuClass: ptr(normal)}); err != nil {
		t.Fatal(err)
	}
	// Weight alone keeps the class.
	if _, err := k.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "web", Weight: ptr(2.0)}); err != nil {
		t.Fatal(err)
	}
	classes("after RoleSet", k, map[string]pb.CpuClass{"batch": normal, "web": idle})
	before := k.ListTasks(ctx, ops, &pb.ListTasksRequest{}).GetTasks()
	if c := launch(k, "web").GetCpuClass(); c != idle {
		t.Errorf("task of role web launched after RoleSet idle: cpu_class %v, want IDLE", c)
	}
	for _, tk := range k.ListTasks(ctx, ops, &pb.ListTasksRequest{}).GetTasks() {
		for _, old := range before {
			if old.GetId() == tk.GetId() && old.GetCpuClass() != tk.GetCpuClass() {
				t.Errorf("task %s launched before RoleSet: cpu_class %v → %v, want unchanged", tk.GetId(), old.GetCpuClass(), tk.GetCpuClass())
			}
		}
	}
	stop()

	k2, _ := e.startWith(t, flags)
	classes("after restart", k2, map[string]pb.CpuClass{"batch": normal, "web": idle})
	if r := roleOf(t, k2, ops, "web"); r.GetWeight() != 2 {
		t.Errorf("after restart: web weight %v, want 2", r.GetWeight())
	}
	if c := launch(k2, "batch").GetCpuClass(); c != normal {
		t.Errorf("after restart: task of role batch cpu_class %v, want NORMAL (RoleSet wins over the start-up default)", c)
	}
}
