package gang

import (
	"slices"
	"testing"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

// firstFit places requests in order on the first agent with room.
func firstFit(b *policy.Batch, d *policy.Decision) error {
	free := make([]policy.Resources, len(b.Agents))
	for i := range b.Agents {
		free[i] = b.Agents[i].Free
	}
	for ri := range b.Requests {
		for ai := range free {
			if free[ai].Fits(b.Requests[ri].Resources) {
				free[ai] = free[ai].Sub(b.Requests[ri].Resources)
				d.Place(ri, ai)
				break
			}
		}
	}
	return nil
}

func batch(agentCPUs []int64, reqs ...[3]int64) *policy.Batch {
	b := &policy.Batch{}
	for _, c := range agentCPUs {
		r := policy.Resources{MilliCPU: c * 1000, Mem: 1 << 30}
		b.Agents = append(b.Agents, policy.Agent{Total: r, Free: r})
	}
	for g, q := range reqs { // {instances, cpus each, gang min}
		for range q[0] {
			b.Requests = append(b.Requests, policy.Request{Resources: policy.Resources{MilliCPU: q[1] * 1000, Mem: 1}, Group: uint32(g), GangMin: uint32(q[2]), Role: policy.NoRole})
		}
	}
	return b
}

func placed(d *policy.Decision) []uint32 {
	var out []uint32
	for _, p := range d.Placements {
		out = append(out, p.Request)
	}
	slices.Sort(out)
	return out
}

// TestPlace: a gang that does not fit is left out, NotNow, and the
// requests after it take its room; one that fits is placed whole; a
// batch without gangs is f's answer as is.
func TestPlace(t *testing.T) {
	// 6 cpus: gang 0 (4 × 1, min 4) fits; gang 1 (3 × 1, min 3) gets 2 of
	// 3 and is left out; request 7 (2 cpus) takes the room.
	b := batch([]int64{3, 3}, [3]int64{4, 1, 4}, [3]int64{3, 1, 3}, [3]int64{1, 2, 0})
	var d policy.Decision
	if err := Place(b, &d, firstFit); err != nil {
		t.Fatal(err)
	}
	if got, want := placed(&d), []uint32{0, 1, 2, 3, 7}; !slices.Equal(got, want) {
		t.Fatalf("placed %v, want %v", got, want)
	}
	var out []uint32
	for _, u := range d.Unplaced {
		if u.Verdict != policy.NotNow {
			t.Fatalf("unplaced %d with verdict %v", u.Request, u.Verdict)
		}
		out = append(out, u.Request)
	}
	if want := []uint32{4, 5, 6}; !slices.Equal(out, want) {
		t.Fatalf("unplaced %v, want %v", out, want)
	}
	// min 2 of 3: the same gang starts with 2.
	b = batch([]int64{3, 3}, [3]int64{4, 1, 4}, [3]int64{3, 1, 2}, [3]int64{1, 2, 0})
	d.Reset()
	if err := Place(b, &d, firstFit); err != nil {
		t.Fatal(err)
	}
	if got, want := placed(&d), []uint32{0, 1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Fatalf("min 2: placed %v, want %v", got, want)
	}
	// Without gangs, f is called once on b itself.
	b = batch([]int64{1}, [3]int64{3, 1, 0})
	calls := 0
	d.Reset()
	if err := Place(b, &d, func(bb *policy.Batch, dd *policy.Decision) error {
		calls++
		if bb != b {
			t.Fatal("a batch without gangs was copied")
		}
		return firstFit(bb, dd)
	}); err != nil || calls != 1 || len(d.Placements) != 1 {
		t.Fatalf("no gangs: err %v, %d calls, %d placed", err, calls, len(d.Placements))
	}
}
