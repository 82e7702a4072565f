package kernel

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var (
	t0  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ops = Principal{Name: "ops", Role: RoleOperator}
	fwA = Principal{Name: "fw-a", Role: RoleFramework}
	fwB = Principal{Name: "fw-b", Role: RoleFramework}
)

const mi = 1 << 20

// cluster builds a table with one agent per spec "cpus,memMi[,k=v]".
func cluster(t *testing.T, agents ...*pb.RegisterAgentRequest) *Table {
	t.Helper()
	tb := NewTable()
	c := newChanges()
	for _, a := range agents {
		tb.Register(ops, a, t0, c)
	}
	return tb
}

func agentReq(cpus float64, memMi int64, labels map[string]string) *pb.RegisterAgentRequest {
	return &pb.RegisterAgentRequest{Hostname: "h", Labels: labels, Resources: &pb.Resources{Cpus: cpus, MemBytes: memMi * mi}}
}

func allocReq(cpus float64, memMi int64, count int32, cs ...*pb.Constraint) *pb.AllocateRequest {
	return &pb.AllocateRequest{Resources: &pb.Resources{Cpus: cpus, MemBytes: memMi * mi}, Count: count, Constraints: cs}
}

// allocate runs Allocate and a cycle, like one kernel loop iteration.
func allocate(tb *Table, p Principal, r *pb.AllocateRequest) ([]*pb.Allocation, *Changes) {
	c := newChanges()
	as := tb.Allocate(p, r, t0, c)
	tb.Cycle(FirstFit{}, 1, t0, c)
	return as, c
}

func states(as []*pb.Allocation) (granted, pending int) {
	for _, a := range as {
		switch a.GetState() {
		case pb.AllocationState_ALLOCATION_STATE_GRANTED:
			granted++
		case pb.AllocationState_ALLOCATION_STATE_PENDING:
			pending++
		}
	}
	return
}

func TestTable_AllocateCycle(t *testing.T) {
	zone := func(z string) map[string]string { return map[string]string{"zone": z} }
	eq := func(k, v string) *pb.Constraint {
		return &pb.Constraint{Label: k, Op: pb.Constraint_OP_EQUALS, Values: []string{v}}
	}
	tests := []struct {
		name         string
		agents       []*pb.RegisterAgentRequest
		req          *pb.AllocateRequest
		granted      int
		wantReason   string // substring of the pending reason
		wantAgentIDs []string
	}{
		{"fits", []*pb.RegisterAgentRequest{agentReq(2, 1024, nil)}, allocReq(0.5, 64, 1), 1, "", []string{"agent-1"}},
		{"count spreads when full", []*pb.RegisterAgentRequest{agentReq(1, 1024, nil), agentReq(1, 1024, nil)}, allocReq(1, 64, 2), 2, "", []string{"agent-1", "agent-2"}},
		{"partial", []*pb.RegisterAgentRequest{agentReq(1, 1024, nil)}, allocReq(0.5, 600, 2), 1, "insufficient memory on 1 agent", nil},
		{"no agents", nil, allocReq(1, 1, 1), 0, "no agents are up", nil},
		{"never fits", []*pb.RegisterAgentRequest{agentReq(1, 1024, nil)}, allocReq(4, 1, 1), 0, "can never fit", nil},
		{"constraint", []*pb.RegisterAgentRequest{agentReq(4, 1024, zone("a")), agentReq(4, 1024, zone("b"))}, allocReq(1, 1, 1, eq("zone", "b")), 1, "", []string{"agent-2"}},
		{"constraint excludes all", []*pb.RegisterAgentRequest{agentReq(4, 1024, zone("a")), agentReq(4, 1024, zone("a"))}, allocReq(1, 1, 1, eq("zone", "b")), 0, "constraint zone=b excluded 2", nil},
		{"not equals unset label", []*pb.RegisterAgentRequest{agentReq(4, 1024, nil)}, allocReq(1, 1, 1, &pb.Constraint{Label: "gpu", Op: pb.Constraint_OP_NOT_EQUALS, Values: []string{"yes"}}), 1, "", nil},
		{"in", []*pb.RegisterAgentRequest{agentReq(4, 1024, zone("a")), agentReq(4, 1024, zone("c"))}, allocReq(1, 1, 1, &pb.Constraint{Label: "zone", Op: pb.Constraint_OP_IN, Values: []string{"b", "c"}}), 1, "", []string{"agent-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := cluster(t, tt.agents...)
			as, c := allocate(tb, fwA, tt.req)
			g, _ := states(as)
			if g != tt.granted {
				t.Fatalf("granted %d, want %d", g, tt.granted)
			}
			for _, a := range as {
				if a.GetState() == pb.AllocationState_ALLOCATION_STATE_PENDING && !strings.Contains(a.GetPendingReason(), tt.wantReason) {
					t.Errorf("pending reason %q, want it to contain %q", a.GetPendingReason(), tt.wantReason)
				}
			}
			for i, id := range tt.wantAgentIDs {
				if as[i].GetAgentId() != id {
					t.Errorf("allocation %d on %s, want %s", i, as[i].GetAgentId(), id)
				}
			}
			if len(c.Allocations) != len(as) {
				t.Errorf("changes hold %d allocations, want %d", len(c.Allocations), len(as))
			}
			checkUsage(t, tb)
		})
	}
}

// checkUsage asserts the invariant: no agent is over-committed and used
// equals the sum of granted allocations.
func checkUsage(t *testing.T, tb *Table) {
	t.Helper()
	sum := map[string]Resources{}
	for _, a := range tb.allocs {
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
			sum[a.GetAgentId()] = sum[a.GetAgentId()].Add(FromProto(a.GetResources()))
		}
	}
	for id, g := range tb.agents {
		if sum[id] != tb.used[id] {
			t.Errorf("agent %s: used %v, granted sum %v", id, tb.used[id], sum[id])
		}
		if !FromProto(g.GetTotal()).Fits(sum[id]) {
			t.Errorf("agent %s over-committed: %v of %v", id, sum[id], g.GetTotal())
		}
	}
}

func TestTable_RevokeFreesAndPlacesPending(t *testing.T) {
	tb := cluster(t, agentReq(1, 256, nil))
	first, _ := allocate(tb, fwA, allocReq(0.5, 200, 1))
	second, _ := allocate(tb, fwA, allocReq(0.5, 200, 1))
	if first[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED || second[0].GetState() != pb.AllocationState_ALLOCATION_STATE_PENDING {
		t.Fatalf("states %v %v", first[0].GetState(), second[0].GetState())
	}
	c := newChanges()
	k, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: first[0].GetId(), Command: "sleep"}, t0, c)
	if err != nil {
		t.Fatal(err)
	}
	c = newChanges()
	if err := tb.Revoke(fwA, first[0].GetId(), "", t0, c); err != nil {
		t.Fatal(err)
	}
	tb.Cycle(FirstFit{}, 1, t0, c)
	if second[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("pending allocation not placed after revoke: %v (%s)", second[0].GetState(), second[0].GetPendingReason())
	}
	kinds := map[pb.EventKind]int{}
	for _, e := range c.Events {
		kinds[e.GetKind()]++
		if e.GetKind() == pb.EventKind_EVENT_KIND_TASK_STATE && e.GetTask().GetState() != pb.TaskState_TASK_STATE_KILLED {
			t.Errorf("task event state %v, want KILLED", e.GetTask().GetState())
		}
	}
	if kinds[pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED] != 1 || kinds[pb.EventKind_EVENT_KIND_TASK_STATE] != 1 || kinds[pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED] != 1 {
		t.Fatalf("events %v", kinds)
	}
	if _, ok := tb.tasks[k.GetId()]; ok {
		t.Error("task of a revoked allocation still in the table")
	}
	if c.Tasks[k.GetId()] != nil {
		t.Error("task not deleted in changes")
	}
	if ts := tb.Tasks(fwA, "", ""); len(ts) != 1 || ts[0].GetId() != k.GetId() || ts[0].GetState() != pb.TaskState_TASK_STATE_KILLED {
		t.Errorf("completed tasks listed: %v", ts)
	}
	if ts := tb.Tasks(fwB, "", ""); len(ts) != 0 {
		t.Errorf("fw-b sees fw-a's completed task: %v", ts)
	}
	checkUsage(t, tb)
	// Idempotent: revoking again succeeds; a never-issued id does not.
	if err := tb.Revoke(fwA, first[0].GetId(), "", t0, newChanges()); err != nil {
		t.Errorf("second revoke: %v", err)
	}
	if err := tb.Revoke(fwA, "a-999", "", t0, newChanges()); CodeOf(err) != NotFound {
		t.Errorf("revoke of a never-issued id: %v, want NotFound", err)
	}
	if err := tb.Revoke(fwA, "x-1", "", t0, newChanges()); CodeOf(err) != InvalidArgument {
		t.Errorf("revoke of a malformed id: %v, want InvalidArgument", err)
	}
}

func TestTable_Ownership(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(1, 64, 1))
	id := as[0].GetId()
	c := newChanges()
	task, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: id, Command: "true"}, t0, c)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func() error
		want Code
	}{
		{"launch in foreign allocation", func() error {
			_, err := tb.Launch(fwB, &pb.LaunchRequest{AllocationId: id, Command: "true"}, t0, newChanges())
			return err
		}, NotFound},
		{"revoke foreign allocation", func() error { return tb.Revoke(fwB, id, "", t0, newChanges()) }, NotFound},
		{"revoke foreign task", func() error { return tb.Revoke(fwB, task.GetId(), "", t0, newChanges()) }, NotFound},
		{"keepalive foreign", func() error { _, err := tb.KeepAlive(fwB, []string{id}, t0, newChanges()); return err }, NotFound},
		{"launch unknown", func() error {
			_, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: "a-77", Command: "true"}, t0, newChanges())
			return err
		}, NotFound},
		{"operator: launch unknown", func() error {
			_, err := tb.Launch(ops, &pb.LaunchRequest{AllocationId: "a-77", Command: "true"}, t0, newChanges())
			return err
		}, NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CodeOf(tt.do()); got != tt.want {
				t.Fatalf("code %v, want %v", got, tt.want)
			}
		})
	}
	// A framework cannot tell another's ids from unknown ones: the same
	// code and message, but for the id.
	unknown := func(err error, id string) string { return strings.ReplaceAll(err.Error(), id, "ID") }
	_, errForeign := tb.Launch(fwB, &pb.LaunchRequest{AllocationId: id, Command: "true"}, t0, newChanges())
	_, errUnknown := tb.Launch(fwB, &pb.LaunchRequest{AllocationId: "a-77", Command: "true"}, t0, newChanges())
	if unknown(errForeign, id) != unknown(errUnknown, "a-77") {
		t.Errorf("launch: foreign %q, unknown %q; want the same answer", errForeign, errUnknown)
	}
	errForeign, errUnknown = tb.Revoke(fwB, task.GetId(), "", t0, newChanges()), tb.Revoke(fwB, "t-77", "", t0, newChanges())
	if unknown(errForeign, task.GetId()) != unknown(errUnknown, "t-77") {
		t.Errorf("revoke: foreign %q, unknown %q; want the same answer", errForeign, errUnknown)
	}
	if n := len(tb.Allocations(fwB, "")); n != 0 {
		t.Errorf("fw-b sees %d allocations of fw-a", n)
	}
	if n := len(tb.Tasks(fwB, "", "")); n != 0 {
		t.Errorf("fw-b sees %d tasks of fw-a", n)
	}
	if len(tb.Allocations(ops, "")) != 1 || len(tb.Tasks(ops, "", "")) != 1 {
		t.Error("operator does not see everything")
	}
	if tb.tasks[task.GetId()].GetState() != pb.TaskState_TASK_STATE_PENDING {
		t.Error("a denied call changed the table")
	}
}

func TestTable_LaunchShare(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(1, 100, 1))
	id := as[0].GetId()
	half := &pb.Resources{Cpus: 0.5, MemBytes: 50 * mi}
	for i := 0; i < 2; i++ {
		if _, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: id, Command: "x", Resources: half}, t0, newChanges()); err != nil {
			t.Fatalf("launch %d: %v", i, err)
		}
	}
	if _, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: id, Command: "x", Resources: half}, t0, newChanges()); CodeOf(err) != FailedPrecondition {
		t.Fatalf("third half-share launch: %v, want FailedPrecondition", err)
	}
}

func TestTable_ReportLifecycle(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil), agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(1, 64, 1))
	task, _ := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "x"}, t0, newChanges())
	report := func(agent string, s pb.TaskState, code int32) (*Changes, error) {
		c := newChanges()
		err := tb.Report(ops, &pb.ReportTaskStatusRequest{TaskId: task.GetId(), AgentId: agent, State: s, ExitCode: code, Pid: 42}, t0, c)
		return c, err
	}
	if _, err := report("agent-2", pb.TaskState_TASK_STATE_RUNNING, 0); CodeOf(err) != PermissionDenied {
		t.Fatalf("report from another agent: %v", err)
	}
	if _, err := report("agent-9", pb.TaskState_TASK_STATE_RUNNING, 0); CodeOf(err) != NotFound {
		t.Fatalf("report from an unknown agent: %v", err)
	}
	for _, s := range []pb.TaskState{pb.TaskState_TASK_STATE_STARTING, pb.TaskState_TASK_STATE_RUNNING, pb.TaskState_TASK_STATE_FAILED} {
		c, err := report("agent-1", s, 3)
		if err != nil || len(c.Events) != 1 || c.Events[0].GetTask().GetState() != s {
			t.Fatalf("report %v: err %v events %v", s, err, c.Events)
		}
	}
	// After the verdict, reports are ignored.
	c, err := report("agent-1", pb.TaskState_TASK_STATE_RUNNING, 0)
	if err != nil || len(c.Events) != 0 || tb.tasks[task.GetId()].GetState() != pb.TaskState_TASK_STATE_FAILED {
		t.Fatalf("report after terminal: err %v events %d state %v", err, len(c.Events), tb.tasks[task.GetId()].GetState())
	}
}

func TestTable_Expire(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil), agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(4, 64, 2))
	task, _ := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "x"}, t0, newChanges())
	leased, _ := allocate(tb, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.001, MemBytes: 1}, LeaseTtl: durationpb.New(time.Second)})
	if leased[0].GetState() != pb.AllocationState_ALLOCATION_STATE_PENDING {
		t.Fatalf("cluster should be full of cpus: %v", leased[0].GetState())
	}
	// agent-2 keeps heartbeating, agent-1 goes silent.
	if err := tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-2"}, t0.Add(9*time.Second)); err != nil {
		t.Fatal(err)
	}
	c := newChanges()
	tb.Expire(t0.Add(11*time.Second), 10*time.Second, c)
	if tb.agents["agent-1"].GetState() != pb.AgentState_AGENT_STATE_LOST || tb.agents["agent-2"].GetState() != pb.AgentState_AGENT_STATE_UP {
		t.Fatalf("agent states %v %v", tb.agents["agent-1"].GetState(), tb.agents["agent-2"].GetState())
	}
	var sawLost, sawTaskLost, sawRevoked bool
	for _, e := range c.Events {
		switch e.GetKind() {
		case pb.EventKind_EVENT_KIND_AGENT_LOST:
			sawLost = true
		case pb.EventKind_EVENT_KIND_TASK_STATE:
			sawTaskLost = e.GetTask().GetId() == task.GetId() && e.GetTask().GetState() == pb.TaskState_TASK_STATE_LOST
		case pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED:
			sawRevoked = e.GetAllocation().GetId() == as[0].GetId() && strings.HasPrefix(e.GetAllocation().GetRevokeReason(), "agent lost")
		}
	}
	if !sawLost || !sawTaskLost || !sawRevoked {
		t.Fatalf("events: agent lost %v, task lost %v, allocation revoked %v", sawLost, sawTaskLost, sawRevoked)
	}
	if err := tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-1"}, t0.Add(12*time.Second)); CodeOf(err) != FailedPrecondition {
		t.Fatalf("heartbeat of a lost agent: %v", err)
	}
	if err := tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-7"}, t0); CodeOf(err) != NotFound {
		t.Fatalf("heartbeat of an unknown agent: %v", err)
	}
	// The lost agent comes back: it is UP again and nothing is expected of it.
	resp, err := tb.Register(ops, &pb.RegisterAgentRequest{AgentId: "agent-1", Resources: &pb.Resources{Cpus: 4, MemBytes: 1024 * mi}}, t0.Add(13*time.Second), newChanges())
	if err != nil || len(resp.GetTasks()) != 0 || tb.agents["agent-1"].GetState() != pb.AgentState_AGENT_STATE_UP {
		t.Fatalf("re-register: err %v, %d tasks, state %v", err, len(resp.GetTasks()), tb.agents["agent-1"].GetState())
	}
	// Leases: a granted leased allocation expires unless kept alive.
	c = newChanges()
	tb.Cycle(FirstFit{}, 1, t0.Add(13*time.Second), c)
	if leased[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("leased allocation not granted after the agent came back: %s", leased[0].GetPendingReason())
	}
	if _, err := tb.KeepAlive(fwA, []string{leased[0].GetId()}, t0.Add(13500*time.Millisecond), newChanges()); err != nil {
		t.Fatal(err)
	}
	tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-1"}, t0.Add(14*time.Second))
	tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-2"}, t0.Add(14*time.Second))
	tb.Expire(t0.Add(14*time.Second), 10*time.Second, newChanges())
	if _, live := tb.allocs[leased[0].GetId()]; !live {
		t.Fatal("kept-alive lease expired early")
	}
	tb.Expire(t0.Add(15*time.Second), 10*time.Second, newChanges())
	if _, live := tb.allocs[leased[0].GetId()]; live {
		t.Fatal("lease did not expire")
	}
	checkUsage(t, tb)
}

func TestRestore_RoundTrip(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(1, 64, 2))
	tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "x"}, t0, newChanges())
	st := &State{Seq: tb.seq, Revision: 7}
	for _, g := range tb.agents {
		st.Agents = append(st.Agents, g)
	}
	for _, a := range tb.allocs {
		st.Allocations = append(st.Allocations, a)
	}
	for _, k := range tb.tasks {
		st.Tasks = append(st.Tasks, k)
	}
	r := Restore(st, t0)
	if r.used["agent-1"] != tb.used["agent-1"] || r.seq != tb.seq || r.Revision() != 7 || len(r.allocTasks[as[0].GetId()]) != 1 {
		t.Fatalf("restored used %v seq %d rev %d", r.used["agent-1"], r.seq, r.Revision())
	}
	checkUsage(t, r)
}

func TestTable_PluginsAndUsage(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil), agentReq(4, 1024, nil))
	tb.Register(ops, &pb.RegisterAgentRequest{AgentId: "agent-1", Resources: &pb.Resources{Cpus: 4, MemBytes: 1024 * mi},
		Plugins: []*pb.PluginInfo{{Name: "exec", Kind: "driver", Health: "healthy"}}}, t0, newChanges())
	as, _ := allocate(tb, fwA, allocReq(3, 64, 2)) // one per agent
	var tasks []*pb.Task
	for _, a := range as {
		k, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: a.GetId(), Command: "x", Driver: "nice", DriverConfig: `{"nice":5}`}, t0, newChanges())
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, k)
	}
	on := func(agent string) *pb.Task {
		for _, k := range tasks {
			if k.GetAgentId() == agent {
				return k
			}
		}
		t.Fatalf("no task on %s", agent)
		return nil
	}
	mine, other := on("agent-1"), on("agent-2")
	hb := &pb.HeartbeatRequest{AgentId: "agent-1",
		Plugins: []*pb.PluginInfo{{Name: "exec", Kind: "driver", Health: "restarting", Restarts: 1}},
		Usage:   []*pb.TaskUsage{{TaskId: mine.GetId(), CpuNs: 5e6, MemBytes: 1 << 20}, {TaskId: other.GetId(), CpuNs: 1}, {TaskId: "t-99"}}}
	if err := tb.Heartbeat(ops, hb, t0); err != nil {
		t.Fatal(err)
	}
	for _, g := range tb.Agents() {
		if g.GetId() == "agent-1" && (len(g.GetPlugins()) != 1 || g.GetPlugins()[0].GetRestarts() != 1) {
			t.Errorf("agent-1 plugins = %v, want the heartbeat's", g.GetPlugins())
		}
	}
	for _, k := range tb.Tasks(fwA, "", "") {
		if k.GetDriver() != "nice" || k.GetDriverConfig() != `{"nice":5}` {
			t.Errorf("task %s driver %q config %q", k.GetId(), k.GetDriver(), k.GetDriverConfig())
		}
		switch k.GetId() {
		case mine.GetId():
			if k.GetUsage().GetCpuNs() != 5e6 || k.GetUsage().GetMemBytes() != 1<<20 {
				t.Errorf("usage of %s = %v", k.GetId(), k.GetUsage())
			}
		case other.GetId():
			if k.GetUsage() != nil {
				t.Errorf("agent-1 reported usage of agent-2's task %s: %v", k.GetId(), k.GetUsage())
			}
		}
	}
	// A heartbeat without plugins keeps the list; a revoke forgets the usage.
	if err := tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-1"}, t0); err != nil {
		t.Fatal(err)
	}
	if err := tb.Revoke(fwA, mine.GetAllocationId(), "", t0, newChanges()); err != nil {
		t.Fatal(err)
	}
	if _, ok := tb.usage[mine.GetId()]; ok {
		t.Error("usage of a forgotten task is kept")
	}
	if len(tb.plugins["agent-1"]) != 1 {
		t.Errorf("plugins after an empty heartbeat = %v", tb.plugins["agent-1"])
	}
}

func TestValidateHeartbeatAndDriver(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"driver name", ValidateLaunch(&pb.LaunchRequest{AllocationId: "a-1", Command: "x", Driver: "Bad/Name"}), "driver:"},
		{"driver config size", ValidateLaunch(&pb.LaunchRequest{AllocationId: "a-1", Command: "x", DriverConfig: strings.Repeat("x", MaxDriverConfig+1)}), "driver_config:"},
		{"usage task id", ValidateHeartbeat(&pb.HeartbeatRequest{AgentId: "agent-1", Usage: []*pb.TaskUsage{{}}}), "usage[0].task_id"},
		{"too many plugins", ValidateHeartbeat(&pb.HeartbeatRequest{Plugins: make([]*pb.PluginInfo, MaxPlugins+1)}), "plugins:"},
		{"plugin error length", ValidateRegister(&pb.RegisterAgentRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1}, Plugins: []*pb.PluginInfo{{LastError: strings.Repeat("e", 5000)}}}), "plugins[0]"},
	} {
		if CodeOf(tc.err) != InvalidArgument || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want InvalidArgument naming %q", tc.name, tc.err, tc.want)
		}
	}
	if err := ValidateLaunch(&pb.LaunchRequest{AllocationId: "a-1", Command: "x", Driver: "nice", DriverConfig: `{}`}); err != nil {
		t.Errorf("valid launch: %v", err)
	}
}

func TestTable_UsageRates(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(1, 64, 1))
	var ks []*pb.Task
	for range 2 {
		k, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "x", Resources: &pb.Resources{Cpus: 0.5, MemBytes: 32 * mi}}, t0, newChanges())
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	at := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	beat := func(us ...*pb.TaskUsage) {
		t.Helper()
		if err := tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-1", Usage: us}, t0); err != nil {
			t.Fatal(err)
		}
	}
	beat(&pb.TaskUsage{TaskId: ks[0].GetId(), Sampled: at(0), CpuNs: 1e9, TxBytes: 1000, MemBytes: 10},
		&pb.TaskUsage{TaskId: ks[1].GetId(), Sampled: at(0), CpuNs: 0, MemBytes: 5})
	// 2 s later: task 0 used 1 more cpu-second and sent 4000 bytes; task
	// 1's counter went backwards (recreated): no rate.
	beat(&pb.TaskUsage{TaskId: ks[0].GetId(), Sampled: at(2 * time.Second), CpuNs: 2e9, TxBytes: 5000, RxBytes: 200, MemBytes: 20},
		&pb.TaskUsage{TaskId: ks[1].GetId(), Sampled: at(2 * time.Second), CpuNs: 0, RxBytes: 0, MemBytes: 7})
	got := map[string]*pb.TaskUsage{}
	for _, k := range tb.Tasks(fwA, "", "") {
		got[k.GetId()] = k.GetUsage()
	}
	u0 := got[ks[0].GetId()]
	if u0.GetCpuCores() != 0.5 || u0.GetTxBytesPerSec() != 2000 || u0.GetRxBytesPerSec() != 100 {
		t.Errorf("task 0 rates: cpu %v cores, tx %v B/s, rx %v B/s; want 0.5, 2000, 100", u0.GetCpuCores(), u0.GetTxBytesPerSec(), u0.GetRxBytesPerSec())
	}
	if u1 := got[ks[1].GetId()]; u1.GetCpuCores() != 0 || u1.GetRxBytesPerSec() != 0 {
		t.Errorf("task 1 rates = %v", u1)
	}
	allocs := tb.Allocations(fwA, "")
	if len(allocs) != 1 {
		t.Fatalf("allocations = %v", allocs)
	}
	if u := allocs[0].GetUsage(); u.GetMemBytes() != 27 || u.GetCpuCores() != 0.5 || u.GetTxBytes() != 5000 {
		t.Errorf("allocation usage = %v, want the sum of its tasks' (mem 27, 0.5 cores, tx 5000)", u)
	}
}
