package e2e

import (
	"slices"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestDev_CrashRestart kills dcosd dev with SIGKILL while a task runs and
// starts it again on the same data dir: the agent, allocation and task are
// still there (the task re-adopted, same pid), a Watch from a revision
// taken before the crash replays exactly the events seen before it, and
// the event log goes on after the restart.
func TestDev_CrashRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dev := e.startDev("--resources", "cpus=2,mem=1Gi")
	op := e.op()
	rev0 := listAgents(t, op).GetRevision()
	w1 := e.watch(op, rev0)

	alloc := allocateOne(t, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.5, MemBytes: 64 * mi}})
	task := launch(t, op, sleepTask(alloc.GetId()))
	running := w1.waitFor(t, "RUNNING of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_RUNNING)).GetTask()
	e.notePID(running.GetPid())
	agentsBefore := listAgents(t, op).GetAgents()
	allocsBefore := listAllocations(t, op).GetAllocations()
	tasksBefore := listTasks(t, op).GetTasks()
	before := w1.snapshot()

	dev.kill()
	if !alive(int(running.GetPid())) {
		t.Fatalf("task pid %d died with dcosd; tasks must survive the agent", running.GetPid())
	}
	e.startDev("--resources", "cpus=2,mem=1Gi")
	op = e.op()

	if got := ids(listAgents(t, op).GetAgents(), (*pb.Agent).GetId); !slices.Equal(got, ids(agentsBefore, (*pb.Agent).GetId)) {
		t.Errorf("agents after restart = %v, want %v", got, ids(agentsBefore, (*pb.Agent).GetId))
	}
	allocsAfter := listAllocations(t, op).GetAllocations()
	if len(allocsAfter) != 1 || len(allocsBefore) != 1 || !sameAllocation(allocsAfter[0], allocsBefore[0]) {
		t.Errorf("allocations after restart = %v, want %v", allocsAfter, allocsBefore)
	}
	// The task is re-adopted: same id, same pid, RUNNING.
	eventually(t, "task re-adopted after restart", func() (bool, string) {
		ts := listTasks(t, op).GetTasks()
		return len(ts) == 1 && len(tasksBefore) == 1 && ts[0].GetId() == tasksBefore[0].GetId() &&
			ts[0].GetPid() == running.GetPid() && ts[0].GetState() == pb.TaskState_TASK_STATE_RUNNING, sprint(ts)
	})
	if !alive(int(running.GetPid())) {
		t.Fatalf("task pid %d died across the restart", running.GetPid())
	}

	// Replay from before the crash: the same events, in the same order,
	// then new ones.
	w2 := e.watch(op, rev0)
	last := before[len(before)-1].GetRevision()
	w2.waitFor(t, "replay through revision "+sprint(last), func(ev *pb.Event) bool { return ev.GetRevision() >= last })
	revoke(t, op, alloc.GetId())
	revoked := w2.waitFor(t, "ALLOCATION_REVOKED of "+alloc.GetId(), allocEvent(alloc.GetId(), pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED))
	if revoked.GetRevision() <= last {
		t.Errorf("ALLOCATION_REVOKED after the restart has revision %d, not after %d", revoked.GetRevision(), last)
	}
	after := w2.snapshot()
	if len(after) < len(before) {
		t.Fatalf("replay has %d events, fewer than the %d seen before the crash:\nbefore:\n%s\nafter:\n%s", len(after), len(before), formatEvents(before), formatEvents(after))
	}
	for i, ev := range before {
		if eventString(after[i]) != eventString(ev) {
			t.Fatalf("replay differs at event %d: got %s, want %s\nbefore:\n%s\nafter:\n%s", i, eventString(after[i]), eventString(ev), formatEvents(before), formatEvents(after))
		}
	}
	for i, ev := range after {
		if ev.GetRevision() <= rev0 || (i > 0 && ev.GetRevision() < after[i-1].GetRevision()) {
			t.Fatalf("event %d (%s) out of order after revision %d:\n%s", i, eventString(ev), rev0, formatEvents(after))
		}
	}
	eventually(t, "task process gone after revoke", func() (bool, string) {
		return !alive(int(running.GetPid())), "still alive"
	})
}

// ids maps xs to their ids.
func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

// sameAllocation compares what a restart must keep of an allocation.
func sameAllocation(a, b *pb.Allocation) bool {
	return a.GetId() == b.GetId() && a.GetState() == b.GetState() && a.GetAgentId() == b.GetAgentId() &&
		a.GetOwner() == b.GetOwner() && a.GetResources().GetCpus() == b.GetResources().GetCpus() &&
		a.GetResources().GetMemBytes() == b.GetResources().GetMemBytes()
}
