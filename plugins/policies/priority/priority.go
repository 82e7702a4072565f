// Package priority is the priority policy with preemption: requests are
// placed highest priority first, and a request that fits nowhere may take
// the place of granted allocations of strictly lower priority, which the
// kernel then revokes (reason PREEMPTED).
//
// The same source is the native baseline and, through priority/wasm, the
// built-in priority.wasm module.
package priority

import (
	"math"
	"slices"

	"github.com/dcos-kernel/dcos/plugins/policies/internal/feasible"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/gang"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/quota"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/rank"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

var _ policy.Func = Place

// Place places b's requests in batch order (priority, highest first, then
// arrival), each on the first admitted agent, in batch order, with room
// for it (every dimension, host ports included).
//
// When a request of priority p fits nowhere, Place looks on every admitted
// agent whose total fits it for the granted allocations of priority below
// p (not already revoked) whose revocation makes room (in every
// dimension: revoking an allocation frees its ports too): it takes them
// lowest priority first, then smallest (the larger of their cpu and memory
// fractions of the agent's total), then lowest index, until the request
// fits, and then drops again, from the last taken back, each one not
// needed after all, so no subset of what it names would do. Among agents
// it prefers the one whose set has the lowest highest priority, then the
// fewest allocations, then the least resources, then the lowest index. It
// names that set in Revocations and places the request there; what the
// revocations free beyond the request is available to later requests. An
// allocation is never revoked twice, nor for a request of equal or lower
// priority, so the kernel accepts every revocation. Once every request is
// judged, revocations the decision as a whole turns out not to need are
// dropped again (see giveBack): no revocation can then be left out
// without over-committing its agent.
//
// It honours the roles' quotas as the kernel does: a request whose
// placement would take its role past a capped (non-zero) dimension of
// its quota, counting the role's granted usage and this decision's
// placements, is left unplaced before any search, so nothing is
// preempted for it, and the requests after it, of its role or others,
// are still placed. A preemption frees no quota within the decision (the
// revoked allocation's role is counted as still holding it; the kernel,
// which subtracts accepted revocations, can only find less): what it
// frees in a quota counts from the next cycle. So Place never preempts
// to make room in a quota, only on an agent: a role at its quota waits
// for its own allocations to end, whatever their priority, as a
// Kubernetes pod over its namespace's ResourceQuota does.
//
// Unplaced requests are Never when no admitted agent's total fits them,
// else NotNow.
//
// Cost: the placements without preemption cost as drf's first fit (a
// cursor per request shape: O(S·A) in all for S shapes over A agents). A
// run of identical requests (one shape and priority) that needs to preempt
// ranks its admitted agents once, in O(A + G) for the G lower-priority
// allocations on them, then O(log A + g) per instance for the g on the
// agent chosen. A search that found nothing is not repeated for the same
// shape and priority until some preemption frees resources.
//
// Gangs (Request.GangMin > 0) are placed whole or not at all
// (internal/gang): a gang of which fewer than GangMin fit is left out,
// NotNow, and the requests after it are placed as if it were not there.
func Place(b *policy.Batch, d *policy.Decision) error { return gang.Place(b, d, place) }

func place(b *policy.Batch, d *policy.Decision) error {
	sets := feasible.New(b)
	usage := quota.New(b)
	free := make([]policy.Resources, len(b.Agents))
	for i := range b.Agents {
		free[i] = b.Agents[i].Free
	}
	p := newPreemptor(b, free)

	var fit rank.FirstFit
	type failKey struct {
		set  int32
		need policy.Resources
		prio int32
	}
	failed := map[failKey]bool{} // searches that found nothing since the last preemption
	for i := 0; i < len(b.Requests); {
		r := &b.Requests[i]
		end := i + 1
		for end < len(b.Requests) && b.Requests[end].Priority == r.Priority && sets.SameShape(i, end) {
			end++
		}
		set, agents := sets.Of(i), sets.Agents(sets.Of(i))
		k := failKey{set, r.Resources, r.Priority}
		if sets.Never(i) {
			for q := i; q < end; q++ {
				d.Unplaced = append(d.Unplaced, policy.Unplaced{Request: uint32(q), Verdict: policy.Never})
			}
			i = end
			continue
		}
		p.reset()
		for q := i; q < end; q++ {
			role := b.Requests[q].Role
			if !usage.Fits(role, r.Resources) {
				d.Unplaced = append(d.Unplaced, policy.Unplaced{Request: uint32(q), Verdict: policy.NotNow})
				continue
			}
			a := fit.Find(sets.Shape(q), set, agents, r.Resources, free)
			if a < 0 && !failed[k] {
				if !p.ready {
					p.rank(agents, r)
				}
				a = p.take(r)
				if a < 0 {
					failed[k] = true
				} else {
					for _, g := range p.chosen {
						d.Revocations = append(d.Revocations, uint32(g))
					}
					fit.Grew(a, sets.Agents)
					clear(failed)
				}
			}
			if a < 0 {
				d.Unplaced = append(d.Unplaced, policy.Unplaced{Request: uint32(q), Verdict: policy.NotNow})
				continue
			}
			d.Place(q, int(a))
			usage.Take(role, r.Resources)
			free[a] = free[a].Sub(r.Resources)
			p.changed(a, r)
		}
		i = end
	}
	p.giveBack(d)
	return nil
}

// preemptor finds the allocations to revoke for a request. For a run of
// identical requests it ranks every admitted agent once by the cost of the
// revocations that would make room there (rank), then keeps that ranking
// current as the run places (changed): only the agent placed on changes.
type preemptor struct {
	b       *policy.Batch
	free    []policy.Resources // the policy's running free resources
	start   []int32            // agent a's allocations are order[start[a]:start[a+1]]
	order   []int32            // by priority, then size, then index
	size    []float64          // allocation → larger of its cpu, mem fractions of its agent
	revoked []bool
	chosen  []int32 // the last evaluate's revocations

	ready bool    // the heap ranks the current run
	cost  []cost  // agent → cost of its revocations, when in the heap
	heap  []int32 // agents, a min-heap by (cost, index)
	pos   []int32 // agent → index in heap + 1; 0 when absent
}

// cost ranks a set of revocations: the highest priority it revokes, then
// how many, then the sum of their sizes.
type cost struct {
	top  int32
	n    int
	size float64
}

func (c cost) less(o cost) bool {
	switch {
	case c.top != o.top:
		return c.top < o.top
	case c.n != o.n:
		return c.n < o.n
	}
	return c.size < o.size
}

func newPreemptor(b *policy.Batch, free []policy.Resources) *preemptor {
	n := len(b.Agents)
	p := &preemptor{b: b, free: free, start: make([]int32, n+1), order: make([]int32, len(b.Allocations)),
		size: make([]float64, len(b.Allocations)), revoked: make([]bool, len(b.Allocations)),
		cost: make([]cost, n), pos: make([]int32, n)}
	for i, g := range b.Allocations {
		p.start[g.Agent+1]++
		t := &b.Agents[g.Agent].Total
		p.size[i] = max(fraction(g.Resources.MilliCPU, t.MilliCPU), fraction(g.Resources.Mem, t.Mem))
	}
	for a := range n {
		p.start[a+1] += p.start[a]
	}
	next := slices.Clone(p.start[:n])
	for i, g := range b.Allocations {
		p.order[next[g.Agent]] = int32(i)
		next[g.Agent]++
	}
	for a := range n {
		p.sort(p.order[p.start[a]:p.start[a+1]])
	}
	return p
}

// sort sorts one agent's allocations by compare. An agent holds a few:
// an insertion sort without a comparison function value costs far less
// than slices.SortFunc's indirect calls, dear in a wasm guest.
func (p *preemptor) sort(gs []int32) {
	if len(gs) > 16 {
		slices.SortFunc(gs, p.compare)
		return
	}
	for i := 1; i < len(gs); i++ {
		for j := i; j > 0 && p.compare(gs[j], gs[j-1]) < 0; j-- {
			gs[j], gs[j-1] = gs[j-1], gs[j]
		}
	}
}

// compare orders allocations as preemption takes them: by priority, then
// size, then index.
func (p *preemptor) compare(x, y int32) int {
	gx, gy := &p.b.Allocations[x], &p.b.Allocations[y]
	switch {
	case gx.Priority != gy.Priority:
		return int(gx.Priority) - int(gy.Priority)
	case p.size[x] < p.size[y]:
		return -1
	case p.size[x] > p.size[y]:
		return 1
	}
	return int(x) - int(y)
}

// evaluate finds the revocations on agent a that make room for r (in
// p.chosen) and their cost; ok is false when there are none.
func (p *preemptor) evaluate(a int32, r *policy.Request) (c cost, ok bool) {
	if !p.b.Agents[a].Total.Fits(r.Resources) {
		return cost{}, false
	}
	avail := p.free[a]
	p.chosen = p.chosen[:0]
	for _, g := range p.order[p.start[a]:p.start[a+1]] {
		if avail.Fits(r.Resources) {
			break
		}
		if p.b.Allocations[g].Priority >= r.Priority {
			break // and so are all that follow
		}
		if p.revoked[g] {
			continue
		}
		p.chosen = append(p.chosen, g)
		avail = avail.Add(p.b.Allocations[g].Resources)
	}
	if !avail.Fits(r.Resources) {
		return cost{}, false
	}
	// Drop, from the last taken back, what is not needed after all.
	for i := len(p.chosen) - 1; i >= 0; i-- {
		g := p.chosen[i]
		if without := avail.Sub(p.b.Allocations[g].Resources); without.Fits(r.Resources) {
			avail = without
			p.chosen[i] = -1
		}
	}
	c.top = math.MinInt32
	for _, g := range p.chosen {
		if g >= 0 {
			p.chosen[c.n] = g
			c.n++
			c.size += p.size[g]
			c.top = p.b.Allocations[g].Priority // ascending: the last is the highest
		}
	}
	p.chosen = p.chosen[:c.n]
	return c, true
}

// reset forgets the ranking: the next run ranks afresh.
func (p *preemptor) reset() {
	for _, a := range p.heap {
		p.pos[a] = 0
	}
	p.heap, p.ready = p.heap[:0], false
}

// rank ranks the agents (admitted for r) by the cost of making room for r.
func (p *preemptor) rank(agents []int32, r *policy.Request) {
	p.ready = true
	for _, a := range agents {
		if c, ok := p.evaluate(a, r); ok {
			p.cost[a] = c
			p.heap = append(p.heap, a)
			p.pos[a] = int32(len(p.heap))
		}
	}
	for i := len(p.heap)/2 - 1; i >= 0; i-- {
		p.down(i)
	}
}

// take revokes what the best-ranked agent needs for r, adds it to that
// agent's free resources and returns the agent, its revocations in
// p.chosen; or -1 when no agent can make room.
func (p *preemptor) take(r *policy.Request) int32 {
	if len(p.heap) == 0 {
		return -1
	}
	a := p.heap[0]
	p.evaluate(a, r) // current: changed keeps every ranked agent's cost up to date
	for _, g := range p.chosen {
		p.revoked[g] = true
		p.free[a] = p.free[a].Add(p.b.Allocations[g].Resources)
	}
	return a
}

// changed re-ranks agent a after the run placed r on it.
func (p *preemptor) changed(a int32, r *policy.Request) {
	if !p.ready {
		return
	}
	c, ok := p.evaluate(a, r)
	switch i := int(p.pos[a]) - 1; {
	case i < 0 && ok:
		p.cost[a] = c
		p.heap = append(p.heap, a)
		p.pos[a] = int32(len(p.heap))
		p.up(len(p.heap) - 1)
	case i >= 0 && ok:
		p.cost[a] = c
		if !p.down(i) {
			p.up(i)
		}
	case i >= 0:
		last := len(p.heap) - 1
		p.swap(i, last)
		p.heap = p.heap[:last]
		p.pos[a] = 0
		if i < last && !p.down(i) {
			p.up(i)
		}
	}
}

func (p *preemptor) less(i, j int) bool {
	a, b := p.heap[i], p.heap[j]
	if p.cost[a] != p.cost[b] {
		return p.cost[a].less(p.cost[b])
	}
	return a < b
}

func (p *preemptor) swap(i, j int) {
	p.heap[i], p.heap[j] = p.heap[j], p.heap[i]
	p.pos[p.heap[i]] = int32(i + 1)
	p.pos[p.heap[j]] = int32(j + 1)
}

func (p *preemptor) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !p.less(i, parent) {
			return
		}
		p.swap(i, parent)
		i = parent
	}
}

func (p *preemptor) down(i int) bool {
	start, n := i, len(p.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && p.less(r, l) {
			m = r
		}
		if !p.less(m, i) {
			break
		}
		p.swap(i, m)
		i = m
	}
	return i > start
}

// giveBack keeps every revoked allocation that the decision turns out not
// to need: one preemption may free more than its request took, and a
// later one on the same agent may then free enough for both. It tries the
// revoked allocations highest priority first, then largest, then highest
// index, and keeps one when what is left free on its agent after every
// placement holds it. Then no revocation can be dropped without
// over-committing its agent.
func (p *preemptor) giveBack(d *policy.Decision) {
	if len(d.Revocations) < 2 {
		return // a single revocation was needed by its own request
	}
	order := slices.Clone(d.Revocations)
	slices.SortFunc(order, func(x, y uint32) int { return p.compare(int32(y), int32(x)) })
	kept := false
	for _, g := range order {
		ga := &p.b.Allocations[g]
		if p.free[ga.Agent].Fits(ga.Resources) {
			p.free[ga.Agent] = p.free[ga.Agent].Sub(ga.Resources)
			p.revoked[g] = false
			kept = true
		}
	}
	if kept {
		d.Revocations = slices.DeleteFunc(d.Revocations, func(g uint32) bool { return !p.revoked[g] })
	}
}

// fraction returns part/total, or 0 for an empty dimension.
func fraction(part, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(part) / float64(total)
}
