// Package binpack is the best-fit placement policy: each request goes to
// the admitted agent with the least room left after placing it, so work
// lands on as few agents as possible and whole agents stay free for large
// requests.
//
// The same source is the native baseline and, through binpack/wasm, the
// built-in binpack.wasm module.
package binpack

import (
	"github.com/dcos-kernel/dcos/plugins/policies/internal/feasible"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/gang"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/quota"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/rank"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

var _ policy.Func = Place

// Place places b's requests in batch order (priority, then arrival), each
// on the admitted agent that fits it with the lowest score, where the
// score is the larger of the cpu and memory fractions of the agent's total
// left free after placement; ties go to the lower agent index. Host ports
// count in every fit check but not in the score (a request's few ports
// say little about how full an agent is).
//
// It honours the roles' quotas as the kernel does: a request whose
// placement would take its role past a capped (non-zero) dimension of
// its quota, counting the role's granted usage and this decision's
// placements, is left unplaced (NotNow, or Never when it fits no agent
// anyway), and the requests after it, of its role or others, are still
// placed. Requests that fit nowhere are reported unplaced: Never when no
// admitted agent's total fits them, else NotNow. It never revokes, never
// over-commits (free resources are tracked as it places), and reads b
// without modifying it.
//
// Cost: consecutive requests of one shape (same resources and
// constraints, e.g. the instances of one Allocate call) form a run; a run
// of n instances costs one pass over its admitted agents keeping the n
// best (only those can be chosen: scores change only where it places),
// then O(log n) per instance. A batch of R requests in G runs over A
// agents costs O(G·A + R·log A), with no allocation per step.
//
// Gangs (Request.GangMin > 0) are placed whole or not at all
// (internal/gang): a gang of which fewer than GangMin fit is left out,
// NotNow, and the requests after it are placed as if it were not there.
func Place(b *policy.Batch, d *policy.Decision) error { return gang.Place(b, d, place) }

func place(b *policy.Batch, d *policy.Decision) error {
	sets := feasible.New(b)
	usage := quota.New(b)
	free := make([]policy.Resources, len(b.Agents))
	inv := make([][2]float64, len(b.Agents))
	for i := range b.Agents {
		free[i] = b.Agents[i].Free
		inv[i] = [2]float64{inverse(b.Agents[i].Total.MilliCPU), inverse(b.Agents[i].Total.Mem)}
	}
	h, key := rank.NewHeap(len(b.Agents))
	best := rank.NewBest(key)
	// left is the score of a on need: the dominant fraction left after placing.
	left := func(a int32, need policy.Resources) float64 {
		f := free[a]
		return max(float64(f.MilliCPU-need.MilliCPU)*inv[a][0], float64(f.Mem-need.Mem)*inv[a][1])
	}
	for i := 0; i < len(b.Requests); {
		end := i + 1
		for end < len(b.Requests) && sets.SameShape(i, end) {
			end++
		}
		need, set := b.Requests[i].Resources, sets.Of(i)
		best.Reset(end - i)
		for _, a := range sets.Agents(set) {
			if free[a].Fits(need) {
				key[a] = left(a, need)
				if best.Wants(a) {
					best.Offer(a)
				}
			}
		}
		h.Reset()
		for _, a := range best.Agents() {
			h.Append(a)
		}
		h.Init()
		for r := i; r < end; r++ {
			role := b.Requests[r].Role
			if h.Len() == 0 || !usage.Fits(role, need) {
				d.Unplaced = append(d.Unplaced, policy.Unplaced{Request: uint32(r), Verdict: sets.Verdict(r)})
				continue
			}
			a := h.Top()
			d.Place(r, int(a))
			usage.Take(role, need)
			free[a] = free[a].Sub(need)
			if free[a].Fits(need) {
				key[a] = left(a, need)
				h.Fix(a)
			} else {
				h.Remove(a)
			}
		}
		i = end
	}
	return nil
}

// inverse returns 1/total, or 0 for an empty dimension (which then never
// counts towards a score).
func inverse(total int64) float64 {
	if total <= 0 {
		return 0
	}
	return 1 / float64(total)
}
