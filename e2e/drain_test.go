package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	dinit "github.com/dcos-kernel/dcos/frameworks/init"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// drainSpec is a service of 3 instances, at most 2 per agent (e2e is the
// agent's name), with a command health check, replaced at full capacity
// (minimumHealthCapacity 1.0).
const drainSpec = `name: web
instances: 3
command: sleep
args: ["1000"]
resources: {cpus: 0.2, mem: 32Mi}
constraints: [{label: e2e, op: MAX_PER, max: 2}]
health: {command: {command: "true"}, gracePeriod: 5s, interval: 1s, timeout: 900ms, consecutiveFailures: 2}
upgradeStrategy: {minimumHealthCapacity: 1.0, maximumOverCapacity: 1.0}
`

// TestDrain: dcosd kernel, three agents and dcosd init. Draining the agent
// that runs 2 of a 3-instance service (minimumHealthCapacity 1.0) with
// dcosctl: the event stream shows each replacement healthy elsewhere
// before an instance on the drained agent is revoked, and the agent ends
// with no allocations. Then, undrained, nothing moves back; drained again
// with --deadline 2s, a plain allocation no framework moves is revoked
// with reason "drained".
func TestDrain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opTok, initTok := newToken(), newToken()
	entries := []tokenEntry{{Token: opTok, Name: "ops", Role: "operator"}, {Token: initTok, Name: "init", Role: "framework"}}
	agentToks := make([]string, 3)
	for i := range agentToks {
		agentToks[i] = newToken()
		entries = append(entries, tokenEntry{Token: agentToks[i], Name: fmt.Sprintf("agent-%d", i), Role: "agent"})
	}
	e.startKernel(e.writeTokens(e.path("tokens.json"), entries...), opTok, "--heartbeat-timeout", "3s", "--heartbeat-interval", "200ms")
	ctlArgs := []string{"--kernel", e.url, "--token", opTok}
	ids := make([]string, 3)
	agentArgs := []string{"--resources", "cpus=1,mem=1Gi"}
	// Two agents first: MAX_PER 2 puts 2 instances on one, 1 on the other.
	for i := range 2 {
		_, ids[i] = e.startAgent(fmt.Sprintf("d%d", i), agentToks[i], agentArgs...)
	}
	e.startInit("0", initTok)
	e.applySvc("web.yaml", drainSpec, ctlArgs...)
	var before []*pb.Task
	e.eventually("3 HEALTHY instances", func() (bool, string) {
		v := e.view("web")
		before = v.healthy("")
		return len(before) == 3 && len(v.allocs) == 3, v.String()
	})
	per := map[string]int{}
	for _, tk := range before {
		per[tk.GetAgentId()]++
	}
	var drained string
	for a, n := range per {
		if n == 2 {
			drained = a
		}
	}
	if drained == "" {
		t.Fatalf("no agent runs 2 instances: %v", per)
	}
	old := map[string]bool{} // allocations on the drained agent
	for _, tk := range before {
		if tk.GetAgentId() == drained {
			old[tk.GetAllocationId()] = true
		}
	}
	_, ids[2] = e.startAgent("d2", agentToks[2], agentArgs...)

	w := e.watch(e.op(), listAgents(t, e.op()).GetRevision())
	e.mustCtl(append(ctlArgs, "agent", "drain", drained)...)
	w.waitFor(t, "AGENT_DRAINING", agentEvent(drained, pb.EventKind_EVENT_KIND_AGENT_DRAINING))
	out := e.mustCtl(append(ctlArgs, "agents")...)
	if !strings.Contains(drainLine(out, drained), "UP,DRAINING") {
		t.Errorf("dcosctl agents does not show %s UP,DRAINING:\n%s", drained, out)
	}

	e.eventually("the drained agent empty, 3 HEALTHY instances elsewhere", func() (bool, string) {
		v := e.view("web")
		h := v.healthy("")
		left := drainAllocsOn(t, e, drained)
		return len(h) == 3 && len(v.allocs) == 3 && len(left) == 0 && !slices.Contains(agentsOf(h), drained),
			fmt.Sprintf("%d allocations left on %s;%s", len(left), drained, v.String())
	})
	for id := range old {
		w.waitFor(t, "old instance "+id+" revoked", allocEvent(id, pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED))
	}
	// Replay the stream: the k-th revocation of an old instance comes after
	// at least k replacements turned healthy (RUNNING, HEALTHY and ready).
	healthy, revoked := map[string]bool{}, 0
	for _, ev := range w.snapshot() {
		switch tk := ev.GetTask(); {
		case ev.GetKind() == pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED && old[ev.GetAllocation().GetId()]:
			revoked++
			if len(healthy) < revoked {
				t.Fatalf("old instance %s revoked after only %d replacements healthy; events:\n%s",
					ev.GetAllocation().GetId(), len(healthy), formatEvents(w.snapshot()))
			}
		case tk != nil && tk.GetLabels()[dinit.LabelService] == "web" && !old[tk.GetAllocationId()] &&
			tk.GetState() == pb.TaskState_TASK_STATE_RUNNING && tk.GetHealth() == pb.HealthState_HEALTH_STATE_HEALTHY && tk.GetReady():
			if tk.GetAgentId() == drained {
				t.Fatalf("a replacement (task %s) runs on the drained agent", tk.GetId())
			}
			healthy[tk.GetAllocationId()] = true
		}
	}
	if revoked != len(old) {
		t.Fatalf("%d revocations of old instances watched, want %d", revoked, len(old))
	}

	// Undrain: nothing moves back.
	e.mustCtl(append(ctlArgs, "agent", "undrain", drained)...)
	w.waitFor(t, "AGENT_UNDRAINED", agentEvent(drained, pb.EventKind_EVENT_KIND_AGENT_UNDRAINED))

	// Deadline: a plain allocation pinned to the agent, the agent drained
	// with --deadline 2s; no framework moves it, so the kernel revokes it.
	plain := allocate(t, e.op(), &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 << 20}, Count: 1,
		Constraints: []*pb.Constraint{{Label: "e2e", Op: pb.Constraint_OP_EQUALS, Values: []string{drainAgentName(t, e, drained)}}}}).GetAllocations()[0]
	if plain.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED || plain.GetAgentId() != drained {
		t.Fatalf("plain allocation %v, want granted on %s", plain, drained)
	}
	e.mustCtl(append(ctlArgs, "agent", "drain", drained, "--deadline", "2s")...)
	ev := w.waitFor(t, "the plain allocation revoked", allocEvent(plain.GetId(), pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED))
	if r := ev.GetAllocation().GetRevokeReason(); r != "drained" {
		t.Errorf("plain allocation revoked with reason %q, want drained", r)
	}
	if left := drainAllocsOn(t, e, drained); len(left) != 0 {
		t.Errorf("%d allocations left on %s after its deadline", len(left), drained)
	}
	for _, tk := range e.view("web").running() {
		if tk.GetAgentId() == drained {
			t.Errorf("instance task %s moved back to %s", tk.GetId(), drained)
		}
	}
}

// drainAllocsOn lists the live allocations on agent.
func drainAllocsOn(t *testing.T, e *env, agent string) []*pb.Allocation {
	t.Helper()
	res, err := e.op().ListAllocations(ctx(t), connect.NewRequest(&pb.ListAllocationsRequest{AgentId: agent}))
	if err != nil {
		t.Fatal(err)
	}
	return res.Msg.GetAllocations()
}

// drainAgentName is an agent's e2e label (its name).
func drainAgentName(t *testing.T, e *env, id string) string {
	t.Helper()
	for _, a := range listAgents(t, e.op()).GetAgents() {
		if a.GetId() == id {
			return a.GetLabels()["e2e"]
		}
	}
	t.Fatalf("no agent %s", id)
	return ""
}

// drainLine returns the line of out that starts with prefix.
func drainLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			return l
		}
	}
	return ""
}
