// Package drf is the Dominant Resource Fairness policy (Ghodsi et al.,
// "Dominant Resource Fairness: Fair Allocation of Multiple Resource
// Types", NSDI 2011), by progressive filling across roles, with role
// weights and quotas. It is the kernel's default policy.
//
// The same source is the native baseline and, through drf/wasm, the
// built-in drf.wasm module.
package drf

import (
	"math"

	"github.com/dcos-kernel/dcos/plugins/policies/internal/feasible"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/gang"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/rank"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

var _ policy.Func = Place

// Place fills the cluster progressively: it repeatedly takes the role with
// the lowest weighted dominant share and places that role's next pending
// request (in batch order, so by priority then arrival within the role) on
// the first admitted agent, in batch order, with room for it. A role's
// dominant share is the larger of its cpu and memory usage (granted
// allocations plus this batch's placements) as fractions of the cluster's
// total, divided by its weight; ties go to the lower role index. Host
// ports are not a share: like Mesos's ports resource (a range, not a
// scalar) they only decide whether a request fits an agent or a quota,
// never whose turn it is. Requests
// without a role form one more role, after the others, of weight 1 and no
// quota, whose usage is that of the granted allocations without a role
// (Batch.NoRoleUsage: drf reads no allocations, so its module asks for
// none). A
// role weight that is not a positive finite number counts as 1.
//
// A request is left unplaced with Never when no admitted agent's total
// fits it, with NotNow when placing it would take its role over a quota
// dimension (a zero dimension is no cap) or when no admitted agent has
// room for it now; the role then goes on with its next request. It ends
// when every role's requests are placed or judged. It never revokes and
// never over-commits.
//
// Cost: O(R·log W) for R requests and W roles to choose, plus the first-fit
// searches, which keep a cursor per request shape (free resources only
// shrink, so an agent passed over for a shape never fits it again): O(S·A)
// in all for S distinct shapes over A agents. No allocation per step
// beyond the cursor table.
//
// Gangs (Request.GangMin > 0) are placed whole or not at all
// (internal/gang): a gang of which fewer than GangMin fit is left out,
// NotNow, and the requests after it are placed as if it were not there.
func Place(b *policy.Batch, d *policy.Decision) error { return gang.Place(b, d, place) }

func place(b *policy.Batch, d *policy.Decision) error {
	sets := feasible.New(b)
	free := make([]policy.Resources, len(b.Agents))
	var total policy.Resources
	for i := range b.Agents {
		free[i] = b.Agents[i].Free
		total = total.Add(b.Agents[i].Total)
	}
	inv := [2]float64{inverse(total.MilliCPU), inverse(total.Mem)}

	nr := len(b.Roles) + 1 // the last is "no role"
	roleOf := func(r uint32) int {
		if r == policy.NoRole {
			return nr - 1
		}
		return int(r)
	}
	usage := make([]policy.Resources, nr)
	quota := make([]policy.Resources, nr)
	weight := make([]float64, nr)
	for i := range b.Roles {
		usage[i], quota[i], weight[i] = b.Roles[i].Usage, b.Roles[i].Quota, b.Roles[i].Weight
		if w := weight[i]; !(w > 0) || math.IsInf(w, 1) {
			weight[i] = 1
		}
	}
	weight[nr-1], usage[nr-1] = 1, b.NoRoleUsage

	// queue[start[r]:start[r+1]] are role r's requests in batch order.
	start := make([]int32, nr+1)
	for i := range b.Requests {
		start[roleOf(b.Requests[i].Role)+1]++
	}
	for r := range nr {
		start[r+1] += start[r]
	}
	queue := make([]int32, len(b.Requests))
	next := make([]int32, nr)
	copy(next, start)
	for i := range b.Requests {
		r := roleOf(b.Requests[i].Role)
		queue[next[r]] = int32(i)
		next[r]++
	}
	copy(next, start[:nr])

	share := func(r int) float64 {
		u := usage[r]
		return max(float64(u.MilliCPU)*inv[0], float64(u.Mem)*inv[1]) / weight[r]
	}
	roles, key := rank.NewHeap(nr)
	for r := range nr {
		if start[r] < start[r+1] {
			key[r] = share(r)
			roles.Append(int32(r))
		}
	}
	roles.Init()

	var fit rank.FirstFit
	for roles.Len() > 0 {
		r := roles.Top()
		q := int(queue[next[r]])
		next[r]++
		need, set := b.Requests[q].Resources, sets.Of(q)
		switch {
		case sets.Never(q):
			d.Unplaced = append(d.Unplaced, policy.Unplaced{Request: uint32(q), Verdict: policy.Never})
		case !withinQuota(usage[r].Add(need), quota[r]):
			d.Unplaced = append(d.Unplaced, policy.Unplaced{Request: uint32(q), Verdict: policy.NotNow})
		default:
			a := fit.Find(sets.Shape(q), set, sets.Agents(set), need, free)
			if a < 0 {
				d.Unplaced = append(d.Unplaced, policy.Unplaced{Request: uint32(q), Verdict: policy.NotNow})
				break
			}
			d.Place(q, int(a))
			free[a] = free[a].Sub(need)
			usage[r] = usage[r].Add(need)
			key[r] = share(int(r))
		}
		if next[r] == start[r+1] {
			roles.Remove(r)
		} else {
			roles.Fix(r)
		}
	}
	return nil
}

// withinQuota reports whether u stays within quota in every capped
// (non-zero) dimension, ports included.
func withinQuota(u, quota policy.Resources) bool {
	return (quota.MilliCPU == 0 || u.MilliCPU <= quota.MilliCPU) &&
		(quota.Mem == 0 || u.Mem <= quota.Mem) &&
		(quota.Disk == 0 || u.Disk <= quota.Disk) &&
		(quota.Ports == 0 || u.Ports <= quota.Ports)
}

// inverse returns 1/total, or 0 for an empty dimension.
func inverse(total int64) float64 {
	if total <= 0 {
		return 0
	}
	return 1 / float64(total)
}
