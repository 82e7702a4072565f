package spread_test

import (
	"reflect"
	"testing"

	pt "github.com/dcos-kernel/dcos/plugins/policies/internal/policytest"
	"github.com/dcos-kernel/dcos/plugins/policies/spread"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

var _ = policy.Register(spread.Place)

// perLabel counts the placements of group g per value of label key.
func perLabel(b *policy.Batch, d *policy.Decision, key string, g uint32) map[string]int {
	n := map[string]int{}
	for _, p := range d.Placements {
		if b.Requests[p.Request].Group == g {
			v, _ := b.Agents[p.Agent].Label(key)
			n[v]++
		}
	}
	return n
}

func TestPlace(t *testing.T) {
	small := pt.R(500, 512*pt.MiB)
	tests := []struct {
		name    string
		build   func(c *pt.Cluster) uint32 // returns the group to look at
		policy  policy.Func
		label   string
		want    map[string]int // instances of the group per label value
		perAgnt []int          // optional: placements per agent
	}{{
		name: "even across zones of unequal size",
		build: func(c *pt.Cluster) uint32 {
			c.Agents(5, pt.R(8000, 16*pt.GiB), "zone=a")
			c.Agents(2, pt.R(8000, 16*pt.GiB), "zone=b")
			c.Agents(1, pt.R(8000, 16*pt.GiB), "zone=c")
			return c.Request(pt.Req{N: 9, Resources: small})
		},
		want: map[string]int{"a": 3, "b": 3, "c": 3},
	}, {
		name: "across agents within a zone",
		build: func(c *pt.Cluster) uint32 {
			c.Agents(3, pt.R(8000, 16*pt.GiB), "zone=a")
			c.Agents(3, pt.R(8000, 16*pt.GiB), "zone=b")
			return c.Request(pt.Req{N: 6, Resources: small})
		},
		want:    map[string]int{"a": 3, "b": 3},
		perAgnt: []int{1, 1, 1, 1, 1, 1},
	}, {
		name: "least-loaded agent within the zone",
		build: func(c *pt.Cluster) uint32 {
			c.Agents(2, pt.R(8000, 16*pt.GiB), "zone=a")
			c.Use(0, pt.R(4000, 1*pt.GiB))
			return c.Request(pt.Req{N: 1, Resources: small})
		},
		want:    map[string]int{"a": 1},
		perAgnt: []int{0, 1},
	}, {
		name: "a full zone is skipped",
		build: func(c *pt.Cluster) uint32 {
			c.Agent(pt.R(1000, 1*pt.GiB), "zone=a")
			c.Agents(2, pt.R(8000, 16*pt.GiB), "zone=b")
			c.Agents(2, pt.R(8000, 16*pt.GiB), "zone=c")
			return c.Request(pt.Req{N: 6, Resources: small})
		},
		want: map[string]int{"a": 2, "b": 2, "c": 2},
	}, {
		name: "an earlier group does not skew a later one",
		build: func(c *pt.Cluster) uint32 {
			c.Agents(2, pt.R(8000, 16*pt.GiB), "zone=a")
			c.Agents(2, pt.R(8000, 16*pt.GiB), "zone=b")
			c.Request(pt.Req{N: 3, Resources: small, Priority: 1, Constraints: []policy.Constraint{pt.Equals("zone", "a")}})
			return c.Request(pt.Req{N: 4, Resources: small})
		},
		want: map[string]int{"a": 2, "b": 2},
	}, {
		name: "agents without the label are one domain",
		build: func(c *pt.Cluster) uint32 {
			c.Agents(3, pt.R(8000, 16*pt.GiB))
			c.Agent(pt.R(8000, 16*pt.GiB), "zone=a")
			return c.Request(pt.Req{N: 4, Resources: small})
		},
		want: map[string]int{"": 2, "a": 2},
	}, {
		name:   "By spreads over another label",
		policy: spread.By("rack"),
		label:  "rack",
		build: func(c *pt.Cluster) uint32 {
			c.Agents(2, pt.R(8000, 16*pt.GiB), "zone=a", "rack=1")
			c.Agents(2, pt.R(8000, 16*pt.GiB), "zone=a", "rack=2")
			return c.Request(pt.Req{N: 4, Resources: small})
		},
		want: map[string]int{"1": 2, "2": 2},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pt.NewCluster()
			g := tt.build(c)
			b := c.Batch()
			f, label := tt.policy, tt.label
			if f == nil {
				f, label = spread.Place, spread.Label
			}
			d := pt.Place(t, f, b)
			if err := pt.Check(b, d); err != nil {
				t.Fatal(err)
			}
			if got := perLabel(b, d, label, g); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("per %s = %v, want %v", label, got, tt.want)
			}
			if got := pt.PlacedOn(b, d); tt.perAgnt != nil && !reflect.DeepEqual(got, tt.perAgnt) {
				t.Errorf("per agent = %v, want %v", got, tt.perAgnt)
			}
			if tt.policy == nil {
				if w := pt.Wire(t, b); !pt.SameDecision(d, w) {
					t.Errorf("through the codec: %+v, direct: %+v", w, d)
				}
			}
		})
	}
}

// TestPlace_Ports: host ports are the scarce dimension (every agent has
// cpu and memory to spare): zone a has none, so the group spreads over b
// and c as far as their ports go, and what is left is NotNow, or Never
// when no agent has as many ports in total.
func TestPlace_Ports(t *testing.T) {
	c := pt.NewCluster()
	c.Agents(2, pt.RP(8000, 16*pt.GiB, 0), "zone=a")
	c.Agent(pt.RP(8000, 16*pt.GiB, 1), "zone=b")
	c.Agent(pt.RP(8000, 16*pt.GiB, 2), "zone=c")
	g := c.Request(pt.Req{N: 4, Resources: pt.RP(500, 512*pt.MiB, 1)})
	c.Request(pt.Req{Resources: pt.RP(500, 512*pt.MiB, 3)})
	b := c.Batch()
	d := pt.Place(t, spread.Place, b)
	if err := pt.Check(b, d); err != nil {
		t.Fatal(err)
	}
	if got, want := perLabel(b, d, spread.Label, g), map[string]int{"b": 1, "c": 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("per zone = %v, want %v", got, want)
	}
	if got, want := pt.Verdicts(b, d), []int{0, 0, 0, int(policy.NotNow), int(policy.Never)}; !reflect.DeepEqual(got, want) {
		t.Errorf("verdicts = %v, want %v", got, want)
	}
	if w := pt.Wire(t, b); !pt.SameDecision(d, w) {
		t.Errorf("through the codec: %+v, direct: %+v", w, d)
	}
}

func TestPlace_Verdicts(t *testing.T) {
	c := pt.NewCluster()
	c.Agent(pt.R(2000, 4*pt.GiB), "zone=a")
	c.Agent(pt.R(2000, 4*pt.GiB), "zone=b")
	c.Request(pt.Req{N: 3, Resources: pt.R(2000, 1*pt.GiB)})                                                    // 2 fit, 1 NotNow
	c.Request(pt.Req{Resources: pt.R(4000, 1*pt.GiB)})                                                          // too big: Never
	c.Request(pt.Req{Resources: pt.R(100, 1*pt.MiB), Constraints: []policy.Constraint{pt.Equals("zone", "c")}}) // no zone c: Never
	b := c.Batch()
	d := pt.Place(t, spread.Place, b)
	if err := pt.Check(b, d); err != nil {
		t.Fatal(err)
	}
	want := []int{0, 0, int(policy.NotNow), int(policy.Never), int(policy.Never)}
	if got := pt.Verdicts(b, d); !reflect.DeepEqual(got, want) {
		t.Errorf("verdicts = %v, want %v", got, want)
	}
}

func TestPlace_Properties(t *testing.T) { pt.Properties(t, spread.Place) }

func BenchmarkNative_spread(b *testing.B) { pt.Benchmark(b, spread.Place) }

// TestPlace_Quotas: a role at its quota gets nothing more while other
// roles are placed (policytest.QuotaCases).
func TestPlace_Quotas(t *testing.T) { pt.Quotas(t, spread.Place) }
