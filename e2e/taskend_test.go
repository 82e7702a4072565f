package e2e

import (
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestDev_TaskEnds checks how tasks end on dcosd dev: exit 0 is FINISHED,
// a non-zero exit or a missing program is FAILED with the exit code,
// revoking a task kills it and keeps its allocation, and revokes are
// idempotent.
func TestDev_TaskEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDev("--resources", "cpus=2,mem=1Gi")
	op := e.op()
	w := e.watch(op, listAgents(t, op).GetRevision())

	tests := []struct {
		name     string
		command  string
		args     []string
		want     pb.TaskState
		exitCode int32 // checked when >= 0
	}{
		{"exit 0", "true", nil, pb.TaskState_TASK_STATE_FINISHED, 0},
		{"exit 3", "sh", []string{"-c", "exit 3"}, pb.TaskState_TASK_STATE_FAILED, 3},
		{"no such program", "/nonexistent/e2e-program", nil, pb.TaskState_TASK_STATE_FAILED, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			alloc := allocateOne(t, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}})
			task := launch(t, op, &pb.LaunchRequest{AllocationId: alloc.GetId(), Command: tt.command, Args: tt.args})
			ev := w.waitFor(t, tt.want.String()+" of "+task.GetId(), taskState(task.GetId(), tt.want)).GetTask()
			if tt.exitCode >= 0 && ev.GetExitCode() != tt.exitCode {
				t.Errorf("exit code %d, want %d (reason %q)", ev.GetExitCode(), tt.exitCode, ev.GetReason())
			}
			if tt.want != pb.TaskState_TASK_STATE_FINISHED && ev.GetReason() == "" {
				t.Errorf("%v task has no reason", tt.want)
			}
			revoke(t, op, alloc.GetId())
		})
	}

	t.Run("revoke a task", func(t *testing.T) {
		alloc := allocateOne(t, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.5, MemBytes: 64 * mi}})
		task := launch(t, op, sleepTask(alloc.GetId()))
		running := w.waitFor(t, "RUNNING of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_RUNNING)).GetTask()
		e.notePID(running.GetPid())
		revoke(t, op, task.GetId())
		w.waitFor(t, "KILLED of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_KILLED))
		eventually(t, "task process gone", func() (bool, string) { return !alive(int(running.GetPid())), "alive" })
		revoke(t, op, task.GetId()) // idempotent

		allocs := listAllocations(t, op).GetAllocations()
		if len(allocs) != 1 || allocs[0].GetId() != alloc.GetId() || allocs[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
			t.Errorf("allocations after revoking the task = %v, want %s still GRANTED", allocs, alloc.GetId())
		}
		if a := listAgents(t, op).GetAgents(); len(a) != 1 || a[0].GetAllocated().GetMemBytes() != 64*mi {
			t.Errorf("agents = %v, want the allocation's 64Mi still allocated", a)
		}
		// The allocation is still usable.
		again := launch(t, op, &pb.LaunchRequest{AllocationId: alloc.GetId(), Command: "true"})
		w.waitFor(t, "FINISHED of "+again.GetId(), taskState(again.GetId(), pb.TaskState_TASK_STATE_FINISHED))

		revoke(t, op, alloc.GetId())
		revoke(t, op, alloc.GetId()) // idempotent
	})
}
