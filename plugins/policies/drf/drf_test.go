package drf_test

import (
	"reflect"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/policies/drf"
	pt "github.com/dcos-kernel/dcos/plugins/policies/internal/policytest"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

var _ = policy.Register(drf.Place)

// perRole counts placements per role name ("" for no role).
func perRole(b *policy.Batch, d *policy.Decision) map[string]int {
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

func TestPlace(t *testing.T) {
	none := policy.Resources{}
	tests := []struct {
		name     string
		build    func(c *pt.Cluster)
		want     map[string]int
		verdicts map[int]int // request → verdict, for the requests listed
	}{{
		// Ghodsi et al. §4: 9 CPUs, 18 GB; A runs <1 CPU, 4 GB> tasks, B
		// <3 CPU, 1 GB>. DRF equalises dominant shares at 2/3: A gets 3
		// tasks (12 GB of 18), B 2 (6 CPUs of 9).
		name: "paper two-user example",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(9000, 18*pt.GiB))
			a, b := c.Role("A", 1, none), c.Role("B", 1, none)
			c.Request(pt.Req{N: 10, Resources: pt.R(1000, 4*pt.GiB), Role: a, Roled: true})
			c.Request(pt.Req{N: 10, Resources: pt.R(3000, 1*pt.GiB), Role: b, Roled: true})
		},
		want: map[string]int{"A": 3, "B": 2},
	}, {
		name: "paper example with B's requests first",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(9000, 18*pt.GiB))
			a, b := c.Role("A", 1, none), c.Role("B", 1, none)
			c.Request(pt.Req{N: 10, Resources: pt.R(3000, 1*pt.GiB), Role: b, Roled: true})
			c.Request(pt.Req{N: 10, Resources: pt.R(1000, 4*pt.GiB), Role: a, Roled: true})
		},
		want: map[string]int{"A": 3, "B": 2},
	}, {
		name: "weight 2 gets twice the dominant share",
		build: func(c *pt.Cluster) {
			c.Agents(3, pt.R(10000, 10*pt.GiB))
			w, u := c.Role("heavy", 2, none), c.Role("light", 1, none)
			c.Request(pt.Req{N: 30, Resources: pt.R(1000, 1*pt.GiB), Role: u, Roled: true})
			c.Request(pt.Req{N: 30, Resources: pt.R(1000, 1*pt.GiB), Role: w, Roled: true})
		},
		want: map[string]int{"heavy": 20, "light": 10},
	}, {
		name: "weights with different dominant resources",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(12000, 12*pt.GiB))
			cpu, mem := c.Role("cpu", 2, none), c.Role("mem", 1, none)
			c.Request(pt.Req{N: 20, Resources: pt.R(1000, 256*pt.MiB), Role: cpu, Roled: true})
			c.Request(pt.Req{N: 20, Resources: pt.R(250, 1*pt.GiB), Role: mem, Roled: true})
		},
		// Shares are equal (10/12/2 = 5/12) at cpu 10 tasks, mem 5: 11.25
		// CPUs in use, so no cpu task fits any more; progressive filling
		// goes on with the mem role alone until the cpu runs out at 8.
		want: map[string]int{"cpu": 10, "mem": 8},
	}, {
		name: "quota caps a role",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(8000, 16*pt.GiB))
			q, o := c.Role("capped", 1, pt.R(2000, 0)), c.Role("open", 1, none)
			c.Request(pt.Req{N: 6, Resources: pt.R(1000, 1*pt.GiB), Role: q, Roled: true})
			c.Request(pt.Req{N: 6, Resources: pt.R(1000, 1*pt.GiB), Role: o, Roled: true})
		},
		want:     map[string]int{"capped": 2, "open": 6},
		verdicts: map[int]int{2: int(policy.NotNow), 5: int(policy.NotNow)},
	}, {
		name: "granted usage counts",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(8000, 16*pt.GiB))
			a, b := c.Role("A", 1, none), c.Role("B", 1, none)
			c.Grant(0, a, 0, pt.R(4000, 1*pt.GiB))
			c.Request(pt.Req{N: 4, Resources: pt.R(1000, 1*pt.GiB), Role: a, Roled: true})
			c.Request(pt.Req{N: 4, Resources: pt.R(1000, 1*pt.GiB), Role: b, Roled: true})
		},
		want: map[string]int{"B": 4},
	}, {
		name: "requests without a role are one more role",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(4000, 16*pt.GiB))
			a := c.Role("A", 1, none)
			c.Request(pt.Req{N: 4, Resources: pt.R(1000, 1*pt.GiB), Role: a, Roled: true})
			c.Request(pt.Req{N: 4, Resources: pt.R(1000, 1*pt.GiB)})
		},
		want: map[string]int{"A": 2, "": 2},
	}, {
		name: "first fit within a role, and verdicts",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(2000, 4*pt.GiB), "zone=a")
			c.Agent(pt.R(2000, 4*pt.GiB), "zone=b")
			a := c.Role("A", 1, none)
			c.Request(pt.Req{N: 3, Resources: pt.R(1000, 1*pt.GiB), Role: a, Roled: true, Priority: 2}) // agent 0, 0, 1
			c.Request(pt.Req{Resources: pt.R(4000, 1*pt.GiB), Role: a, Roled: true, Priority: 1})       // Never
			c.Request(pt.Req{Resources: pt.R(1000, 1*pt.GiB), Role: a, Roled: true, Constraints: []policy.Constraint{pt.Equals("zone", "a")}})
			c.Request(pt.Req{Resources: pt.R(1000, 1*pt.GiB), Role: a, Roled: true, Constraints: []policy.Constraint{pt.Equals("zone", "c")}})
		},
		want:     map[string]int{"A": 3},
		verdicts: map[int]int{0: 0, 1: 0, 2: 0, 3: int(policy.Never), 4: int(policy.NotNow), 5: int(policy.Never)},
	}, {
		// Ports decide where A's requests fit, not whose turn it is: A
		// keeps its turn (equal shares, lower index) and gets NotNow once
		// the one port is taken; B fills the portless agent.
		name: "ports are the scarce dimension",
		build: func(c *pt.Cluster) {
			c.Agent(pt.RP(8000, 16*pt.GiB, 0))
			c.Agent(pt.RP(8000, 16*pt.GiB, 1))
			a, b := c.Role("A", 1, none), c.Role("B", 1, none)
			c.Request(pt.Req{N: 3, Resources: pt.RP(1000, 1*pt.GiB, 1), Role: a, Roled: true})
			c.Request(pt.Req{N: 3, Resources: pt.RP(1000, 1*pt.GiB, 0), Role: b, Roled: true})
			c.Request(pt.Req{Resources: pt.RP(1000, 1*pt.GiB, 2), Role: b, Roled: true}) // no agent has 2 ports
		},
		want:     map[string]int{"A": 1, "B": 3},
		verdicts: map[int]int{0: 0, 1: int(policy.NotNow), 2: int(policy.NotNow), 6: int(policy.Never)},
	}, {
		name: "a ports quota caps a role",
		build: func(c *pt.Cluster) {
			c.Agent(pt.RP(8000, 16*pt.GiB, 1000))
			q, o := c.Role("capped", 1, pt.RP(0, 0, 2)), c.Role("open", 1, none)
			c.Request(pt.Req{N: 4, Resources: pt.RP(100, 64*pt.MiB, 1), Role: q, Roled: true})
			c.Request(pt.Req{N: 2, Resources: pt.RP(100, 64*pt.MiB, 1), Role: o, Roled: true})
		},
		want:     map[string]int{"capped": 2, "open": 2},
		verdicts: map[int]int{2: int(policy.NotNow), 3: int(policy.NotNow)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pt.NewCluster()
			tt.build(c)
			b := c.Batch()
			d := pt.Place(t, drf.Place, b)
			if err := pt.Check(b, d); err != nil {
				t.Fatal(err)
			}
			if got := perRole(b, d); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("placed per role = %v, want %v", got, tt.want)
			}
			v := pt.Verdicts(b, d)
			for r, want := range tt.verdicts {
				if v[r] != want {
					t.Errorf("request %d: verdict %d, want %d", r, v[r], want)
				}
			}
			if w := pt.Wire(t, b); !pt.SameDecision(d, w) {
				t.Errorf("through the codec: %+v, direct: %+v", w, d)
			}
		})
	}
}

func TestPlace_FirstFit(t *testing.T) {
	c := pt.NewCluster()
	c.Agents(3, pt.R(2000, 4*pt.GiB))
	c.Request(pt.Req{N: 5, Resources: pt.R(1000, 1*pt.GiB)})
	b := c.Batch()
	d := pt.Place(t, drf.Place, b)
	if got, want := pt.PlacedOn(b, d), []int{2, 2, 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("per agent = %v, want %v", got, want)
	}
}

func TestPlace_Properties(t *testing.T) { pt.Properties(t, drf.Place) }

func BenchmarkNative_drf(b *testing.B) { pt.Benchmark(b, drf.Place) }

// TestPlace_Quotas: a role at its quota gets nothing more while other
// roles are placed (policytest.QuotaCases).
func TestPlace_Quotas(t *testing.T) { pt.Quotas(t, drf.Place) }
