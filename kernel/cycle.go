package kernel

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// CycleResult says what one allocation cycle did.
type CycleResult struct {
	Placed    int
	Pending   int
	Preempted int
	// Rejected lists placements the kernel refused, with why. A policy
	// that returns any is buggy or hostile.
	Rejected []string
	// Err is the policy's error, if it failed the cycle.
	Err error
}

// Snapshot builds a policy's input: alive agents that are not draining
// (drain.go) in id order and pending allocations by priority (descending)
// then arrival. Allocations on draining agents still count in role usage.
func (t *Table) Snapshot(seed uint64) *Snapshot {
	s := &Snapshot{Seed: seed, Agents: make([]AgentInfo, 0, len(t.agents))}
	for _, e := range t.agentOrder() {
		if !placeable(e.g) {
			continue
		}
		s.Agents = append(s.Agents, AgentInfo{ID: e.id, Labels: e.g.GetLabels(), Total: e.total, Free: e.total.Sub(t.used[e.id])})
	}
	agentIdx := make(map[string]int, len(s.Agents))
	for i, a := range s.Agents {
		agentIdx[a.ID] = i
	}
	usage := map[string]Resources{}
	for _, a := range t.allocs {
		if a.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
			usage[a.GetRole()] = usage[a.GetRole()] // pending roles are listed too
			continue
		}
		r := FromProto(a.GetResources())
		usage[a.GetRole()] = usage[a.GetRole()].Add(r)
		if i, up := agentIdx[a.GetAgentId()]; up {
			s.Allocations = append(s.Allocations, Granted{ID: a.GetId(), Agent: i, Owner: a.GetOwner(), Role: a.GetRole(), Priority: a.GetPriority(), Resources: r})
		}
	}
	sortBySeq(s.Allocations, func(g Granted) string { return g.ID }, "a-")
	for name, u := range usage {
		cfg := t.roleConfig(name)
		w := cfg.Weight
		if w <= 0 {
			w = 1
		}
		s.Roles = append(s.Roles, RoleInfo{Name: name, Weight: w, Usage: u, Quota: cfg.Quota})
	}
	slices.SortFunc(s.Roles, func(a, b RoleInfo) int { return strings.Compare(a.Name, b.Name) })
	for _, a := range t.allocs {
		if a.GetState() != pb.AllocationState_ALLOCATION_STATE_PENDING {
			continue
		}
		s.Requests = append(s.Requests, Request{
			ID: a.GetId(), RequestID: a.GetRequestId(), Owner: a.GetOwner(), Role: a.GetRole(),
			Priority: a.GetPriority(), Resources: FromProto(a.GetResources()), Constraints: a.GetConstraints(),
			GangMin: a.GetGangMin(),
		})
	}
	sortBySeq(s.Requests, func(r Request) string { return r.ID }, "a-")
	slices.SortStableFunc(s.Requests, func(a, b Request) int { return cmp.Compare(b.Priority, a.Priority) })
	return s
}

// orderedAgent caches what a snapshot needs of an agent.
type orderedAgent struct {
	id    string
	seq   uint64 // from the id, for numeric order
	g     *pb.Agent
	total Resources
}

// agentOrder returns every agent in id order (agent-9 before agent-10),
// rebuilt only after a registration changed the agent set or totals.
func (t *Table) agentOrder() []orderedAgent {
	if t.order != nil {
		return t.order
	}
	t.order = make([]orderedAgent, 0, len(t.agents))
	for id, g := range t.agents {
		t.order = append(t.order, orderedAgent{id, idSeq(id, "agent-"), g, FromProto(g.GetTotal())})
	}
	slices.SortFunc(t.order, func(a, b orderedAgent) int {
		if c := cmp.Compare(a.seq, b.seq); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return t.order
}

// sortBySeq sorts xs by the sequence number in their ids, parsing each id
// once.
func sortBySeq[T any](xs []T, id func(T) string, prefix string) {
	type keyed struct {
		seq uint64
		x   T
	}
	ks := make([]keyed, len(xs))
	for i, x := range xs {
		ks[i] = keyed{idSeq(id(x), prefix), x}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(a.seq, b.seq); c != 0 {
			return c
		}
		return strings.Compare(id(a.x), id(b.x))
	})
	for i := range ks {
		xs[i] = ks[i].x
	}
}

// Cycle runs one allocation cycle: snapshot, policy, judgement, commit
// into the table. Requests left unplaced get a pending reason, recorded
// with an ALLOCATION_PENDING event only when it changes (so an idle
// cluster writes nothing).
func (t *Table) Cycle(p Policy, seed uint64, now time.Time, c *Changes) CycleResult {
	s := t.Snapshot(seed)
	if len(s.Requests) == 0 {
		return CycleResult{}
	}
	var res CycleResult
	d, err := p.Place(s)
	if err != nil || d == nil {
		if err == nil {
			err = fmt.Errorf("no decision")
		}
		res.Err = fmt.Errorf("policy %s: %w", p.Name(), err)
		d = &Decision{}
	}
	j := Judge(s, d)
	res.Rejected = j.Rejected
	for _, i := range j.Revocations {
		t.revokeAllocation(t.allocs[s.Allocations[i].ID], "PREEMPTED by policy "+p.Name()+" for a higher-priority request", now, c)
		res.Preempted++
	}
	for _, pl := range j.Placements {
		t.grant(t.allocs[s.Requests[pl.Request].ID], s.Agents[pl.Agent].ID, now, c)
		res.Placed++
	}
	t.startGangs(s, j, c)
	never := map[int]bool{}
	for _, i := range d.Never {
		never[i] = true
	}
	// Explain what is left, once per distinct request group.
	reasons := map[string]string{}
	for i, r := range s.Requests {
		if j.Placed[i] {
			continue
		}
		res.Pending++
		why, ok := reasons[r.RequestID]
		if !ok {
			why = j.quotas.reason(r) // a quota that holds it says so first
			if why == "" {
				why = explain(s.Agents, j.Free, r)
			}
			if r.GangMin > 0 {
				why = gangReason(s, j, r) // what the whole gang is missing
			}
			switch {
			case res.Err != nil:
				why = "policy failed: " + res.Err.Error()
			case never[i]:
				why = "policy " + p.Name() + " says it can never be placed: " + why
			}
			reasons[r.RequestID] = why
		}
		if a := t.allocs[r.ID]; a.GetPendingReason() != why {
			a.PendingReason = why
			c.Allocations[a.GetId()] = a
			e := event(pb.EventKind_EVENT_KIND_ALLOCATION_PENDING, now, why)
			e.Allocation = proto.Clone(a).(*pb.Allocation)
			c.Events = append(c.Events, e)
		}
	}
	return res
}

// Judgement is what the kernel accepts of a policy's decision.
type Judgement struct {
	// Revocations and Placements are the accepted ones, in decision order.
	Revocations []int
	Placements  []Placement
	// Rejected says why each refused placement or revocation was refused.
	Rejected []string
	// Placed marks the requests placed; Free is each agent's room after
	// the accepted revocations and placements.
	Placed []bool
	Free   []Resources

	quotas quotas // each role's usage after them (roles.go)
}

// judgeValid checks a decision against its snapshot without changing
// anything, gangs aside (Judge, gang.go, adds them). A revocation is
// accepted only on an agent where the decision places, and the kernel
// accepts, a request of strictly higher priority; the room it
// frees counts for the placements. Every placement must name a request
// once, an agent, satisfy the request's constraints, fit in what is left
// on the agent, and keep its role within every capped dimension of its
// quota (the role's usage less the accepted revocations of its
// allocations, plus the placements accepted before it). Because dropping
// a revocation can make a placement that backed another one fit no more,
// Judge repeats until the accepted revocations are exactly the backed
// ones (the set only shrinks, so at most once per revocation).
func judgeValid(s *Snapshot, d *Decision) *Judgement {
	var rejected []string
	var revs []int // candidates: in range and named once
	seen := map[int]bool{}
	for _, i := range d.Revocations {
		if i < 0 || i >= len(s.Allocations) || seen[i] {
			rejected = append(rejected, fmt.Sprintf("revocation names allocation %d of %d (or twice)", i, len(s.Allocations)))
			continue
		}
		seen[i] = true
		revs = append(revs, i)
	}
	for {
		j := judgePlacements(s, d, revs)
		var keep, drop []int
		for _, i := range revs {
			g := s.Allocations[i]
			if pr, ok := j.top[g.Agent]; ok && pr > g.Priority {
				keep = append(keep, i)
			} else {
				drop = append(drop, i)
			}
		}
		if len(drop) == 0 {
			j.Judgement.Revocations = revs
			j.Judgement.Rejected = append(rejected, j.Judgement.Rejected...)
			return &j.Judgement
		}
		for _, i := range drop {
			g := s.Allocations[i]
			rejected = append(rejected, fmt.Sprintf("revocation of %s (priority %d) places nothing of higher priority on %s", g.ID, g.Priority, s.Agents[g.Agent].ID))
		}
		revs = keep
	}
}

// judged is a Judgement with the highest priority accepted per agent.
type judged struct {
	Judgement
	top map[int]int32
}

// judgePlacements checks the placements with the room that revs free.
func judgePlacements(s *Snapshot, d *Decision, revs []int) judged {
	j := judged{Judgement: Judgement{Placed: make([]bool, len(s.Requests)), Free: make([]Resources, len(s.Agents))}, top: map[int]int32{}}
	for i, a := range s.Agents {
		j.Free[i] = a.Free
	}
	for _, i := range revs {
		g := s.Allocations[i]
		j.Free[g.Agent] = j.Free[g.Agent].Add(g.Resources)
	}
	j.quotas = newQuotas(s, revs)
	for _, pl := range d.Placements {
		if why := check(s, pl, j.Placed, j.Free); why != "" {
			j.Rejected = append(j.Rejected, why)
			continue
		}
		r := s.Requests[pl.Request]
		if dims := j.quotas.over(r.Role, r.Resources); dims != nil {
			j.Rejected = append(j.Rejected, quotaRefusal(r, s.Agents[pl.Agent].ID, dims))
			continue
		}
		j.quotas.take(r.Role, r.Resources)
		pr := r.Priority
		j.Free[pl.Agent] = j.Free[pl.Agent].Sub(r.Resources)
		j.Placed[pl.Request] = true
		j.Placements = append(j.Placements, pl)
		if t, ok := j.top[pl.Agent]; !ok || pr > t {
			j.top[pl.Agent] = pr
		}
	}
	return j
}

// check validates one placement against the snapshot and what this batch
// already placed; it returns "" when the placement may commit.
func check(s *Snapshot, pl Placement, placed []bool, free []Resources) string {
	switch {
	case pl.Request < 0 || pl.Request >= len(s.Requests):
		return fmt.Sprintf("placement names request %d of %d", pl.Request, len(s.Requests))
	case pl.Agent < 0 || pl.Agent >= len(s.Agents):
		return fmt.Sprintf("placement names agent %d of %d", pl.Agent, len(s.Agents))
	case placed[pl.Request]:
		return fmt.Sprintf("request %s placed twice", s.Requests[pl.Request].ID)
	}
	r, a := s.Requests[pl.Request], s.Agents[pl.Agent]
	if !Matches(a.Labels, r.Constraints) {
		return fmt.Sprintf("request %s placed on %s against its constraints", r.ID, a.ID)
	}
	if !free[pl.Agent].Fits(r.Resources) {
		return fmt.Sprintf("request %s (%v) placed on %s with only %v free", r.ID, r.Resources, a.ID, free[pl.Agent])
	}
	return ""
}

// explain summarises why r fits on none of the agents, e.g.
// "insufficient memory on 3 agents; constraint zone=b excluded 2".
func explain(agents []AgentInfo, free []Resources, r Request) string {
	if len(agents) == 0 {
		return "no agents are up"
	}
	excluded := map[string]int{}
	var cpu, mem, disk, ports, never int
	for i, a := range agents {
		if c := firstFailing(a.Labels, r.Constraints); c != nil {
			excluded[describe(c)]++
			continue
		}
		f := free[i]
		if !a.Total.Fits(r.Resources) {
			never++
		}
		if f.MilliCPU < r.Resources.MilliCPU {
			cpu++
		}
		if f.Mem < r.Resources.Mem {
			mem++
		}
		if f.Disk < r.Resources.Disk {
			disk++
		}
		if f.Ports < r.Resources.Ports {
			ports++
		}
	}
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("insufficient %s on %d %s", what, n, plural(n, "agent")))
		}
	}
	add(cpu, "cpus")
	add(mem, "memory")
	add(disk, "disk")
	add(ports, "host ports")
	keys := make([]string, 0, len(excluded))
	for k := range excluded {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("constraint %s excluded %d", k, excluded[k]))
	}
	if never == len(agents) {
		parts = append(parts, "larger than any agent: it can never fit")
	}
	if len(parts) == 0 {
		return "waiting for the next allocation cycle"
	}
	return strings.Join(parts, "; ")
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

func firstFailing(labels map[string]string, cs []*pb.Constraint) *pb.Constraint {
	for _, c := range cs {
		if !matches(labels, c) {
			return c
		}
	}
	return nil
}

func describe(c *pb.Constraint) string {
	switch c.GetOp() {
	case pb.Constraint_OP_EQUALS:
		return c.GetLabel() + "=" + strings.Join(c.GetValues(), ",")
	case pb.Constraint_OP_NOT_EQUALS:
		return c.GetLabel() + "!=" + strings.Join(c.GetValues(), ",")
	}
	return c.GetLabel() + " in (" + strings.Join(c.GetValues(), ",") + ")"
}
