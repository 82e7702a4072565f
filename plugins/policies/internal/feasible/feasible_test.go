package feasible_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/policies/internal/feasible"
	pt "github.com/dcos-kernel/dcos/plugins/policies/internal/policytest"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// TestSets_Agents checks every set's agents and every request's Never
// against the plain definitions (Request.Feasible, Resources.Fits), on
// random batches as built natively and as decoded in a guest (where equal
// strings share one copy), and on a batch whose constraints name more
// values of one label than a column codes (matched the plain way).
func TestSets_Agents(t *testing.T) {
	batches := map[string]*policy.Batch{}
	for seed := range uint64(6) {
		b := pt.Random(seed, pt.Size{Agents: 300, Requests: 200, Roles: 3, Allocations: 100})
		batches[fmt.Sprintf("random-%d", seed)] = b
		var e policy.Encoder
		var d policy.Decoder
		dec, err := d.DecodeBatch(e.EncodeBatch(b))
		if err != nil {
			t.Fatal(err)
		}
		batches[fmt.Sprintf("decoded-%d", seed)] = pt.Clone(dec)
	}
	c := pt.NewCluster()
	var many []string
	for i := range 80 {
		v := fmt.Sprintf("h%d", i)
		many = append(many, v)
		c.Agent(pt.R(1000, pt.GiB), "host="+v, "zone="+[]string{"a", "b"}[i%2])
	}
	c.Agent(pt.R(1000, pt.GiB))
	c.Request(pt.Req{N: 2, Resources: pt.R(100, pt.MiB), Constraints: []policy.Constraint{pt.In("host", many[:70]...)}})
	c.Request(pt.Req{Resources: pt.R(100, pt.MiB), Constraints: []policy.Constraint{pt.NotEquals("host", "h3"), pt.Equals("zone", "b")}})
	c.Request(pt.Req{Resources: pt.R(100, pt.MiB), Constraints: []policy.Constraint{pt.Equals("zone", "a")}})
	c.Request(pt.Req{Resources: pt.R(5000, pt.MiB), Constraints: []policy.Constraint{pt.NotEquals("zone", "a")}})
	c.Request(pt.Req{Resources: pt.R(100, pt.MiB), Constraints: []policy.Constraint{{Op: policy.OpNotEquals, Label: "zone"}, {Op: policy.OpEquals, Label: "zone"}}})
	batches["wide"] = c.Batch()

	for name, b := range batches {
		t.Run(name, func(t *testing.T) {
			s := feasible.New(b)
			for i := range b.Requests {
				r := &b.Requests[i]
				var want []int32
				never := true
				for a := range b.Agents {
					if r.Feasible(&b.Agents[a]) {
						want = append(want, int32(a))
						if b.Agents[a].Total.Fits(r.Resources) {
							never = false
						}
					}
				}
				if got := s.Agents(s.Of(i)); !slices.Equal(got, want) && (len(got) > 0 || len(want) > 0) {
					t.Fatalf("request %d (%+v): agents %v, want %v", i, r.Constraints, got, want)
				}
				if got := s.Never(i); got != never {
					t.Fatalf("request %d: Never = %v, want %v", i, got, never)
				}
			}
		})
	}
}
