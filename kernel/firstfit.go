package kernel

// FirstFit is the reference policy: each request, in snapshot order, goes
// to the first agent (in snapshot order) with room that satisfies its
// constraints, unless placing it would take its role past its quota (it
// is skipped, and later requests of other roles are still placed). It is
// native Go, deterministic, and the correctness oracle and benchmark
// baseline for WASM policies.
type FirstFit struct{}

var _ Policy = FirstFit{}

// Name returns "first-fit".
func (FirstFit) Name() string { return "first-fit" }

// Place implements Policy. It keeps a running copy of free resources so a
// batch never over-commits an agent. Agents that are full for the smallest
// request seen are skipped by a moving start index, so a cluster filling up
// in order costs O(agents + requests) rather than O(agents × requests).
//
// A gang (requests sharing a RequestID with GangMin > 0) is placed at its
// first request, all its requests in order, tentatively: if fewer than
// GangMin fit, those placements are undone (their room and quota given
// back) and the requests after it are placed as if it were not there.
func (FirstFit) Place(s *Snapshot) (*Decision, error) {
	f := firstFit{s: s, free: make([]Resources, len(s.Agents)), out: make([]Placement, 0, len(s.Requests)), q: newQuotas(s, nil)}
	for i, a := range s.Agents {
		f.free[i] = a.Free
	}
	var gangs map[string][]int // each gang's requests, in order
	for ri, r := range s.Requests {
		if r.GangMin > 0 {
			if gangs == nil {
				gangs = map[string][]int{}
			}
			gangs[r.RequestID] = append(gangs[r.RequestID], ri)
		}
	}
	for ri, r := range s.Requests {
		if r.GangMin == 0 {
			f.place(ri)
			continue
		}
		members, first := gangs[r.RequestID]
		if !first {
			continue // placed (or not) with its gang's first request
		}
		delete(gangs, r.RequestID)
		mark, startWas, usageWas := len(f.out), f.start, f.q.usage[r.Role]
		for _, m := range members {
			f.place(m)
		}
		if int32(len(f.out)-mark) >= r.GangMin {
			continue
		}
		for _, pl := range f.out[mark:] { // undo: the gang holds nothing while it waits
			f.free[pl.Agent] = f.free[pl.Agent].Add(s.Requests[pl.Request].Resources)
		}
		f.out, f.start = f.out[:mark], startWas
		if _, capped := f.q.quota[r.Role]; capped {
			f.q.usage[r.Role] = usageWas
		}
	}
	return &Decision{Placements: f.out}, nil
}

// firstFit is one FirstFit.Place call's running state.
type firstFit struct {
	s     *Snapshot
	free  []Resources // each agent's room left
	out   []Placement
	start int // agents before start cannot fit any request (all need > 0 of something they lack)
	q     quotas
}

// place puts request ri on the first agent from start with room that its
// constraints admit, within its role's quota, and reports whether it did.
func (f *firstFit) place(ri int) bool {
	r := &f.s.Requests[ri]
	if f.q.over(r.Role, r.Resources) != nil {
		return false
	}
	for ai := f.start; ai < len(f.free); ai++ {
		if !f.free[ai].Fits(r.Resources) {
			if ai == f.start && exhausted(f.free[ai]) {
				f.start++
			}
			continue
		}
		if len(r.Constraints) > 0 && !Matches(f.s.Agents[ai].Labels, r.Constraints) {
			continue
		}
		f.free[ai] = f.free[ai].Sub(r.Resources)
		f.q.take(r.Role, r.Resources)
		f.out = append(f.out, Placement{Request: ri, Agent: ai})
		return true
	}
	return false
}

// exhausted reports whether an agent has no cpu or no memory left: every
// valid request asks for some of both, so it can take none.
func exhausted(r Resources) bool { return r.MilliCPU <= 0 || r.Mem <= 0 }
