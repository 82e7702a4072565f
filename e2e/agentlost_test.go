package e2e

import (
	"strings"
	"syscall"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestKernelAndAgents_AgentLost runs dcosd kernel and dcosd agent as
// separate processes: the allocate/launch/RUNNING flow works across them,
// and an agent that falls silent (stopped, or killed) is marked LOST with
// its task LOST and its allocation revoked. The stopped agent, once
// continued, registers again and kills the task it lost.
func TestKernelAndAgents_AgentLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// One token per agent: a token is bound to the agent it registers.
	opTok, stoppedTok, killedTok := newToken(), newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: stoppedTok, Name: "stopped-agent", Role: "agent"},
		tokenEntry{Token: killedTok, Name: "killed-agent", Role: "agent"},
	)
	e.startKernel(tokens, opTok, "--heartbeat-timeout", "2s", "--heartbeat-interval", "200ms")
	op := e.op()

	for _, tc := range []struct {
		name     string
		signal   syscall.Signal
		agentTok string
	}{
		{"stopped agent", syscall.SIGSTOP, stoppedTok},
		{"killed agent", syscall.SIGKILL, killedTok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-")
			e := e.in(t)
			ag, agentID := e.startAgent(name, tc.agentTok, "--resources", "cpus=2,mem=1Gi")
			w := e.watch(op, listAgents(t, op).GetRevision())

			// Pin the allocation to this agent by its label.
			alloc := allocateOne(t, op, &pb.AllocateRequest{
				Resources:   &pb.Resources{Cpus: 0.5, MemBytes: 64 * mi},
				Constraints: []*pb.Constraint{{Label: "e2e", Op: pb.Constraint_OP_EQUALS, Values: []string{name}}},
			})
			if alloc.GetAgentId() != agentID {
				t.Fatalf("allocation on %s, want %s (constraint e2e=%s)", alloc.GetAgentId(), agentID, name)
			}
			task := launch(t, op, sleepTask(alloc.GetId()))
			running := w.waitFor(t, "RUNNING of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_RUNNING)).GetTask()
			e.notePID(running.GetPid())
			if running.GetAgentId() != agentID || !alive(int(running.GetPid())) {
				t.Fatalf("RUNNING task %v: want a live pid on %s", running, agentID)
			}

			ag.signal(tc.signal)

			w.waitFor(t, "AGENT_LOST of "+agentID, agentEvent(agentID, pb.EventKind_EVENT_KIND_AGENT_LOST))
			lost := w.waitFor(t, "TASK_STATE LOST of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_LOST))
			revoked := w.waitFor(t, "ALLOCATION_REVOKED of "+alloc.GetId(), allocEvent(alloc.GetId(), pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED))
			if !strings.HasPrefix(revoked.GetAllocation().GetRevokeReason(), "agent lost") && !strings.HasPrefix(revoked.GetReason(), "agent lost") {
				t.Errorf("ALLOCATION_REVOKED reason = %q / %q, want it to start with \"agent lost\"", revoked.GetAllocation().GetRevokeReason(), revoked.GetReason())
			}
			if lost.GetTask().GetReason() == "" {
				t.Errorf("LOST task has no reason: %v", lost.GetTask())
			}

			for _, a := range listAgents(t, op).GetAgents() {
				if a.GetId() == agentID && a.GetState() != pb.AgentState_AGENT_STATE_LOST {
					t.Errorf("ListAgents: %s is %v, want LOST", agentID, a.GetState())
				}
			}
			for _, a := range listAllocations(t, op).GetAllocations() {
				if a.GetId() == alloc.GetId() {
					t.Errorf("ListAllocations still lists the revoked allocation %v", a)
				}
			}
			for _, tk := range listTasks(t, op).GetTasks() {
				if tk.GetId() == task.GetId() && tk.GetState() != pb.TaskState_TASK_STATE_LOST {
					t.Errorf("ListTasks: %s is %v, want LOST or gone", tk.GetId(), tk.GetState())
				}
			}

			if tc.signal != syscall.SIGSTOP {
				return
			}
			// The stopped agent comes back: it re-registers, and kills the
			// task the kernel no longer expects it to run.
			ag.signal(syscall.SIGCONT)
			w.waitFor(t, "AGENT_REGISTERED of "+agentID+" after SIGCONT", func(ev *pb.Event) bool {
				return agentEvent(agentID, pb.EventKind_EVENT_KIND_AGENT_REGISTERED)(ev) && ev.GetRevision() > revoked.GetRevision()
			})
			eventually(t, "the lost task's process killed by its returning agent", func() (bool, string) {
				return !alive(int(running.GetPid())), "still alive"
			})
			for _, a := range listAgents(t, op).GetAgents() {
				if a.GetId() == agentID && a.GetState() != pb.AgentState_AGENT_STATE_UP {
					t.Errorf("ListAgents: %s is %v after SIGCONT, want UP", agentID, a.GetState())
				}
			}
		})
	}
}

// TestKernelAndAgents_AgentRestart stops an agent with SIGTERM while its
// task runs and starts it again on the same data dir: the task keeps
// running, is re-adopted (same id and pid, never LOST), and a revoke still
// kills it. The heartbeat timeout is long so that the restart never looks
// like a loss.
func TestKernelAndAgents_AgentRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opTok, agentTok := newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: agentTok, Name: "agents", Role: "agent"},
	)
	e.startKernel(tokens, opTok, "--heartbeat-timeout", "5m")
	op := e.op()
	ag, agentID := e.startAgent("node", agentTok, "--resources", "cpus=2,mem=1Gi")
	w := e.watch(op, listAgents(t, op).GetRevision())

	alloc := allocateOne(t, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.5, MemBytes: 64 * mi}})
	task := launch(t, op, sleepTask(alloc.GetId()))
	running := w.waitFor(t, "RUNNING of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_RUNNING)).GetTask()
	e.notePID(running.GetPid())

	if !ag.stop(waitTimeout) {
		t.Fatalf("agent did not stop on SIGTERM")
	}
	if !alive(int(running.GetPid())) {
		t.Fatalf("task pid %d died with its agent; tasks must survive an agent restart", running.GetPid())
	}
	regRev := listAgents(t, op).GetRevision()
	_, id2 := e.startAgent("node", agentTok, "--resources", "cpus=2,mem=1Gi")
	if id2 != agentID {
		t.Errorf("restarted agent is %s, want %s (its id is in its data dir)", id2, agentID)
	}
	w.waitFor(t, "AGENT_REGISTERED of the restarted agent", func(ev *pb.Event) bool {
		return agentEvent(agentID, pb.EventKind_EVENT_KIND_AGENT_REGISTERED)(ev) && ev.GetRevision() > regRev
	})
	ts := listTasks(t, op).GetTasks()
	if len(ts) != 1 || ts[0].GetId() != task.GetId() || ts[0].GetPid() != running.GetPid() || ts[0].GetState() != pb.TaskState_TASK_STATE_RUNNING {
		t.Errorf("tasks after the agent restart = %v, want %s RUNNING with pid %d", ts, task.GetId(), running.GetPid())
	}
	if !alive(int(running.GetPid())) {
		t.Fatalf("task pid %d died across the agent restart", running.GetPid())
	}

	revoke(t, op, alloc.GetId())
	w.waitFor(t, "KILLED of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_KILLED))
	eventually(t, "re-adopted task's process killed by revoke", func() (bool, string) {
		return !alive(int(running.GetPid())), "alive"
	})
	eventually(t, "re-adopted task's process group gone", func() (bool, string) {
		m := groupMembers(int(running.GetPid()))
		return len(m) == 0, "members " + sprint(m)
	})
	for _, ev := range w.snapshot() {
		if taskState(task.GetId(), pb.TaskState_TASK_STATE_LOST)(ev) {
			t.Errorf("task was LOST across a quick agent restart: %s", eventString(ev))
		}
	}
}
