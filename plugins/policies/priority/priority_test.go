package priority_test

import (
	"reflect"
	"slices"
	"testing"

	pt "github.com/dcos-kernel/dcos/plugins/policies/internal/policytest"
	"github.com/dcos-kernel/dcos/plugins/policies/priority"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

var _ = policy.Register(priority.Place)

func TestPlace(t *testing.T) {
	const nr = policy.NoRole
	mem := 1 * pt.GiB
	tests := []struct {
		name     string
		build    func(c *pt.Cluster)
		revoked  []uint32 // allocation indices, sorted
		perAgent []int
		verdicts []int // optional, per request in batch order
	}{{
		name: "lowest priority first",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(4000, 8*mem))
			c.Grant(0, nr, 1, pt.R(2000, mem))
			c.Grant(0, nr, 0, pt.R(2000, mem))
			c.Request(pt.Req{Resources: pt.R(2000, mem), Priority: 5})
		},
		revoked:  []uint32{1},
		perAgent: []int{1},
	}, {
		name: "only as many as needed",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(4000, 8*mem))
			for range 4 {
				c.Grant(0, nr, 0, pt.R(1000, mem))
			}
			c.Request(pt.Req{Resources: pt.R(2000, mem), Priority: 5})
		},
		revoked:  []uint32{0, 1},
		perAgent: []int{1},
	}, {
		name: "smallest first within a priority",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(4000, 8*mem))
			c.Grant(0, nr, 0, pt.R(2000, mem))
			c.Grant(0, nr, 0, pt.R(1000, mem))
			c.Grant(0, nr, 0, pt.R(1000, mem))
			c.Request(pt.Req{Resources: pt.R(1000, mem), Priority: 5})
		},
		revoked:  []uint32{1},
		perAgent: []int{1},
	}, {
		name: "drops a low-priority victim that a larger one makes unneeded",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(4000, 8*mem))
			c.Grant(0, nr, 0, pt.R(1000, mem))
			c.Grant(0, nr, 1, pt.R(3000, mem))
			c.Request(pt.Req{Resources: pt.R(3000, mem), Priority: 5})
		},
		revoked:  []uint32{1},
		perAgent: []int{1},
	}, {
		name: "never equal or higher priority",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 8*mem))
			c.Grant(0, nr, 5, pt.R(1000, mem))
			c.Grant(0, nr, 9, pt.R(1000, mem))
			c.Request(pt.Req{Resources: pt.R(1000, mem), Priority: 5})
		},
		perAgent: []int{0},
		verdicts: []int{int(policy.NotNow)},
	}, {
		name: "room elsewhere beats preemption",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 8*mem))
			c.Agent(pt.R(2000, 8*mem))
			c.Grant(0, nr, 0, pt.R(2000, mem))
			c.Request(pt.Req{Resources: pt.R(2000, mem), Priority: 5})
		},
		perAgent: []int{0, 1},
	}, {
		name: "the agent with the lowest-priority victims",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 8*mem))
			c.Agent(pt.R(2000, 8*mem))
			c.Agent(pt.R(2000, 8*mem))
			c.Grant(0, nr, 3, pt.R(2000, mem))
			c.Grant(1, nr, 1, pt.R(1000, mem))
			c.Grant(1, nr, 1, pt.R(1000, mem))
			c.Grant(2, nr, 1, pt.R(2000, mem))
			c.Request(pt.Req{Resources: pt.R(2000, mem), Priority: 5})
		},
		revoked:  []uint32{3}, // one victim on agent 2 beats two on agent 1
		perAgent: []int{0, 0, 1},
	}, {
		name: "what a revocation frees serves later requests, and nothing is revoked twice",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 8*mem))
			c.Grant(0, nr, 0, pt.R(2000, mem))
			c.Request(pt.Req{N: 3, Resources: pt.R(1000, mem), Priority: 5})
		},
		revoked:  []uint32{0},
		perAgent: []int{2},
		verdicts: []int{0, 0, int(policy.NotNow)},
	}, {
		name: "higher priority first",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 8*mem))
			c.Request(pt.Req{Resources: pt.R(2000, mem), Priority: 1})
			c.Request(pt.Req{Resources: pt.R(2000, mem), Priority: 10})
		},
		perAgent: []int{1},
		verdicts: []int{0, int(policy.NotNow)},
	}, {
		name: "preempts only on agents the constraints admit",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 8*mem), "zone=a")
			c.Agent(pt.R(2000, 8*mem), "zone=b")
			c.Grant(0, nr, 0, pt.R(2000, mem))
			c.Grant(1, nr, 1, pt.R(2000, mem))
			c.Request(pt.Req{Resources: pt.R(2000, mem), Priority: 5, Constraints: []policy.Constraint{pt.Equals("zone", "b")}})
		},
		revoked:  []uint32{1},
		perAgent: []int{0, 1},
	}, {
		name: "never when no agent is big enough",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 8*mem))
			c.Grant(0, nr, 0, pt.R(2000, mem))
			c.Request(pt.Req{Resources: pt.R(4000, mem), Priority: 5})
		},
		perAgent: []int{0},
		verdicts: []int{int(policy.Never)},
	}, {
		// cpu and memory are free everywhere; the only host port is held
		// by a lower-priority allocation, which is preempted once. Agent
		// 1 has no ports at all, so nothing there can make room.
		name: "preempts for a port",
		build: func(c *pt.Cluster) {
			c.Agent(pt.RP(8000, 16*mem, 1))
			c.Agent(pt.RP(8000, 16*mem, 0))
			c.Grant(0, nr, 0, pt.RP(1000, mem, 1))
			c.Request(pt.Req{N: 2, Resources: pt.RP(1000, mem, 1), Priority: 5}) // agent 0 after preemption, then NotNow
			c.Request(pt.Req{Resources: pt.RP(1000, mem, 2), Priority: 5})       // no agent has 2 ports: Never
		},
		revoked:  []uint32{0},
		perAgent: []int{1, 0},
		verdicts: []int{0, int(policy.NotNow), int(policy.Never)},
	}, {
		// Both agents are full of priority-0 allocations. The capped
		// role's request is held by its quota before any search, so it
		// preempts nothing; the open role's preempts on agent 0.
		name: "nothing is preempted for a request its quota holds",
		build: func(c *pt.Cluster) {
			c.Agents(2, pt.R(2000, 8*mem))
			q, o := c.Role("capped", 1, pt.R(2000, 0)), c.Role("open", 1, policy.Resources{})
			c.Grant(0, nr, 0, pt.R(2000, mem))
			c.Grant(1, q, 0, pt.R(2000, mem))
			c.Request(pt.Req{Resources: pt.R(1000, mem), Priority: 10, Role: q, Roled: true})
			c.Request(pt.Req{Resources: pt.R(1000, mem), Priority: 10, Role: o, Roled: true})
		},
		revoked:  []uint32{0},
		perAgent: []int{1, 0},
		verdicts: []int{int(policy.NotNow), 0},
	}, {
		// The role could make room in its quota by preempting its own
		// lower-priority allocation, but Place preempts for room on
		// agents only, never in a quota (see Place): the request waits,
		// and nothing is revoked.
		name: "no preemption to make room in a quota",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 8*mem))
			q := c.Role("capped", 1, pt.R(2000, 0))
			c.Grant(0, q, 0, pt.R(2000, mem))
			c.Request(pt.Req{Resources: pt.R(2000, mem), Priority: 10, Role: q, Roled: true})
		},
		perAgent: []int{0},
		verdicts: []int{int(policy.NotNow)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pt.NewCluster()
			tt.build(c)
			b := c.Batch()
			d := pt.Place(t, priority.Place, b)
			if err := pt.Check(b, d); err != nil {
				t.Fatal(err)
			}
			got := slices.Sorted(slices.Values(d.Revocations))
			if len(got) != 0 || len(tt.revoked) != 0 {
				if !reflect.DeepEqual(got, tt.revoked) {
					t.Errorf("revoked %v, want %v", got, tt.revoked)
				}
			}
			if got := pt.PlacedOn(b, d); !reflect.DeepEqual(got, tt.perAgent) {
				t.Errorf("per agent = %v, want %v", got, tt.perAgent)
			}
			if got := pt.Verdicts(b, d); tt.verdicts != nil && !reflect.DeepEqual(got, tt.verdicts) {
				t.Errorf("verdicts = %v, want %v", got, tt.verdicts)
			}
			if w := pt.Wire(t, b); !pt.SameDecision(d, w) {
				t.Errorf("through the codec: %+v, direct: %+v", w, d)
			}
		})
	}
}

// TestPlace_Minimal checks on random clusters that every preemption is
// needed: on each agent where the decision revokes, giving back any one
// revoked allocation leaves a placement there without room.
func TestPlace_Minimal(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		b := pt.Random(seed, pt.Size{Agents: 20, Requests: 200, Roles: 2, Allocations: 120})
		d := pt.Place(t, priority.Place, b)
		if err := pt.Check(b, d); err != nil {
			t.Fatal(err)
		}
		for _, skip := range d.Revocations {
			var keep policy.Decision
			keep.Placements = d.Placements
			for _, g := range d.Revocations {
				if g != skip {
					keep.Revocations = append(keep.Revocations, g)
				}
			}
			keep.Unplaced = d.Unplaced
			if pt.Check(b, &keep) == nil {
				t.Errorf("seed %d: revoking allocation %d was not needed", seed, skip)
			}
		}
	}
}

func TestPlace_Properties(t *testing.T) { pt.Properties(t, priority.Place) }

func BenchmarkNative_priority(b *testing.B) { pt.Benchmark(b, priority.Place) }

// TestPlace_Quotas: a role at its quota gets nothing more while other
// roles are placed (policytest.QuotaCases).
func TestPlace_Quotas(t *testing.T) { pt.Quotas(t, priority.Place) }
