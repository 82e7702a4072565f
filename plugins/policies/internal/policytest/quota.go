package policytest

import (
	"maps"
	"slices"
	"testing"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

// PerRole counts d's placements per role name ("" for no role).
func PerRole(b *policy.Batch, d *policy.Decision) map[string]int {
	n := map[string]int{}
	for _, p := range d.Placements {
		name := ""
		if r := b.Requests[p.Request].Role; r != policy.NoRole {
			name = b.Roles[r].Name
		}
		n[name]++
	}
	return n
}

// QuotaCase is a cluster on which a policy that honours quotas places a
// known number of requests per role, with known verdicts.
type QuotaCase struct {
	Name     string
	Build    func(c *Cluster)
	PerRole  map[string]int // placements per role name ("" for none)
	Verdicts []int          // per request in batch order, as Verdicts returns
}

// QuotaCases are the quota cases every built-in passes, whatever its
// ranking: each role's requests fit the cluster many times over, so only
// the quotas decide how many are placed.
func QuotaCases() []QuotaCase {
	const nn, ne = int(policy.NotNow), int(policy.Never)
	cpu := func(milli int64) policy.Resources { return R(milli, 0) }
	none := policy.Resources{}
	return []QuotaCase{{
		Name: "a role at its quota gets nothing more while another role is placed",
		Build: func(c *Cluster) {
			c.Agents(2, R(8000, 16*GiB))
			q, o := c.Role("capped", 1, cpu(2000)), c.Role("open", 1, none)
			c.Grant(1, q, 0, R(2000, GiB))
			c.Request(Req{N: 3, Resources: R(1000, GiB), Role: q, Roled: true})
			c.Request(Req{N: 3, Resources: R(1000, GiB), Role: o, Roled: true})
		},
		PerRole:  map[string]int{"open": 3},
		Verdicts: []int{nn, nn, nn, 0, 0, 0},
	}, {
		Name: "the decision's own placements count",
		Build: func(c *Cluster) {
			c.Agents(2, R(8000, 16*GiB))
			q, o := c.Role("capped", 1, cpu(2000)), c.Role("open", 1, none)
			c.Request(Req{N: 4, Resources: R(1000, GiB), Role: q, Roled: true})
			c.Request(Req{N: 4, Resources: R(1000, GiB), Role: o, Roled: true})
		},
		PerRole:  map[string]int{"capped": 2, "open": 4},
		Verdicts: []int{0, 0, nn, nn, 0, 0, 0, 0},
	}, {
		Name: "a smaller request of the role still fits under the quota",
		Build: func(c *Cluster) {
			c.Agent(R(8000, 16*GiB))
			q := c.Role("capped", 1, cpu(2500))
			c.Request(Req{N: 2, Resources: R(1000, GiB), Role: q, Roled: true, Priority: 2})
			c.Request(Req{Resources: R(1000, GiB), Role: q, Roled: true, Priority: 1})
			c.Request(Req{Resources: R(500, GiB), Role: q, Roled: true})
		},
		PerRole:  map[string]int{"capped": 3},
		Verdicts: []int{0, 0, nn, 0},
	}, {
		Name: "memory, disk and ports quotas cap too; a dimension left at zero does not",
		Build: func(c *Cluster) {
			c.Agent(RP(16000, 64*GiB, 1000))
			m := c.Role("mem", 1, R(0, 2*GiB))
			p := c.Role("ports", 1, RP(0, 0, 1))
			c.Request(Req{N: 3, Resources: R(100, GiB), Role: m, Roled: true})
			c.Request(Req{N: 2, Resources: RP(100, GiB, 1), Role: p, Roled: true})
			c.Request(Req{Resources: R(100, GiB), Role: p, Roled: true}) // no port: fits
		},
		PerRole:  map[string]int{"mem": 2, "ports": 2},
		Verdicts: []int{0, 0, nn, 0, nn, 0},
	}, {
		Name: "a role past a lowered quota gets nothing",
		Build: func(c *Cluster) {
			c.Agents(2, R(8000, 16*GiB))
			q, o := c.Role("capped", 1, cpu(2000)), c.Role("open", 1, none)
			c.Grant(0, q, 0, R(3000, GiB))
			c.Request(Req{Resources: R(100, GiB), Role: q, Roled: true})
			c.Request(Req{N: 2, Resources: R(1000, GiB), Role: o, Roled: true})
		},
		PerRole:  map[string]int{"open": 2},
		Verdicts: []int{nn, 0, 0},
	}, {
		Name: "Never still means no agent fits; requests without a role have no quota",
		Build: func(c *Cluster) {
			c.Agent(R(8000, 16*GiB))
			q := c.Role("capped", 1, cpu(2000))
			c.Request(Req{Resources: R(16000, GiB), Role: q, Roled: true}) // fits no agent
			c.Request(Req{Resources: R(4000, GiB), Role: q, Roled: true})  // fits an agent, never the quota
			c.Request(Req{N: 2, Resources: R(3000, GiB)})
		},
		PerRole:  map[string]int{"": 2},
		Verdicts: []int{ne, nn, 0, 0},
	}}
}

// Quotas runs f on every QuotaCases cluster and checks its placements per
// role and verdicts, that the decision passes Check (the kernel's quota
// rule included), and that the module's codec gives the same decision
// (the test binary must have registered f with policy.Register).
func Quotas(t *testing.T, f policy.Func) {
	t.Helper()
	for _, tt := range QuotaCases() {
		t.Run(tt.Name, func(t *testing.T) {
			c := NewCluster()
			tt.Build(c)
			b := c.Batch()
			d := Place(t, f, b)
			if err := Check(b, d); err != nil {
				t.Fatal(err)
			}
			if got := PerRole(b, d); !maps.Equal(got, tt.PerRole) {
				t.Errorf("placed per role = %v, want %v", got, tt.PerRole)
			}
			if got := Verdicts(b, d); !slices.Equal(got, tt.Verdicts) {
				t.Errorf("verdicts = %v, want %v", got, tt.Verdicts)
			}
			if w := Wire(t, b); !SameDecision(d, w) {
				t.Errorf("through the codec: %+v, direct: %+v", w, d)
			}
		})
	}
}
