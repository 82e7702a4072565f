package kernel

import (
	"fmt"
	"slices"
	"strings"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Gangs (AllocateRequest.gang): the instances of one Allocate call that
// the kernel grants at least GangMin together in one cycle, or not at all.
// The pending instances of a gang that has not started carry GangMin (in
// Allocation.gang_min); the cycle that starts it clears the mark on those
// still pending, which are ordinary requests from then on.

// validateGang checks AllocateRequest.gang: min_count 0 (all of count) or
// 1 to count.
func validateGang(r *pb.AllocateRequest) error {
	g := r.GetGang()
	if g == nil {
		return nil
	}
	n := max(r.GetCount(), 1)
	if m := g.GetMinCount(); m < 0 || m > n {
		return fieldError("gang.min_count", "must be between 0 and count (%d), got %d (0 means all of count)", n, m)
	}
	return nil
}

// gangMin is the gang minimum a valid request's instances carry: 0 when it
// is not a gang, else min_count with 0 resolved to count.
func gangMin(r *pb.AllocateRequest) int32 {
	g := r.GetGang()
	if g == nil {
		return 0
	}
	if m := g.GetMinCount(); m > 0 {
		return m
	}
	return max(r.GetCount(), 1)
}

// Judge checks a decision against its snapshot without changing anything.
//
// A revocation is accepted only on an agent where the decision places, and
// the kernel accepts, a request of strictly higher priority; the room it
// frees counts for the placements. Every placement must name a request
// once, an agent, satisfy the request's constraints, fit in what is left
// on the agent, and keep its role within every capped dimension of its
// quota (the role's usage less the accepted revocations of its
// allocations, plus the placements accepted before it).
//
// Gangs: a gang (requests sharing a RequestID with GangMin > 0) with
// fewer than GangMin accepted placements has all its placements dropped,
// each such gang reported once in Rejected ("gang r-7: 3 of min 5 placed;
// a gang is granted whole or not at all"), and the rest is judged again:
// the room the dropped placements took is free for the others, and a
// revocation that only they justified is refused. That repeats until no
// gang is partial (each round drops at least one gang for good), so
// whatever a policy answers, no partial gang is ever accepted.
func Judge(s *Snapshot, d *Decision) *Judgement {
	j := judgeValid(s, d)
	if !hasGangs(s) {
		return j
	}
	var rejected []string
	dropped := map[string]bool{}
	for {
		placed := map[string]int32{}
		for _, pl := range j.Placements {
			if r := s.Requests[pl.Request]; r.GangMin > 0 {
				placed[r.RequestID]++
			}
		}
		var partial []string // in snapshot order, for a deterministic report
		for _, r := range s.Requests {
			if k, ok := placed[r.RequestID]; ok && r.GangMin > 0 && k < r.GangMin && !dropped[r.RequestID] {
				dropped[r.RequestID] = true
				partial = append(partial, r.RequestID)
				rejected = append(rejected, fmt.Sprintf("gang %s: %d of min %d placed; a gang is granted whole or not at all", r.RequestID, k, r.GangMin))
			}
		}
		if len(partial) == 0 {
			j.Rejected = append(rejected, j.Rejected...)
			return j
		}
		keep := &Decision{Revocations: d.Revocations, Never: d.Never}
		for _, pl := range d.Placements {
			if pl.Request >= 0 && pl.Request < len(s.Requests) && dropped[s.Requests[pl.Request].RequestID] && s.Requests[pl.Request].GangMin > 0 {
				continue
			}
			keep.Placements = append(keep.Placements, pl)
		}
		d = keep
		j = judgeValid(s, d)
	}
}

// hasGangs reports whether any request of s is part of a gang.
func hasGangs(s *Snapshot) bool {
	return slices.ContainsFunc(s.Requests, func(r Request) bool { return r.GangMin > 0 })
}

// startGangs clears the gang mark of the instances still pending of every
// gang the judgement starts: from now on they are ordinary requests.
func (t *Table) startGangs(s *Snapshot, j *Judgement, c *Changes) {
	var started map[string]bool
	for _, pl := range j.Placements {
		if r := s.Requests[pl.Request]; r.GangMin > 0 {
			if started == nil {
				started = map[string]bool{}
			}
			started[r.RequestID] = true
		}
	}
	if started == nil {
		return
	}
	for i, r := range s.Requests {
		if j.Placed[i] || !started[r.RequestID] {
			continue
		}
		a := t.allocs[r.ID]
		a.GangMin = 0
		c.Allocations[a.GetId()] = a
	}
}

// gangReason says what r's waiting gang is missing, e.g. "gang of 20
// (min 20): 12 fit now; insufficient cpus on 3 agents". "Fit now" counts
// the gang's pending instances that would fit, first fit, in the room the
// judgement left; the rest of the sentence explains why the next one does
// not (the role's quota first, as for any request).
func gangReason(s *Snapshot, j *Judgement, r Request) string {
	var n int32
	for _, o := range s.Requests {
		if o.RequestID == r.RequestID && o.GangMin > 0 {
			n++
		}
	}
	head := fmt.Sprintf("gang of %d (min %d): ", n, r.GangMin)
	if n < r.GangMin {
		return head + fmt.Sprintf("only %d %s still pending (the others were released): it can never start", n, plural(int(n), "instance"))
	}
	free := slices.Clone(j.Free)
	var fit int32
	for ai := 0; ai < len(free) && fit < n; ai++ {
		if len(r.Constraints) > 0 && !Matches(s.Agents[ai].Labels, r.Constraints) {
			continue
		}
		for fit < n && free[ai].Fits(r.Resources) {
			free[ai] = free[ai].Sub(r.Resources)
			fit++
		}
	}
	head += fmt.Sprintf("%d fit now; ", fit)
	if why := j.quotas.reason(r); why != "" {
		return head + why
	}
	m := int64(r.GangMin)
	whole := Resources{MilliCPU: r.Resources.MilliCPU * m, Mem: r.Resources.Mem * m, Disk: r.Resources.Disk * m, Ports: r.Resources.Ports * m}
	if dims := j.quotas.over(r.Role, whole); dims != nil {
		why := fmt.Sprintf("role %s: quota %s leaves too little room for %d instances together", roleName(r.Role), strings.Join(dims, ","), m)
		if overQuota(j.quotas.quota[r.Role], whole) != nil {
			why += "; it can never start until the quota is raised"
		}
		return head + why
	}
	if fit >= n {
		return head + "waiting for the next allocation cycle"
	}
	return head + explain(s.Agents, free, r)
}
