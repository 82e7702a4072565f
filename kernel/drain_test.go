package kernel

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func kinds(evs []*pb.Event) []pb.EventKind {
	out := make([]pb.EventKind, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.GetKind())
	}
	return out
}

func TestTable_Drain(t *testing.T) {
	drainK, undrainK := pb.EventKind_EVENT_KIND_AGENT_DRAINING, pb.EventKind_EVENT_KIND_AGENT_UNDRAINED
	tests := []struct {
		name     string
		before   func(tb *Table) // state to start from
		deadline time.Duration
		undrain  bool
		want     []pb.EventKind
		draining bool
		until    time.Time // zero: no deadline
	}{
		{"drain", nil, 0, false, []pb.EventKind{drainK}, true, time.Time{}},
		{"drain with deadline", nil, time.Hour, false, []pb.EventKind{drainK}, true, t0.Add(time.Hour)},
		{"drain again, same", func(tb *Table) { tb.Drain("agent-1", 0, false, t0, newChanges()) }, 0, false, nil, true, time.Time{}},
		{"drain again moves deadline", func(tb *Table) { tb.Drain("agent-1", time.Hour, false, t0, newChanges()) }, time.Minute, false, []pb.EventKind{drainK}, true, t0.Add(time.Minute)},
		{"undrain", func(tb *Table) { tb.Drain("agent-1", time.Hour, false, t0, newChanges()) }, 0, true, []pb.EventKind{undrainK}, false, time.Time{}},
		{"undrain not draining", nil, 0, true, nil, false, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := cluster(t, agentReq(4, 1024, nil))
			if tt.before != nil {
				tt.before(tb)
			}
			c := newChanges()
			g, err := tb.Drain("agent-1", tt.deadline, tt.undrain, t0, c)
			if err != nil {
				t.Fatal(err)
			}
			if got := kinds(c.Events); len(got) != len(tt.want) || (len(got) > 0 && got[0] != tt.want[0]) {
				t.Fatalf("events %v, want %v", got, tt.want)
			}
			if len(tt.want) > 0 && (c.Agents["agent-1"] == nil || c.Events[0].GetAgent().GetId() != "agent-1") {
				t.Fatalf("agent not written or not in the event: %v / %v", c.Agents, c.Events[0])
			}
			if len(tt.want) == 0 && !c.Empty() {
				t.Fatalf("a no-op wrote %v", c)
			}
			if g.GetDraining() != tt.draining {
				t.Fatalf("draining %v, want %v", g.GetDraining(), tt.draining)
			}
			switch {
			case tt.until.IsZero() && g.GetDrainDeadline() != nil:
				t.Fatalf("deadline %v, want none", g.GetDrainDeadline().AsTime())
			case !tt.until.IsZero() && !g.GetDrainDeadline().AsTime().Equal(tt.until):
				t.Fatalf("deadline %v, want %v", g.GetDrainDeadline().AsTime(), tt.until)
			}
		})
	}
}

func TestTable_DrainUnknownAgent(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil))
	c := newChanges()
	if _, err := tb.Drain("agent-9", 0, false, t0, c); CodeOf(err) != NotFound {
		t.Fatalf("got %v, want NotFound", err)
	}
	if !c.Empty() {
		t.Fatal("refusal wrote changes")
	}
}

func TestTable_DrainNoPlacements(t *testing.T) {
	tb := cluster(t, agentReq(1, 1024, nil), agentReq(1, 1024, nil))
	tb.Drain("agent-1", 0, false, t0, newChanges())
	as, _ := allocate(tb, fwA, allocReq(1, 64, 2))
	if g, p := states(as); g != 1 || p != 1 {
		t.Fatalf("granted %d pending %d, want 1 and 1", g, p)
	}
	for _, a := range as {
		if a.GetAgentId() == "agent-1" {
			t.Fatalf("placed %s on the draining agent", a.GetId())
		}
	}
	// Undrain lets the pending one in, in the same iteration's cycle.
	c := newChanges()
	tb.Drain("agent-1", 0, true, t0, c)
	if !c.cycle {
		t.Fatal("undrain did not ask for a cycle")
	}
	tb.Cycle(FirstFit{}, 1, t0, c)
	if got := tb.Allocations(ops, "agent-1"); len(got) != 1 {
		t.Fatalf("agent-1 after undrain holds %d allocations, want 1", len(got))
	}
}

func TestTable_DrainKeepsUsageCounted(t *testing.T) {
	tb := cluster(t, agentReq(2, 1024, nil))
	r := allocReq(1, 64, 1)
	r.Role = "web"
	allocate(tb, fwA, r)
	tb.Drain("agent-1", 0, false, t0, newChanges())
	s := tb.Snapshot(1)
	if len(s.Agents) != 0 {
		t.Fatalf("snapshot has %d agents, want the draining one left out", len(s.Agents))
	}
	if len(s.Roles) != 1 || s.Roles[0].Usage.MilliCPU != 1000 {
		t.Fatalf("roles %+v, want web using 1 cpu", s.Roles)
	}
}

func TestTable_DrainDeadline(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil), agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(1, 64, 2, &pb.Constraint{Label: AgentLabel, Op: pb.Constraint_OP_EQUALS, Values: []string{"agent-1"}}))
	if g, _ := states(as); g != 2 {
		t.Fatalf("granted %d, want 2", g)
	}
	other, _ := allocate(tb, fwA, allocReq(1, 64, 1, &pb.Constraint{Label: AgentLabel, Op: pb.Constraint_OP_EQUALS, Values: []string{"agent-2"}}))
	lt := &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "sleep"}
	if _, err := tb.Launch(fwA, lt, t0, newChanges()); err != nil {
		t.Fatal(err)
	}
	tb.Drain("agent-1", time.Minute, false, t0, newChanges())

	c := newChanges()
	tb.Expire(t0.Add(59*time.Second), 24*time.Hour, c)
	if len(c.Events) != 0 {
		t.Fatalf("before the deadline: %v", kinds(c.Events))
	}
	c = newChanges()
	tb.Expire(t0.Add(time.Minute), 24*time.Hour, c)
	revoked := 0
	for _, e := range c.Events {
		switch e.GetKind() {
		case pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED:
			revoked++
			if e.GetAllocation().GetRevokeReason() != DrainedReason || e.GetAllocation().GetAgentId() != "agent-1" {
				t.Fatalf("revoked %v", e.GetAllocation())
			}
		case pb.EventKind_EVENT_KIND_TASK_STATE:
			if e.GetTask().GetState() != pb.TaskState_TASK_STATE_KILLED || e.GetTask().GetReason() != DrainedReason {
				t.Fatalf("task %v", e.GetTask())
			}
		}
	}
	if revoked != 2 {
		t.Fatalf("revoked %d, want 2 (%v)", revoked, kinds(c.Events))
	}
	if got := tb.Allocations(ops, "agent-1"); len(got) != 0 {
		t.Fatalf("agent-1 still holds %d", len(got))
	}
	if got := tb.Allocations(ops, "agent-2"); len(got) != 1 || got[0].GetId() != other[0].GetId() {
		t.Fatalf("agent-2 holds %v", got)
	}
	if g := tb.agents["agent-1"]; !g.GetDraining() || g.GetAllocated().GetCpus() != 0 {
		t.Fatalf("agent-1 after the deadline: %v", g)
	}
	// Later ticks change nothing.
	c = newChanges()
	tb.Expire(t0.Add(time.Hour), 24*time.Hour, c)
	if !c.Empty() {
		t.Fatalf("a later tick wrote %v", kinds(c.Events))
	}
}

func TestTable_DrainSurvivesRegisterAndRestore(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil))
	tb.Drain("agent-1", time.Hour, false, t0, newChanges())
	r := agentReq(8, 2048, nil)
	r.AgentId = "agent-1"
	if _, err := tb.Register(ops, r, t0, newChanges()); err != nil {
		t.Fatal(err)
	}
	st := &State{Agents: tb.Agents()}
	back := Restore(st, t0)
	g := back.agents["agent-1"]
	if !g.GetDraining() || !g.GetDrainDeadline().AsTime().Equal(t0.Add(time.Hour)) {
		t.Fatalf("after re-registration and restore: %v", g)
	}
	if s := back.Snapshot(1); len(s.Agents) != 0 {
		t.Fatal("restored draining agent is placeable")
	}
}

func TestValidateAgentDrain(t *testing.T) {
	tests := []struct {
		name  string
		req   *pb.AgentDrainRequest
		field string // "" = valid
	}{
		{"ok", &pb.AgentDrainRequest{AgentId: "agent-1"}, ""},
		{"ok deadline", &pb.AgentDrainRequest{AgentId: "agent-1", Deadline: durationpb.New(time.Hour)}, ""},
		{"ok undrain", &pb.AgentDrainRequest{AgentId: "agent-1", Undrain: true}, ""},
		{"no id", &pb.AgentDrainRequest{}, "agent_id"},
		{"bad id", &pb.AgentDrainRequest{AgentId: "agent 1"}, "agent_id"},
		{"negative", &pb.AgentDrainRequest{AgentId: "agent-1", Deadline: durationpb.New(-time.Second)}, "deadline"},
		{"too long", &pb.AgentDrainRequest{AgentId: "agent-1", Deadline: durationpb.New(MaxDrainDeadline + time.Hour)}, "deadline"},
		{"undrain with deadline", &pb.AgentDrainRequest{AgentId: "agent-1", Undrain: true, Deadline: durationpb.New(time.Second)}, "deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateAgentDrain(tt.req)
			switch {
			case tt.field == "" && err != nil:
				t.Fatal(err)
			case tt.field != "" && (CodeOf(err) != InvalidArgument || err.Error()[:len(tt.field)] != tt.field):
				t.Fatalf("got %v, want InvalidArgument on %s", err, tt.field)
			}
		})
	}
}
