package kernel

import (
	"fmt"
	"strings"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func gangReq(cpus float64, memMi int64, count, min int32) *pb.AllocateRequest {
	r := allocReq(cpus, memMi, count)
	r.Gang = &pb.Gang{MinCount: min}
	return r
}

func TestValidateAllocate_Gang(t *testing.T) {
	for _, tc := range []struct {
		count, min int32
		bad        bool
	}{{20, 0, false}, {20, 1, false}, {20, 20, false}, {0, 1, false}, {20, 21, true}, {20, -1, true}, {0, 2, true}} {
		err := ValidateAllocate(gangReq(1, 64, tc.count, tc.min))
		if (err != nil) != tc.bad {
			t.Fatalf("count %d min %d: %v", tc.count, tc.min, err)
		}
		if tc.bad && !strings.Contains(err.Error(), "gang.min_count: must be between 0 and count") {
			t.Fatalf("count %d min %d: error %q does not name gang.min_count", tc.count, tc.min, err)
		}
	}
}

// partial places only the first half (rounded down) of each group's
// requests, and every ordinary request: a policy that ignores gangs.
type partial struct{}

func (partial) Name() string { return "partial" }
func (partial) Place(s *Snapshot) (*Decision, error) {
	n := map[string]int{}
	for _, r := range s.Requests {
		n[r.RequestID]++
	}
	seen := map[string]int{}
	d, next := &Decision{}, 0
	for i, r := range s.Requests {
		seen[r.RequestID]++
		if r.GangMin > 0 && seen[r.RequestID] > n[r.RequestID]/2 {
			continue
		}
		for a := range s.Agents { // first agent with room, spreading round-robin
			ai := (next + a) % len(s.Agents)
			if s.Agents[ai].Free.Fits(r.Resources) {
				d.Placements = append(d.Placements, Placement{Request: i, Agent: ai})
				next = ai + 1
				break
			}
		}
	}
	return d, nil
}

// TestGang_PartialAnswerRefused: a policy that answers half a gang gets
// none of it granted, and Rejected names the gang; its ordinary
// placements stand.
func TestGang_PartialAnswerRefused(t *testing.T) {
	tb := cluster(t, agentReq(64, 64<<10, nil), agentReq(64, 64<<10, nil))
	c := newChanges()
	gang := tb.Allocate(fwA, gangReq(1, 64, 6, 0), t0, c)
	plain := tb.Allocate(fwA, allocReq(1, 64, 1), t0, c)
	res := tb.Cycle(partial{}, 1, t0, c)
	if g, _ := states(gang); g != 0 {
		t.Fatalf("%d of the gang granted from a partial answer", g)
	}
	if g, _ := states(plain); g != 1 {
		t.Fatal("the ordinary request was not granted")
	}
	want := fmt.Sprintf("gang %s: 3 of min 6 placed; a gang is granted whole or not at all", gang[0].GetRequestId())
	if len(res.Rejected) != 1 || res.Rejected[0] != want {
		t.Fatalf("rejected %q, want [%q]", res.Rejected, want)
	}
	checkUsage(t, tb)

	// min_count 3: the same answer starts it.
	c = newChanges()
	g2 := tb.Allocate(fwA, gangReq(1, 64, 6, 3), t0, c)
	res = tb.Cycle(partial{}, 2, t0, c)
	if g, p := states(g2); g != 3 || p != 3 {
		t.Fatalf("gang min 3: %d granted, %d pending; want 3 and 3", g, p)
	}
	for _, a := range g2 {
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_PENDING && a.GetGangMin() != 0 {
			t.Fatalf("started gang: pending %s still has gang_min %d", a.GetId(), a.GetGangMin())
		}
		if c.Allocations[a.GetId()] == nil {
			t.Fatalf("%s not in the cycle's changes", a.GetId())
		}
	}
	if g, _ := states(gang); g != 0 {
		t.Fatal("the first gang was granted partly")
	}
}

// TestGang_FirstFitWholeOrNothing: a gang that does not fit holds
// nothing (an ordinary request after it is placed), says what it misses,
// and one with min_count starts with what fits; its rest then waits as
// ordinary requests, granted one by one.
func TestGang_FirstFitWholeOrNothing(t *testing.T) {
	tb := cluster(t, agentReq(4, 4096, nil), agentReq(4, 4096, nil), agentReq(4, 4096, nil))
	big, _ := allocate(tb, fwA, gangReq(1, 64, 20, 0))
	if g, _ := states(big); g != 0 {
		t.Fatalf("%d of a gang of 20 granted on 12 cpus", g)
	}
	if why, want := big[0].GetPendingReason(), "gang of 20 (min 20): 12 fit now; insufficient cpus on 3 agents"; why != want {
		t.Fatalf("pending reason %q, want %q", why, want)
	}
	one, _ := allocate(tb, fwA, allocReq(1, 64, 1))
	if g, _ := states(one); g != 1 {
		t.Fatal("a waiting gang held the room an ordinary request needed")
	}
	half, _ := allocate(tb, fwA, gangReq(1, 64, 20, 10))
	if g, _ := states(half); g != 11 {
		t.Fatalf("gang of 20 min 10 on 11 free cpus: %d granted, want 11", g)
	}
	for _, a := range half {
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_PENDING && a.GetGangMin() != 0 {
			t.Fatal("the rest of a started gang is still marked")
		}
	}
	if why := big[0].GetPendingReason(); !strings.HasPrefix(why, "gang of 20 (min 20): 0 fit now;") {
		t.Fatalf("pending reason after the cluster filled: %q", why)
	}
	// Revoke one instance of the started gang: its pending rest takes the
	// room one at a time, the big gang still waits.
	var victim string
	for _, a := range half {
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
			victim = a.GetId()
			break
		}
	}
	c := newChanges()
	if err := tb.Revoke(fwA, victim, "", t0, c); err != nil {
		t.Fatal(err)
	}
	tb.Cycle(FirstFit{}, 3, t0, c)
	if g, _ := states(half); g != 11 {
		t.Fatalf("after one revoke: %d granted, want 11 (10 + one of the rest)", g)
	}
	if g, _ := states(big); g != 0 {
		t.Fatal("the big gang was granted partly")
	}
	checkUsage(t, tb)
}

// TestGang_RevocationForDroppedGangRefused: a preemption justified only
// by a partial gang's placement goes with it.
func TestGang_RevocationForDroppedGangRefused(t *testing.T) {
	s := &Snapshot{
		Agents: []AgentInfo{{ID: "agent-1", Total: Resources{MilliCPU: 2000, Mem: 1 << 30}, Free: Resources{}}},
		Requests: []Request{
			{ID: "a-2", RequestID: "r-2", Priority: 10, Resources: Resources{MilliCPU: 1000, Mem: 1 << 20}, GangMin: 2},
			{ID: "a-3", RequestID: "r-2", Priority: 10, Resources: Resources{MilliCPU: 1000, Mem: 1 << 20}, GangMin: 2},
		},
		Allocations: []Granted{{ID: "a-1", Agent: 0, Priority: 0, Resources: Resources{MilliCPU: 1000, Mem: 1 << 20}}},
	}
	j := Judge(s, &Decision{Revocations: []int{0}, Placements: []Placement{{Request: 0, Agent: 0}}})
	if len(j.Placements) != 0 || len(j.Revocations) != 0 {
		t.Fatalf("accepted %v and revocations %v of a partial gang", j.Placements, j.Revocations)
	}
	if len(j.Rejected) != 2 || !strings.HasPrefix(j.Rejected[0], "gang r-2: 1 of min 2 placed") {
		t.Fatalf("rejected %q", j.Rejected)
	}
}

// TestGang_ABIWorkedExample is docs/policy-abi.md's worked example, with
// first fit: both variants of it, and the kernel's answer to a policy
// that also places the partial gang.
func TestGang_ABIWorkedExample(t *testing.T) {
	cpu := func(n int64) Resources { return Resources{MilliCPU: n * 1000, Mem: 1 << 20} }
	snap := func(free0 int64) *Snapshot {
		s := &Snapshot{Agents: []AgentInfo{
			{ID: "agent-1", Total: Resources{MilliCPU: 4000, Mem: 1 << 30}, Free: Resources{MilliCPU: free0 * 1000, Mem: 1 << 30}},
			{ID: "agent-2", Total: Resources{MilliCPU: 4000, Mem: 1 << 30}, Free: Resources{MilliCPU: 4000, Mem: 1 << 30}},
		}}
		add := func(group string, n int, res Resources, min int32) {
			for range n {
				s.Requests = append(s.Requests, Request{ID: fmt.Sprintf("a-%d", len(s.Requests)), RequestID: group, Resources: res, GangMin: min})
			}
		}
		add("r-0", 6, cpu(1), 6)
		add("r-1", 3, Resources{MilliCPU: 2000, Mem: 1}, 2)
		add("r-2", 1, cpu(1), 0)
		return s
	}
	placements := func(d *Decision) string {
		var out []string
		for _, p := range d.Placements {
			out = append(out, fmt.Sprintf("(%d,%d)", p.Request, p.Agent))
		}
		return strings.Join(out, " ")
	}
	s := snap(4)
	d, _ := FirstFit{}.Place(s)
	if got, want := placements(d), "(0,0) (1,0) (2,0) (3,0) (4,1) (5,1) (9,1)"; got != want {
		t.Fatalf("first fit: %s, want %s", got, want)
	}
	// A policy that also places request 6, before 9: 9 no longer fits
	// until the kernel drops the partial gang and judges again.
	d.Placements = append(d.Placements[:6:6], Placement{Request: 6, Agent: 1}, d.Placements[6])
	j := Judge(s, d)
	if len(j.Placements) != 7 || j.Placed[6] || len(j.Rejected) != 1 || !strings.HasPrefix(j.Rejected[0], "gang r-1: 1 of min 2 placed") {
		t.Fatalf("the kernel on a partial gang: %v, rejected %q", j.Placements, j.Rejected)
	}
	d, _ = FirstFit{}.Place(snap(1))
	if got, want := placements(d), "(6,1) (7,1) (9,0)"; got != want {
		t.Fatalf("first fit, agent 0 with 1 cpu: %s, want %s", got, want)
	}
}
