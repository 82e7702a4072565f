package kernel

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// liar is a deliberately wrong policy: it puts every request on agent 0,
// names indices out of range, and places a request twice.
type liar struct{}

func (liar) Name() string { return "liar" }
func (liar) Place(s *Snapshot) (*Decision, error) {
	var out []Placement
	for i := range s.Requests {
		out = append(out, Placement{Request: i, Agent: 0}, Placement{Request: i, Agent: 0})
	}
	out = append(out, Placement{Request: -1}, Placement{Agent: len(s.Agents)})
	// And it tries to preempt everything, which places nothing of higher
	// priority.
	var revoke []int
	for i := range s.Allocations {
		revoke = append(revoke, i, i)
	}
	return &Decision{Placements: out, Revocations: append(revoke, -1, len(s.Allocations))}, nil
}

// TestCycle_NeverOverCommits: for random clusters and requests, whatever
// a policy answers, accepted placements never over-commit an agent or
// break a constraint.
func TestCycle_NeverOverCommits(t *testing.T) {
	for _, p := range []Policy{FirstFit{}, liar{}} {
		for seed := uint64(0); seed < 50; seed++ {
			t.Run(fmt.Sprintf("%s/%d", p.Name(), seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 7))
				tb := NewTable()
				c := newChanges()
				for i := 0; i < 1+rng.IntN(8); i++ {
					tb.Register(ops, agentReq(float64(1+rng.IntN(8)), int64(256+rng.IntN(4096)), map[string]string{"zone": fmt.Sprint(rng.IntN(3))}), t0, c)
				}
				for i := 0; i < 1+rng.IntN(30); i++ {
					r := allocReq(float64(1+rng.IntN(4000))/1000, int64(1+rng.IntN(2048)), int32(1+rng.IntN(4)))
					if rng.IntN(3) == 0 {
						r.Constraints = []*pb.Constraint{{Label: "zone", Op: pb.Constraint_OP_EQUALS, Values: []string{fmt.Sprint(rng.IntN(3))}}}
					}
					tb.Allocate(fwA, r, t0, c)
				}
				res := tb.Cycle(p, seed, t0, c)
				if _, isLiar := p.(liar); isLiar && len(res.Rejected) == 0 {
					t.Fatal("the liar's placements were all accepted")
				}
				checkUsage(t, tb)
				for _, a := range tb.allocs {
					if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED && !Matches(tb.agents[a.GetAgentId()].GetLabels(), a.GetConstraints()) {
						t.Fatalf("allocation %s on %s breaks its constraints", a.GetId(), a.GetAgentId())
					}
				}
			})
		}
	}
}

type failing struct{}

func (failing) Name() string                       { return "failing" }
func (failing) Place(*Snapshot) (*Decision, error) { return nil, fmt.Errorf("boom") }

// preemptor places the first request on agent 0 after revoking every
// allocation there.
type preemptor struct{}

func (preemptor) Name() string { return "preemptor" }
func (preemptor) Place(s *Snapshot) (*Decision, error) {
	d := &Decision{Placements: []Placement{{Request: 0, Agent: 0}}}
	for i, g := range s.Allocations {
		if g.Agent == 0 {
			d.Revocations = append(d.Revocations, i)
		}
	}
	return d, nil
}

func TestCycle_Preemption(t *testing.T) {
	tb := cluster(t, agentReq(1, 1024, nil))
	low, _ := allocate(tb, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: mi}, Priority: 1, Role: "batch"})
	task, _ := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: low[0].GetId(), Command: "x"}, t0, newChanges())
	// A same-priority request may not preempt.
	c := newChanges()
	same := tb.Allocate(fwB, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: mi}, Priority: 1}, t0, c)
	res := tb.Cycle(preemptor{}, 1, t0, c)
	if res.Preempted != 0 || len(res.Rejected) == 0 || low[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("same priority: preempted %d, rejected %v", res.Preempted, res.Rejected)
	}
	tb.Revoke(fwB, same[0].GetId(), "", t0, newChanges())
	// A higher-priority one may.
	c = newChanges()
	high := tb.Allocate(fwB, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: mi}, Priority: 5, Role: "web"}, t0, c)
	s := tb.Snapshot(1)
	if len(s.Roles) != 2 || s.Roles[0].Name != "batch" || s.Roles[0].Usage.MilliCPU != 1000 || s.Roles[1].Weight != 1 || len(s.Allocations) != 1 {
		t.Fatalf("snapshot roles %+v allocations %+v", s.Roles, s.Allocations)
	}
	res = tb.Cycle(preemptor{}, 1, t0, c)
	if res.Preempted != 1 || high[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("preempted %d, high %v, rejected %v", res.Preempted, high[0].GetState(), res.Rejected)
	}
	var revoked, killed bool
	for _, e := range c.Events {
		if e.GetKind() == pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED && e.GetAllocation().GetId() == low[0].GetId() {
			revoked = strings.HasPrefix(e.GetReason(), "PREEMPTED")
		}
		if e.GetKind() == pb.EventKind_EVENT_KIND_TASK_STATE && e.GetTask().GetId() == task.GetId() {
			killed = e.GetTask().GetState() == pb.TaskState_TASK_STATE_KILLED
		}
	}
	if !revoked || !killed {
		t.Fatalf("revoked %v killed %v", revoked, killed)
	}
	checkUsage(t, tb)
}

func TestCycle_PolicyError(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil))
	c := newChanges()
	as := tb.Allocate(fwA, allocReq(1, 64, 1), t0, c)
	res := tb.Cycle(failing{}, 1, t0, c)
	if res.Err == nil || as[0].GetState() != pb.AllocationState_ALLOCATION_STATE_PENDING || as[0].GetPendingReason() != "policy failed: policy failing: boom" {
		t.Fatalf("err %v state %v reason %q", res.Err, as[0].GetState(), as[0].GetPendingReason())
	}
}

// bigTable has n agents of 64 cpus / 256 GiB and r pending 1-cpu requests.
func bigTable(n, r int) *Table {
	tb := NewTable()
	tb.SetClusterCIDR(netip.MustParsePrefix("10.0.0.0/8")) // room for 65,536 agents
	c := newChanges()
	for i := 0; i < n; i++ {
		tb.Register(ops, &pb.RegisterAgentRequest{Resources: &pb.Resources{Cpus: 64, MemBytes: 256 << 30},
			Labels: map[string]string{"zone": fmt.Sprint(i % 3)}}, t0, c)
	}
	for i := 0; i < r; i++ {
		tb.Allocate(fwA, allocReq(1, 1024, 1), t0, c)
	}
	return tb
}

// BenchmarkCycle_FirstFit: one allocation cycle, 10,000 agents × 1,000
// pending single-instance requests, native first-fit, including snapshot,
// validation and the table updates (not the store commit).
func BenchmarkCycle_FirstFit(b *testing.B) {
	const agents, reqs = 10_000, 1_000
	b.ReportAllocs()
	placed := 0
	for b.Loop() {
		b.StopTimer()
		tb := bigTable(agents, reqs)
		c := newChanges()
		b.StartTimer()
		res := tb.Cycle(FirstFit{}, 1, t0, c)
		placed += res.Placed
		if res.Placed != reqs {
			b.Fatalf("placed %d of %d", res.Placed, reqs)
		}
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
}

// BenchmarkCycle_Spread is the same with agents nearly full, so first-fit
// must scan: every agent has room for exactly one request, the worst case
// for the scan.
func BenchmarkCycle_FirstFitScattered(b *testing.B) {
	const agents, reqs = 10_000, 1_000
	placed := 0
	for b.Loop() {
		b.StopTimer()
		tb := bigTable(agents, 0)
		c := newChanges()
		// Fill each agent but one cpu, from the front, so the free agents
		// are at the end.
		for i := 0; i < agents; i++ {
			tb.Allocate(fwA, allocReq(63, 1024, 1), t0, c)
		}
		tb.Cycle(FirstFit{}, 1, t0, c)
		for i := 0; i < agents-reqs; i++ {
			tb.Allocate(fwA, allocReq(1, 1024, 1), t0, c)
		}
		tb.Cycle(FirstFit{}, 1, t0, c)
		for i := 0; i < reqs; i++ {
			tb.Allocate(fwA, allocReq(1, 1024, 1), t0, c)
		}
		b.StartTimer()
		res := tb.Cycle(FirstFit{}, 1, t0, c)
		placed += res.Placed
		if res.Placed != reqs {
			b.Fatalf("placed %d of %d", res.Placed, reqs)
		}
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
}

// TestMemoryPer100kTasks reports the heap a table holds for 100,000
// running tasks (with their agents and allocations). Figures go to
// docs/benchmarks.md; the test fails only on an absurd figure (a leak of
// whole snapshots per task would exceed it by orders of magnitude).
func TestMemoryPer100kTasks(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 100k-task memory measurement")
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	tb := bigTable(1_000, 0)
	c := newChanges()
	as := tb.Allocate(fwA, allocReq(0.5, 256, 100_000), t0, c)
	tb.Cycle(FirstFit{}, 1, t0, c)
	for _, a := range as {
		k, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: a.GetId(), Command: "/usr/bin/server", Args: []string{"--port", "8080"},
			Env: map[string]string{"ROLE": "web"}}, t0, newChanges())
		if err != nil {
			t.Fatal(err)
		}
		tb.Report(ops, &pb.ReportTaskStatusRequest{TaskId: k.GetId(), AgentId: k.GetAgentId(), State: pb.TaskState_TASK_STATE_RUNNING, Pid: 1234, Sandbox: "/var/lib/dcos/agent/sandboxes/" + k.GetId()}, t0, newChanges())
	}
	c = nil
	after := heap()
	runtime.KeepAlive(tb)
	per := float64(after-before) / 100_000
	t.Logf("kernel heap for 100,000 tasks (+100,000 allocations, 1,000 agents): %.1f MiB, %.0f bytes per task", float64(after-before)/(1<<20), per)
	if per > 64<<10 {
		t.Fatalf("%.0f bytes per task", per)
	}
}

func TestTable_SnapshotRoles(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil))
	tb.SetRoles(map[string]RoleConfig{"web": {Weight: 3, Quota: Resources{MilliCPU: 2000}}})
	allocate(tb, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: mi}, Role: "web"})
	c := newChanges()
	tb.Allocate(fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 100, MemBytes: mi}, Role: "batch"}, t0, c)
	s := tb.Snapshot(1)
	if len(s.Roles) != 2 {
		t.Fatalf("roles %+v", s.Roles)
	}
	batch, web := s.Roles[0], s.Roles[1]
	if web.Name != "web" || web.Weight != 3 || web.Quota.MilliCPU != 2000 || web.Usage.MilliCPU != 1000 {
		t.Errorf("web: %+v", web)
	}
	if batch.Name != "batch" || batch.Weight != 1 || !batch.Quota.IsZero() || !batch.Usage.IsZero() {
		t.Errorf("batch (pending only, unconfigured): %+v", batch)
	}
}
