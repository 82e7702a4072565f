package kernel_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/plugins/policies"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestGang_RandomRounds is issue 18's done-when for gangs, at the Table
// level (Table.Allocate, Table.Cycle, Table.Revoke: what the kernel loop
// runs, without etcd, so that 1,000 rounds per policy cost seconds): for
// native first fit and every built-in module in real wazero, random
// clusters get random gangs (some with min_count < count) and ordinary
// requests totalling about twice their capacity; each round is one cycle,
// after which granted allocations whose random lifetime is over finish
// (are revoked). It asserts that a gang is never granted partly (its first
// grants, all in one cycle, are at least its minimum), that a started
// gang's rest is unmarked, that no agent is over-committed, and that
// every gang and request is eventually granted (no deadlock) within a
// bound of rounds. The gang-blind policy (first fit ignoring gangs)
// shows the kernel alone refusing partial gangs.
func TestGang_RandomRounds(t *testing.T) {
	t.Parallel()
	h := newWasmHost(t)
	pols := []kernel.Policy{kernel.FirstFit{}, &blind{}}
	for _, n := range policies.Names() {
		mod, _ := policies.Builtin(n)
		p, err := h.LoadTrusted(context.Background(), n, mod)
		if err != nil {
			t.Fatal(err)
		}
		pols = append(pols, p)
	}
	for _, p := range pols {
		t.Run(p.Name(), func(t *testing.T) {
			rounds, gangs := 0, 0
			for seed := uint64(1); rounds < 1000; seed++ {
				r, g := gangScenario(t, p, seed)
				rounds, gangs = rounds+r, gangs+g
			}
			t.Logf("%s: %d rounds, %d gangs, all run", p.Name(), rounds, gangs)
			if b, ok := p.(*blind); ok && b.partial == 0 {
				t.Fatal("the gang-blind policy never answered a partial gang: the test proves nothing")
			}
		})
	}
}

type gangInfo struct {
	min     int32
	allocs  []*pb.Allocation
	started bool
}

// gangScenario runs one random cluster until everything asked for was
// granted; it returns the rounds it took and the number of gangs.
func gangScenario(t *testing.T, p kernel.Policy, seed uint64) (rounds, ngangs int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x9a29))
	now := time.Unix(1_700_000_000, 0)
	tb := kernel.NewTable()
	c := kernel.NewChangesForTest()
	var agents []kernel.Resources
	var capCPU int64
	for range 2 + rng.IntN(5) {
		cpus, memGi := 2+rng.IntN(7), 2+rng.IntN(7)
		agents = append(agents, kernel.Resources{MilliCPU: int64(cpus) * 1000, Mem: int64(memGi) << 30})
		capCPU += int64(cpus) * 1000
		if _, err := tb.Register(ops, &pb.RegisterAgentRequest{Hostname: "h", Labels: map[string]string{"zone": fmt.Sprint("abc"[rng.IntN(3)])},
			Resources: &pb.Resources{Cpus: float64(cpus), MemBytes: int64(memGi) << 30}}, now, c); err != nil {
			t.Fatal(err)
		}
	}
	gangs := map[string]*gangInfo{}
	var plain []*pb.Allocation
	ask := func(demand int64) {
		for asked := int64(0); asked < demand; {
			res := &pb.Resources{Cpus: float64(1+rng.IntN(4)) / 2, MemBytes: int64(1+rng.IntN(4)) << 28}
			r := &pb.AllocateRequest{Resources: res, Role: []string{"", "a", "b"}[rng.IntN(3)], Priority: int32(rng.IntN(3))}
			if rng.IntN(4) == 0 { // an ordinary request
				r.Count = int32(1 + rng.IntN(3))
				plain = append(plain, tb.Allocate(fwA, r, now, c)...)
				asked += int64(r.Count) * int64(res.Cpus*1000)
				continue
			}
			r.Count = int32(1 + rng.IntN(12))
			// The gang's minimum must fit the empty cluster, or it could
			// never run: shrink it until first fit finds room for it.
			for r.Count > 1 && fitsEmpty(agents, kernel.FromProto(res)) < int(r.Count) {
				r.Count--
			}
			if fitsEmpty(agents, kernel.FromProto(res)) < 1 {
				continue
			}
			min := r.Count
			if rng.IntN(3) == 0 {
				min = int32(1 + rng.IntN(int(r.Count)))
			}
			r.Gang = &pb.Gang{MinCount: min}
			if min == r.Count && rng.IntN(2) == 0 {
				r.Gang.MinCount = 0 // all of count
			}
			if err := kernel.ValidateAllocate(r); err != nil {
				t.Fatal(err)
			}
			as := tb.Allocate(fwA, r, now, c)
			gangs[as[0].GetRequestId()] = &gangInfo{min: min, allocs: as}
			ngangs++
			asked += int64(r.Count) * int64(res.Cpus*1000)
		}
	}
	ask(2 * capCPU)
	ends := map[string]int{} // granted allocation → the round it finishes
	const bound = 400
	for rounds = 1; ; rounds++ {
		if rounds == 3 {
			ask(capCPU / 2) // a second wave, while the first runs
		}
		was := map[*pb.Allocation]pb.AllocationState{}
		for _, g := range gangs {
			for _, a := range g.allocs {
				was[a] = a.GetState()
			}
		}
		tb.Cycle(p, seed*1000+uint64(rounds), now, c)
		for id, g := range gangs {
			var granted int32
			for _, a := range g.allocs {
				if was[a] == pb.AllocationState_ALLOCATION_STATE_PENDING && a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
					granted++
				}
			}
			switch {
			case g.started || granted == 0:
			case granted < g.min:
				t.Fatalf("seed %d round %d: gang %s granted %d of min %d", seed, rounds, id, granted, g.min)
			default:
				g.started = true
				for _, a := range g.allocs {
					if a.GetState() == pb.AllocationState_ALLOCATION_STATE_PENDING && a.GetGangMin() != 0 {
						t.Fatalf("seed %d round %d: gang %s started but %s still has gang_min %d", seed, rounds, id, a.GetId(), a.GetGangMin())
					}
				}
			}
		}
		for _, a := range tb.Agents() {
			if !kernel.FromProto(a.GetTotal()).Fits(kernel.FromProto(a.GetAllocated())) {
				t.Fatalf("seed %d round %d: %s over-committed: %v of %v", seed, rounds, a.GetId(), a.GetAllocated(), a.GetTotal())
			}
		}
		// Work ends: every granted allocation lives 1-4 rounds.
		done := true
		for _, a := range tb.Allocations(ops, "") {
			switch a.GetState() {
			case pb.AllocationState_ALLOCATION_STATE_PENDING:
				done = false
			case pb.AllocationState_ALLOCATION_STATE_GRANTED:
				done = false
				end, ok := ends[a.GetId()]
				if !ok {
					ends[a.GetId()] = rounds + 1 + rng.IntN(4)
				} else if end <= rounds {
					if err := tb.Revoke(fwA, a.GetId(), "finished", now, c); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		if done {
			break
		}
		if rounds == bound {
			for id, g := range gangs {
				if !g.started {
					t.Errorf("gang %s (min %d) never ran: %s", id, g.min, g.allocs[0].GetPendingReason())
				}
			}
			t.Fatalf("seed %d: work left after %d rounds (deadlock?)", seed, bound)
		}
	}
	for id, g := range gangs {
		if !g.started {
			t.Fatalf("seed %d: gang %s never started", seed, id)
		}
	}
	_ = plain
	return rounds, ngangs
}

// blind is first fit that ignores gangs: it answers partial gangs, which
// the kernel must refuse.
type blind struct{ partial int }

func (*blind) Name() string { return "gang-blind" }
func (b *blind) Place(s *kernel.Snapshot) (*kernel.Decision, error) {
	cp := *s
	cp.Requests = append([]kernel.Request(nil), s.Requests...)
	for i := range cp.Requests {
		cp.Requests[i].GangMin = 0
	}
	d, err := kernel.FirstFit{}.Place(&cp)
	if err != nil {
		return nil, err
	}
	n := map[string]int32{}
	for _, pl := range d.Placements {
		if r := s.Requests[pl.Request]; r.GangMin > 0 {
			n[r.RequestID]++
		}
	}
	for _, r := range s.Requests {
		if k, ok := n[r.RequestID]; ok && k < r.GangMin {
			b.partial++
			delete(n, r.RequestID)
		}
	}
	return d, nil
}

// fitsEmpty counts the instances of need first fit puts on the empty
// agents.
func fitsEmpty(agents []kernel.Resources, need kernel.Resources) int {
	n := 0
	for _, a := range agents {
		for a.Fits(need) {
			a = a.Sub(need)
			n++
		}
	}
	return n
}
