package e2e

import (
	"errors"
	"slices"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestPrincipals_FrameworksAreIsolated checks the token roles over the
// wire: a framework sees and touches only its own allocations and tasks,
// the operator sees all, an agent may not allocate, and a call without a
// (known) token is Unauthenticated.
func TestPrincipals_FrameworksAreIsolated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opTok, aTok, bTok, agentTok := newToken(), newToken(), newToken(), newToken()
	e.writeTokens(e.path("data", "tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: aTok, Name: "fw-a", Role: "framework"},
		tokenEntry{Token: bTok, Name: "fw-b", Role: "framework"},
		tokenEntry{Token: agentTok, Name: "node", Role: "agent"},
	)
	e.startDev("--resources", "cpus=2,mem=1Gi")
	if e.opToken != opTok {
		t.Fatalf("dcosd dev wrote operator token %q to the client config, want the one of the tokens file", e.opToken)
	}
	op, fwA, fwB := e.op(), e.client(aTok), e.client(bTok)
	rev0 := listAgents(t, op).GetRevision()
	wB := e.watch(fwB, rev0)

	allocA := allocateOne(t, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.25, MemBytes: 32 * mi}})
	if allocA.GetOwner() != "fw-a" {
		t.Errorf("fw-a's allocation has owner %q", allocA.GetOwner())
	}
	taskA := launch(t, fwA, sleepTask(allocA.GetId()))
	allocB := allocateOne(t, fwB, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.25, MemBytes: 32 * mi}})

	// fw-a sees its own (the control for the checks below); fw-b only its own.
	if got := ids(listTasks(t, fwA).GetTasks(), (*pb.Task).GetId); !slices.Equal(got, []string{taskA.GetId()}) {
		t.Errorf("fw-a's ListTasks = %v, want its own %s", got, taskA.GetId())
	}
	if got := ids(listAllocations(t, fwB).GetAllocations(), (*pb.Allocation).GetId); !slices.Equal(got, []string{allocB.GetId()}) {
		t.Errorf("fw-b's ListAllocations = %v, want only its own %s", got, allocB.GetId())
	}
	for _, tk := range listTasks(t, fwB).GetTasks() {
		if tk.GetOwner() != "fw-b" {
			t.Errorf("fw-b's ListTasks shows %s of %s", tk.GetId(), tk.GetOwner())
		}
	}
	// fw-b's watch saw its own allocation, and nothing of fw-a.
	wB.waitFor(t, "fw-b's ALLOCATION_GRANTED", allocEvent(allocB.GetId(), pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED))
	for _, ev := range wB.snapshot() {
		if ev.GetAllocation().GetOwner() == "fw-a" || ev.GetTask().GetOwner() == "fw-a" {
			t.Errorf("fw-b's Watch shows fw-a's event %s", eventString(ev))
		}
	}

	// fw-b may not touch fw-a's objects.
	calls := []struct {
		name string
		call func() error
		want connect.Code
	}{
		{"fw-b launches in fw-a's allocation", func() error {
			_, err := fwB.Launch(ctx(t), connect.NewRequest(&pb.LaunchRequest{AllocationId: allocA.GetId(), Command: "true"}))
			return err
		}, connect.CodePermissionDenied},
		{"fw-b revokes fw-a's allocation", func() error {
			_, err := fwB.Revoke(ctx(t), connect.NewRequest(&pb.RevokeRequest{Id: allocA.GetId()}))
			return err
		}, connect.CodePermissionDenied},
		{"fw-b revokes fw-a's task", func() error {
			_, err := fwB.Revoke(ctx(t), connect.NewRequest(&pb.RevokeRequest{Id: taskA.GetId()}))
			return err
		}, connect.CodePermissionDenied},
		{"no token", func() error {
			_, err := e.client("").ListAllocations(ctx(t), connect.NewRequest(&pb.ListAllocationsRequest{}))
			return err
		}, connect.CodeUnauthenticated},
		{"unknown token", func() error {
			_, err := e.client(newToken()).Allocate(ctx(t), connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: mi}}))
			return err
		}, connect.CodeUnauthenticated},
		{"agent allocates", func() error {
			_, err := e.client(agentTok).Allocate(ctx(t), connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: mi}}))
			return err
		}, connect.CodePermissionDenied},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if code := connect.CodeOf(err); code != c.want {
				t.Errorf("err = %v (code %v), want %v", err, code, c.want)
			}
			var ce *connect.Error
			if errors.As(err, &ce) && ce.Message() == "" {
				t.Errorf("error %v has no message", err)
			}
		})
	}

	// The operator sees both, and fw-a's objects are untouched.
	got := ids(listAllocations(t, op).GetAllocations(), (*pb.Allocation).GetId)
	slices.Sort(got)
	want := []string{allocA.GetId(), allocB.GetId()}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("operator's ListAllocations = %v, want %v", got, want)
	}
	eventually(t, "operator sees fw-a's task RUNNING", func() (bool, string) {
		ts := listTasks(t, op).GetTasks()
		for _, tk := range ts {
			if tk.GetId() == taskA.GetId() && tk.GetOwner() == "fw-a" && tk.GetState() == pb.TaskState_TASK_STATE_RUNNING {
				e.notePID(tk.GetPid())
				return true, ""
			}
		}
		return false, sprint(ts)
	})
}
