package binpack_test

import (
	"reflect"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/policies/binpack"
	pt "github.com/dcos-kernel/dcos/plugins/policies/internal/policytest"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

var _ = policy.Register(binpack.Place)

func TestPlace(t *testing.T) {
	tests := []struct {
		name  string
		build func(c *pt.Cluster)
		// want is the number of requests placed on each agent.
		want     []int
		verdicts []int // optional: per request, 0 placed or the verdict
	}{{
		name: "fills one agent before the next",
		build: func(c *pt.Cluster) {
			c.Agents(4, pt.R(4000, 8*pt.GiB))
			c.Request(pt.Req{N: 6, Resources: pt.R(1000, 2*pt.GiB)})
		},
		want: []int{4, 2, 0, 0},
	}, {
		name: "prefers the fuller agent",
		build: func(c *pt.Cluster) {
			c.Agents(3, pt.R(4000, 8*pt.GiB))
			c.Use(2, pt.R(3000, 6*pt.GiB))
			c.Request(pt.Req{N: 2, Resources: pt.R(500, 1*pt.GiB)})
		},
		want: []int{0, 0, 2},
	}, {
		name: "small agent that fits exactly beats a big one",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(16000, 64*pt.GiB))
			c.Agent(pt.R(2000, 4*pt.GiB))
			c.Request(pt.Req{N: 2, Resources: pt.R(1000, 2*pt.GiB)})
			c.Request(pt.Req{N: 1, Resources: pt.R(1000, 2*pt.GiB)})
		},
		want: []int{1, 2},
	}, {
		name: "mixed sizes pack into the fewest agents",
		build: func(c *pt.Cluster) {
			c.Agents(4, pt.R(4000, 4*pt.GiB))
			c.Request(pt.Req{N: 2, Resources: pt.R(3000, 3*pt.GiB), Priority: 1})
			c.Request(pt.Req{N: 2, Resources: pt.R(1000, 1*pt.GiB)})
		},
		want: []int{2, 2, 0, 0},
	}, {
		name: "constraints and verdicts",
		build: func(c *pt.Cluster) {
			c.Agent(pt.R(4000, 8*pt.GiB), "zone=a")
			c.Agent(pt.R(4000, 8*pt.GiB), "zone=b")
			c.Request(pt.Req{N: 3, Resources: pt.R(2000, 1*pt.GiB), Constraints: []policy.Constraint{pt.Equals("zone", "b")}})
			c.Request(pt.Req{Resources: pt.R(8000, 1*pt.GiB)})
			c.Request(pt.Req{Resources: pt.R(1000, 1*pt.GiB), Constraints: []policy.Constraint{pt.Equals("zone", "c")}})
		},
		want:     []int{0, 2},
		verdicts: []int{0, 0, int(policy.NotNow), int(policy.Never), int(policy.Never)},
	}, {
		// Every agent has cpu and memory to spare; host ports decide. The
		// portless request still goes to the fullest agent: ports are not
		// part of the score.
		name: "ports are the scarce dimension",
		build: func(c *pt.Cluster) {
			c.Agent(pt.RP(16000, 64*pt.GiB, 0))
			c.Agent(pt.RP(16000, 64*pt.GiB, 1))
			c.Agent(pt.RP(16000, 64*pt.GiB, 2))
			c.Request(pt.Req{N: 4, Resources: pt.RP(1000, 1*pt.GiB, 1)}) // agents 1, 2, 2, then none free
			c.Request(pt.Req{Resources: pt.RP(1000, 1*pt.GiB, 0)})       // agent 2, the fullest
			c.Request(pt.Req{Resources: pt.RP(1000, 1*pt.GiB, 3)})       // no agent has 3 ports
		},
		want:     []int{0, 1, 3},
		verdicts: []int{0, 0, 0, int(policy.NotNow), 0, int(policy.Never)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pt.NewCluster()
			tt.build(c)
			b := c.Batch()
			d := pt.Place(t, binpack.Place, b)
			if err := pt.Check(b, d); err != nil {
				t.Fatal(err)
			}
			if got := pt.PlacedOn(b, d); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("placed per agent = %v, want %v", got, tt.want)
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

func TestPlace_Properties(t *testing.T) { pt.Properties(t, binpack.Place) }

func BenchmarkNative_binpack(b *testing.B) { pt.Benchmark(b, binpack.Place) }

// TestPlace_Quotas: a role at its quota gets nothing more while other
// roles are placed (policytest.QuotaCases).
func TestPlace_Quotas(t *testing.T) { pt.Quotas(t, binpack.Place) }
