package dinit

import (
	"fmt"
	"testing"
)

func strategy(n int, minH, maxO float64) *Service {
	s := &Service{Instances: &n, UpgradeStrategy: &UpgradeStrategy{MinimumHealthCapacity: &minH, MaximumOverCapacity: &maxO}}
	s.Default()
	return s
}

// TestPlan_Invariants runs the planner's rule step by step against a
// simulated service whose new instances turn ready one at a time, in every
// order of events, and checks the upgrade strategy at every moment.
func TestPlan_Invariants(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 10} {
		for _, minH := range []float64{0, 0.5, 0.6, 0.9, 1} {
			for _, maxO := range []float64{0, 0.2, 0.5, 1} {
				s := strategy(n, minH, maxO)
				if s.Validate() != nil && minHealthy(s) >= maxTotal(s) {
					continue // refused by validation
				}
				t.Run(fmt.Sprintf("n=%d/min=%v/over=%v", n, minH, maxO), func(t *testing.T) {
					minHw, maxT := minHealthy(s), maxTotal(s)
					c := Counts{Old: n, OldReady: n}
					for round := 0; round < 10*n+10; round++ {
						st := NextStep(n, minHw, maxT, c)
						// Kill first, then start: check after each.
						killReady := max(0, st.Kill-(c.Old-c.OldReady))
						c.Old -= st.Kill
						c.OldReady -= killReady
						if c.OldReady+c.NewReady < minHw {
							t.Fatalf("round %d: %d ready < minHealthy %d (%+v, step %+v)", round, c.OldReady+c.NewReady, minHw, c, st)
						}
						c.New += st.Start
						if c.Old+c.New > maxT {
							t.Fatalf("round %d: %d instances > max %d (%+v)", round, c.Old+c.New, maxT, c)
						}
						if c.New > n {
							t.Fatalf("round %d: %d new > %d", round, c.New, n)
						}
						// One new instance turns ready.
						if c.NewReady < c.New {
							c.NewReady++
						}
						if c.Old == 0 && c.NewReady == n {
							return
						}
					}
					t.Fatalf("deployment did not finish: %+v", c)
				})
			}
		}
	}
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name string
		s    *Service
		c    Counts
		want string
	}{
		{"marathon defaults", strategy(3, 1, 1), Counts{Old: 3, OldReady: 3}, "[start 3 new kill 3 old]"},
		{"issue rolling upgrade", strategy(5, 0.6, 0.2), Counts{Old: 5, OldReady: 5}, "[kill 2 old, start 3 new kill 3 old, start 2 new]"},
		{"fresh service", strategy(3, 1, 1), Counts{}, "[start 3 new]"},
		{"scale up", strategy(5, 1, 1), Counts{New: 3, NewReady: 3}, "[start 2 new]"},
		{"scale down", strategy(2, 1, 1), Counts{New: 4, NewReady: 4}, "[stop 2 extra]"},
		{"nothing to do", strategy(2, 1, 1), Counts{New: 2, NewReady: 2}, "[]"},
		{"rollback half done", strategy(4, 0.5, 0), Counts{Old: 2, OldReady: 2, New: 2, NewReady: 2}, "[kill 2 old, start 2 new]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(Plan(tt.s, tt.c)); got != tt.want {
				t.Errorf("Plan = %s, want %s", got, tt.want)
			}
		})
	}
}
