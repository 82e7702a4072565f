package dinit

import (
	"fmt"
	"math"
)

// minHealthy is how many instances must stay ready during a deployment:
// ceil(minimumHealthCapacity × instances).
func minHealthy(s *Service) int {
	return int(math.Ceil(*s.UpgradeStrategy.MinimumHealthCapacity*float64(s.Count()) - 1e-9))
}

// maxTotal is how many instances may exist during a deployment:
// instances + floor(maximumOverCapacity × instances).
func maxTotal(s *Service) int {
	n := s.Count()
	return n + int(math.Floor(*s.UpgradeStrategy.MaximumOverCapacity*float64(n)+1e-9))
}

// Counts is a service's instances as the planner sees them: old ones run
// another template version than the spec's, new ones the spec's; ready
// ones are RUNNING and pass their readiness (or health) check.
type Counts struct {
	Old, OldReady, New, NewReady int
}

// Step is one step of a deployment: kill Kill old instances (not ready
// ones first), then start Start new ones. OldAfter and NewAfter are the
// counts once it is done.
type Step struct {
	Kill  int `json:"kill,omitempty"`
	Start int `json:"start,omitempty"`
	// Stop is a number of extra new instances to stop (a scale down).
	Stop     int `json:"stop,omitempty"`
	OldAfter int `json:"oldAfter"`
	NewAfter int `json:"newAfter"`
}

// String describes the step for people: "kill 2 old, start 3 new".
func (s Step) String() string {
	switch {
	case s.Stop > 0:
		return fmt.Sprintf("stop %d extra", s.Stop)
	case s.Kill > 0 && s.Start > 0:
		return fmt.Sprintf("kill %d old, start %d new", s.Kill, s.Start)
	case s.Kill > 0:
		return fmt.Sprintf("kill %d old", s.Kill)
	case s.Start > 0:
		return fmt.Sprintf("start %d new", s.Start)
	}
	return "wait"
}

// NextStep is the rolling-upgrade rule for a spec of n instances: kill the
// old instances that are not ready, and ready old ones as long as
// OldReady + NewReady stays ≥ minHealthy; then start new ones as long as
// the total stays ≤ maxTotal and there are fewer than n new. Once every
// new instance is ready, every old one goes. Without old instances it is a
// scale: start the missing ones (kill the extra ones is Decide's).
func NextStep(n, minH, maxT int, c Counts) Step {
	kill := c.Old - c.OldReady
	if spare := c.OldReady + c.NewReady - minH; spare > 0 {
		kill += min(spare, c.OldReady)
	}
	if c.NewReady >= n {
		kill = c.Old
	}
	kill = min(max(kill, 0), c.Old)
	start := min(n-c.New, maxT-(c.Old-kill)-c.New)
	start = max(start, 0)
	return Step{Kill: kill, Start: start, OldAfter: c.Old - kill, NewAfter: c.New + start}
}

// Plan is the steps a deployment of s would follow from counts c,
// assuming every instance it starts turns ready and every kill takes
// effect: what svc apply --dry-run prints and a Deployment records. A
// step never leaves fewer than minHealthy ready (unless fewer were ready
// to begin with) nor more than maxTotal instances.
func Plan(s *Service, c Counts) []Step {
	n, minH, maxT := s.Count(), minHealthy(s), maxTotal(s)
	var steps []Step
	for i := 0; i < 2*n+4; i++ {
		if c.Old == 0 && c.New >= n {
			break
		}
		st := NextStep(n, minH, maxT, c)
		if st.Kill == 0 && st.Start == 0 {
			break // cannot progress (validation refuses such strategies)
		}
		steps = append(steps, st)
		c.OldReady -= max(0, st.Kill-(c.Old-c.OldReady))
		c.OldReady = max(c.OldReady, 0)
		c.Old, c.New = st.OldAfter, st.NewAfter
		c.NewReady = c.New
	}
	if c.New > n {
		steps = append(steps, Step{Stop: c.New - n, OldAfter: 0, NewAfter: n})
	}
	return steps
}
