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
	free := make([]Resources, len(s.Agents))
	for i, a := range s.Agents {
		free[i] = a.Free
	}
	out := make([]Placement, 0, len(s.Requests))
	start := 0 // agents before start cannot fit any request (all need > 0 of something they lack)
	q := newQuotas(s, nil)
	place := func(ri int) bool {
		r := s.Requests[ri]
		if q.over(r.Role, r.Resources) != nil {
			return false
		}
		for ai := start; ai < len(free); ai++ {
			if !free[ai].Fits(r.Resources) {
				if ai == start && exhausted(free[ai]) {
					start++
				}
				continue
			}
			if len(r.Constraints) > 0 && !Matches(s.Agents[ai].Labels, r.Constraints) {
				continue
			}
			free[ai] = free[ai].Sub(r.Resources)
			q.take(r.Role, r.Resources)
			out = append(out, Placement{Request: ri, Agent: ai})
			return true
		}
		return false
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
			place(ri)
			continue
		}
		members, first := gangs[r.RequestID]
		if !first {
			continue // placed (or not) with its gang's first request
		}
		delete(gangs, r.RequestID)
		mark, startWas, usageWas := len(out), start, q.usage[r.Role]
		for _, m := range members {
			place(m)
		}
		if int32(len(out)-mark) >= r.GangMin {
			continue
		}
		for _, pl := range out[mark:] { // undo: the gang holds nothing while it waits
			free[pl.Agent] = free[pl.Agent].Add(s.Requests[pl.Request].Resources)
		}
		out, start = out[:mark], startWas
		if _, capped := q.quota[r.Role]; capped {
			q.usage[r.Role] = usageWas
		}
	}
	return &Decision{Placements: out}, nil
}

// exhausted reports whether an agent has no cpu or no memory left: every
// valid request asks for some of both, so it can take none.
func exhausted(r Resources) bool { return r.MilliCPU <= 0 || r.Mem <= 0 }
