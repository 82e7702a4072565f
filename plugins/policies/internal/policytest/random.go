package policytest

import (
	"fmt"
	"math/rand/v2"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

// Size sets the shape of a random batch.
type Size struct {
	Agents, Requests, Roles, Allocations int
	// Fill, when above 0, then tops every agent up with more allocations
	// until at most 1-Fill of its cpu is free.
	Fill float64
	// Gangs, when above 0, makes about that fraction of the request
	// groups gangs (a third of them with a minimum below their size),
	// drawn from a random stream of their own: the batch is otherwise the
	// one Gangs 0 gives.
	Gangs float64
}

// Random returns a random batch for seed: agents of a few shapes with
// zone (a–d), rack and sometimes gpu labels and 1000, 1–3 or no host
// ports, granted allocations of mixed roles and priorities (some holding a
// port), and requests in groups of 1–20 instances with mixed priorities
// and roles, some with constraints (including ones no agent satisfies),
// some too large for any agent, and a quarter asking for host ports (so
// that ports are often the scarce dimension on the few-port agents). The
// same seed and size give the same batch.
func Random(seed uint64, size Size) *policy.Batch {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	c := NewCluster()
	c.b.Seed = seed
	shapes := []policy.Resources{R(4000, 8*GiB), R(8000, 32*GiB), R(16000, 64*GiB), R(32000, 128*GiB), R(2000, 16*GiB)}
	zones := []string{"a", "b", "c", "d"}
	for i := range size.Agents {
		labels := []string{"zone=" + zones[rng.IntN(len(zones))], fmt.Sprintf("rack=r%d", i/20)}
		if rng.IntN(8) == 0 {
			labels = append(labels, "gpu=true")
		}
		if rng.IntN(16) == 0 {
			labels = labels[1:] // no zone
		}
		total := shapes[rng.IntN(len(shapes))]
		switch rng.IntN(4) {
		case 0: // no host ports
		case 1:
			total.Ports = int64(1 + rng.IntN(3))
		default:
			total.Ports = 1000
		}
		c.Agent(total, labels...)
	}
	for i := range size.Roles {
		w := 1.0
		if i%2 == 1 {
			w = float64(1 + rng.IntN(3))
		}
		var quota policy.Resources
		if rng.IntN(3) == 0 {
			quota = R(int64(4+rng.IntN(36))*1000, 0)
		}
		c.Role(fmt.Sprintf("role-%d", i), w, quota)
	}
	role := func() (uint32, bool) {
		if size.Roles == 0 || rng.IntN(5) == 0 {
			return policy.NoRole, false
		}
		return uint32(rng.IntN(size.Roles)), true
	}
	prios := []int32{-10, 0, 0, 5, 10, 100}
	for range size.Allocations {
		if size.Agents == 0 {
			break
		}
		a := rng.IntN(size.Agents)
		res := R(int64(250*(1+rng.IntN(16))), int64(256*(1+rng.IntN(32)))*MiB)
		if rng.IntN(3) == 0 {
			res.Ports = 1
		}
		if !c.b.Agents[a].Free.Fits(res) {
			continue
		}
		r, _ := role()
		c.Grant(a, r, prios[rng.IntN(len(prios))], res)
	}
	for a := range c.b.Agents {
		ag := &c.b.Agents[a]
		for size.Fill > 0 && float64(ag.Free.MilliCPU) > (1-size.Fill)*float64(ag.Total.MilliCPU) {
			res := R(min(int64(250*(1+rng.IntN(16))), ag.Free.MilliCPU), min(int64(256*(1+rng.IntN(16)))*MiB, ag.Free.Mem))
			r, _ := role()
			c.Grant(a, r, prios[rng.IntN(len(prios))], res)
		}
	}
	gangs := rand.New(rand.NewPCG(seed, 0x9a29))
	for len(c.b.Requests) < size.Requests {
		r, roled := role()
		q := Req{
			N:         min(1+rng.IntN(20), size.Requests-len(c.b.Requests)),
			Resources: R(int64(100*(1+rng.IntN(40))), int64(128*(1+rng.IntN(64)))*MiB),
			Priority:  prios[rng.IntN(len(prios))],
			Role:      r, Roled: roled,
		}
		if rng.IntN(4) == 0 {
			q.Resources.Ports = int64(1 + rng.IntN(2))
		}
		switch rng.IntN(12) {
		case 0:
			q.Resources = R(64000, 8*GiB) // larger than any agent
		case 1:
			q.Constraints = []policy.Constraint{Equals("zone", zones[rng.IntN(len(zones))])}
		case 2:
			q.Constraints = []policy.Constraint{In("zone", "b", "c"), NotEquals("gpu", "true")}
		case 3:
			q.Constraints = []policy.Constraint{Equals("gpu", "true")}
		case 4:
			q.Constraints = []policy.Constraint{Equals("zone", "nowhere")}
		case 5:
			q.Resources = R(12000, 48*GiB) // fits only the larger shapes
		case 6:
			q.Resources = RP(500, 512*MiB, 2000) // more ports than any agent has
		case 7:
			q.Resources.Ports = 3 // only the 1000-port agents and a few others
		}
		if size.Gangs > 0 && gangs.Float64() < size.Gangs {
			q.GangMin = uint32(q.N)
			if gangs.IntN(3) == 0 {
				q.GangMin = uint32(1 + gangs.IntN(q.N))
			}
		}
		c.Request(q)
	}
	return c.Batch()
}

// Big returns the benchmark batch: 10,000 agents filled to 90% of their
// cpu with granted allocations of mixed priorities, 1,000 pending
// requests, 4 roles (see Random).
func Big(seed uint64) *policy.Batch {
	return Random(seed, Size{Agents: 10000, Requests: 1000, Roles: 4, Fill: 0.9})
}
