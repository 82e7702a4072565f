package kernel_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestValidateRoleSet_CPUSet: a bad cpuset is InvalidArgument naming the
// field cpuset; a good one (or "", which clears it) passes.
func TestValidateRoleSet_CPUSet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, cpuset string
		ok           bool
	}{
		{"range", "1-3,5", true},
		{"single", "0", true},
		{"clear", "", true},
		{"unordered", "5,1-2", true},
		{"letters", "a-b", false},
		{"reversed", "3-1", false},
		{"empty item", "1,,2", false},
		{"negative", "-1", false},
		{"too high", "8192", false},
		{"stride", "0-7:2/4", false},
		{"too long", strings.Repeat("1,", 600) + "1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := kernel.ValidateRoleSet(&pb.RoleSetRequest{Name: "batch", Cpuset: ptr(tc.cpuset)})
			if tc.ok {
				if err != nil {
					t.Fatalf("cpuset %q: %v", tc.cpuset, err)
				}
				return
			}
			var ke *kernel.Error
			if !errors.As(err, &ke) || ke.Code != kernel.InvalidArgument || !strings.HasPrefix(ke.Msg, "cpuset: ") {
				t.Fatalf("cpuset %q: got %v, want InvalidArgument naming cpuset", tc.cpuset, err)
			}
		})
	}
}

// TestKernel_RoleCPUSet: RoleSet stores a role's cpuset canonical, RoleList
// and the answer show it (always set, "" when never set), Launch copies it
// into the Task, "" clears it, a weight alone keeps it, and it survives a
// restart; tasks launched earlier keep theirs.
func TestKernel_RoleCPUSet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, stop := e.start(t)
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
	cpusets := func(when string, k *kernel.Kernel, want map[string]string) {
		t.Helper()
		for role, c := range want {
			r := roleOf(t, k, ops, role)
			if r.Cpuset == nil || r.GetCpuset() != c {
				t.Errorf("%s: role %s cpuset %v, want %q", when, role, r.Cpuset, c)
			}
		}
	}

	web := launch(k, "web")
	if c := web.GetCpuset(); c != "" {
		t.Errorf("task of role web (never set): cpuset %q, want \"\"", c)
	}
	if _, err := k.RoleSet(ctx, fwA, &pb.RoleSetRequest{Name: "batch", Cpuset: ptr("1")}); err == nil {
		t.Error("RoleSet by a framework: no error")
	}
	set, err := k.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "batch", Cpuset: ptr("3,1-2")})
	if err != nil {
		t.Fatal(err)
	}
	if got := set.GetRole().GetCpuset(); got != "1-3" {
		t.Fatalf("RoleSet answered cpuset %q, want canonical \"1-3\"", got)
	}
	if _, err := k.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "batch", Weight: ptr(2.0)}); err != nil {
		t.Fatal(err)
	}
	cpusets("after RoleSet", k, map[string]string{"batch": "1-3", "web": ""})
	batch := launch(k, "batch")
	if c := batch.GetCpuset(); c != "1-3" {
		t.Errorf("task of role batch: cpuset %q, want 1-3", c)
	}
	if _, err := k.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "web", Cpuset: ptr("0")}); err != nil {
		t.Fatal(err)
	}
	for _, tk := range k.ListTasks(ctx, ops, &pb.ListTasksRequest{}).GetTasks() {
		if tk.GetId() == web.GetId() && tk.GetCpuset() != "" {
			t.Errorf("web task launched before RoleSet: cpuset %q, want unchanged \"\"", tk.GetCpuset())
		}
	}
	stop()

	k2, stop2 := e.start(t)
	defer stop2()
	cpusets("after restart", k2, map[string]string{"batch": "1-3", "web": "0"})
	if r := roleOf(t, k2, ops, "batch"); r.GetWeight() != 2 {
		t.Errorf("after restart: batch weight %v, want 2", r.GetWeight())
	}
	if _, err := k2.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "batch", Cpuset: ptr("")}); err != nil {
		t.Fatal(err)
	}
	cpusets("after clearing", k2, map[string]string{"batch": ""})
	if c := launch(k2, "batch").GetCpuset(); c != "" {
		t.Errorf("task of role batch after clearing: cpuset %q, want \"\"", c)
	}
}
