// Package spread is the spreading placement policy: the instances of a
// request group go to different values of a label (a failure domain,
// "zone" by default) as evenly as possible, and within a value to the
// least-loaded agent.
//
// The label is fixed when the module is built: Place spreads over "zone";
// a module built on By("rack") spreads over racks. The batch carries no
// per-request spreading preference, so there is no run-time convention to
// read one from.
//
// The same source is the native baseline and, through spread/wasm, the
// built-in spread.wasm module.
package spread

import (
	"github.com/dcos-kernel/dcos/plugins/policies/internal/feasible"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/gang"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/quota"
	"github.com/dcos-kernel/dcos/plugins/policies/internal/rank"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// Label is the agent label Place spreads over.
const Label = "zone"

var _ policy.Func = Place

// Place is By(Label): it spreads every request group across zones.
func Place(b *policy.Batch, d *policy.Decision) error { return By(Label)(b, d) }

// By returns the policy that spreads over agent label key. Agents without
// the label form one domain of their own.
//
// It places b's requests in batch order (priority, then arrival). For
// each, among the admitted agents that fit it, it takes the label values
// with the fewest instances of the request's group placed so far in this
// batch, and among their agents the least loaded after placement (load =
// the larger of the cpu and memory fractions of the agent's total in use;
// host ports count in the fit checks only), ties by the lower agent
// index. Granted allocations carry no group, so only this batch's
// placements are counted; the load counts everything.
//
// It honours the roles' quotas as the kernel does: a request whose
// placement would take its role past a capped (non-zero) dimension of
// its quota, counting the role's granted usage and this decision's
// placements, is left unplaced (NotNow, or Never when it fits no agent
// anyway) and counts in no label value; the requests after it, of its
// role or others, are still placed. Requests that fit nowhere are
// unplaced: Never when no admitted agent's total fits them, else NotNow.
// It never revokes and never over-commits.
//
// Gangs (Request.GangMin > 0) are placed whole or not at all
// (internal/gang): a gang of which fewer than GangMin fit is left out,
// NotNow, and the requests after it are placed as if it were not there.
//
// Cost: consecutive instances of one group with one shape form a run; a
// run of n instances costs one pass over its admitted agents keeping the
// n least loaded per label value, then O(V + log n) per instance for V
// label values. A batch of R requests in G runs over A agents costs
// O(G·A + R·(V + log A)).
func By(key string) policy.Func {
	f := func(b *policy.Batch, d *policy.Decision) error { return place(key, b, d) }
	return func(b *policy.Batch, d *policy.Decision) error { return gang.Place(b, d, f) }
}

func place(label string, b *policy.Batch, d *policy.Decision) error {
	sets := feasible.New(b)
	usage := quota.New(b)
	n := len(b.Agents)
	free := make([]policy.Resources, n)
	inv := make([][2]float64, n)
	domain := make([]int32, n) // agent → label value index
	var values domains
	nd, absent := 0, int32(-1)
	for i := range b.Agents {
		a := &b.Agents[i]
		free[i] = a.Free
		inv[i] = [2]float64{inverse(a.Total.MilliCPU), inverse(a.Total.Mem)}
		v, ok := a.Label(label)
		if !ok {
			if absent < 0 {
				absent, nd = int32(nd), nd+1
			}
			domain[i] = absent
			continue
		}
		id := values.find(v)
		if id < 0 {
			id, nd = int32(nd), nd+1
			values.add(v, id)
		}
		domain[i] = id
	}
	heaps, key := rank.NewHeaps(nd, n)
	bests := make([]*rank.Best, nd)
	for i := range bests {
		bests[i] = rank.NewBest(key)
	}
	counts := map[uint32][]int32{} // group → instances placed per label value
	// load is a's load after placing need on it.
	load := func(a int32, need policy.Resources) float64 {
		t, f := &b.Agents[a].Total, free[a]
		return max(float64(t.MilliCPU-f.MilliCPU+need.MilliCPU)*inv[a][0], float64(t.Mem-f.Mem+need.Mem)*inv[a][1])
	}
	for i := 0; i < len(b.Requests); {
		r := &b.Requests[i]
		end := i + 1
		for end < len(b.Requests) && b.Requests[end].Group == r.Group && sets.SameShape(i, end) {
			end++
		}
		need, set := r.Resources, sets.Of(i)
		count := counts[r.Group]
		if count == nil {
			count = make([]int32, nd)
			counts[r.Group] = count
		}
		for z := range bests {
			bests[z].Reset(end - i)
		}
		for _, a := range sets.Agents(set) {
			if free[a].Fits(need) {
				key[a] = load(a, need)
				if b := bests[domain[a]]; b.Wants(a) {
					b.Offer(a)
				}
			}
		}
		for z := range heaps {
			h := &heaps[z]
			h.Reset()
			for _, a := range bests[z].Agents() {
				h.Append(a)
			}
			h.Init()
		}
		for q := i; q < end; q++ {
			role := b.Requests[q].Role
			if !usage.Fits(role, need) {
				d.Unplaced = append(d.Unplaced, policy.Unplaced{Request: uint32(q), Verdict: sets.Verdict(q)})
				continue
			}
			best := -1
			for z := range heaps {
				if heaps[z].Len() == 0 {
					continue
				}
				if best < 0 || count[z] < count[best] ||
					count[z] == count[best] && rankBefore(key, heaps[z].Top(), heaps[best].Top()) {
					best = z
				}
			}
			if best < 0 {
				d.Unplaced = append(d.Unplaced, policy.Unplaced{Request: uint32(q), Verdict: sets.Verdict(q)})
				continue
			}
			h := &heaps[best]
			a := h.Top()
			d.Place(q, int(a))
			usage.Take(role, need)
			count[best]++
			free[a] = free[a].Sub(need)
			if free[a].Fits(need) {
				key[a] = load(a, need)
				h.Fix(a)
			} else {
				h.Remove(a)
			}
		}
		i = end
	}
	return nil
}

// domains numbers label values. A handful of values (zones, racks of a
// small cluster) is searched linearly, which in a Go wasm guest costs far
// less than hashing every agent's value; past maxLinear values it switches
// to a map.
type domains struct {
	vals []string
	ids  []int32
	m    map[string]int32
}

const maxLinear = 32

func (d *domains) find(v string) int32 {
	if d.m != nil {
		if id, ok := d.m[v]; ok {
			return id
		}
		return -1
	}
	for j, w := range d.vals {
		if feasible.Same(v, w) {
			return d.ids[j]
		}
	}
	return -1
}

func (d *domains) add(v string, id int32) {
	if d.m != nil {
		d.m[v] = id
		return
	}
	d.vals, d.ids = append(d.vals, v), append(d.ids, id)
	if len(d.vals) > maxLinear {
		d.m = make(map[string]int32, 2*len(d.vals))
		for j, w := range d.vals {
			d.m[w] = d.ids[j]
		}
	}
}

// rankBefore reports whether agent a ranks before c: less key, then lower
// index.
func rankBefore(key []float64, a, c int32) bool {
	if key[a] != key[c] {
		return key[a] < key[c]
	}
	return a < c
}

// inverse returns 1/total, or 0 for an empty dimension.
func inverse(total int64) float64 {
	if total <= 0 {
		return 0
	}
	return 1 / float64(total)
}
