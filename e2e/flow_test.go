package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestDev_AllocateLaunchRevoke is the whole life of a task on dcosd dev:
// allocate with dcosctl, launch, see it RUNNING with a pid, revoke with
// dcosctl, see the process group gone, the resources free again and the
// task's output in its sandbox.
func TestDev_AllocateLaunchRevoke(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDev("--resources", "cpus=2,mem=1Gi")
	op := e.op()
	rev0 := listAgents(t, op).GetRevision()
	w := e.watch(op, rev0)

	var res struct {
		Allocations []struct{ ID, State, AgentID string }
	}
	out := e.mustCtl("alloc", "--cpus", "0.5", "--mem", "64Mi", "-o", "json")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("dcosctl alloc -o json: %v\n%s", err, out)
	}
	if len(res.Allocations) != 1 || res.Allocations[0].State != "ALLOCATION_STATE_GRANTED" || res.Allocations[0].AgentID == "" {
		t.Fatalf("dcosctl alloc -o json = %s, want one GRANTED allocation on an agent", out)
	}
	allocID := res.Allocations[0].ID
	agents := listAgents(t, op).GetAgents()
	if len(agents) != 1 || agents[0].GetAllocated().GetCpus() != 0.5 || agents[0].GetAllocated().GetMemBytes() != 64*mi {
		t.Fatalf("agents after alloc = %v, want one with 0.5 cpus and 64Mi allocated", agents)
	}

	task := launch(t, op, sleepTask(allocID))
	running := w.waitFor(t, "TASK_STATE RUNNING of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_RUNNING)).GetTask()
	pid := int(running.GetPid())
	e.notePID(running.GetPid())
	if pid <= 0 {
		t.Fatalf("RUNNING event of %s has pid %d", task.GetId(), pid)
	}
	if !alive(pid) {
		t.Fatalf("task pid %d is not a live process", pid)
	}
	if g, err := syscall.Getpgid(pid); err != nil || g != pid {
		t.Errorf("task pid %d: process group %d (%v), want its own group", pid, g, err)
	}
	if running.GetSandbox() == "" {
		t.Fatalf("RUNNING event of %s has no sandbox", task.GetId())
	}
	// `sleep 300` is a child of sh: wait until it exists, so that the
	// check below proves the whole group is killed, not only its leader.
	eventually(t, "sh and sleep in the task's process group", func() (bool, string) {
		m := groupMembers(pid)
		return len(m) >= 2, "members " + sprint(m)
	})

	e.mustCtl("revoke", allocID)
	w.waitFor(t, "ALLOCATION_REVOKED of "+allocID, allocEvent(allocID, pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED))
	eventually(t, "task process gone (ESRCH)", func() (bool, string) {
		err := syscall.Kill(pid, 0)
		return errors.Is(err, syscall.ESRCH), "kill(pid, 0) = " + sprint(err)
	})
	eventually(t, "task's process group gone", func() (bool, string) {
		m := groupMembers(pid)
		return len(m) == 0, "members " + sprint(m)
	})
	eventually(t, "agent's allocated resources back to 0", func() (bool, string) {
		a := listAgents(t, op).GetAgents()
		return len(a) == 1 && a[0].GetAllocated().GetCpus() == 0 && a[0].GetAllocated().GetMemBytes() == 0, sprint(a)
	})
	b, err := os.ReadFile(filepath.Join(running.GetSandbox(), "stdout"))
	if err != nil || !strings.Contains(string(b), "hi") {
		t.Errorf("sandbox stdout = %q (%v), want it to contain \"hi\"", b, err)
	}
}
