package rank

import "github.com/dcos-kernel/dcos/sdk/policy"

// FirstFit finds, for a request shape (a constraint set and the resources
// asked), the first admitted agent whose free resources fit it. It keeps a
// cursor per shape: while free resources only shrink, an agent passed over
// for a shape can never fit it again, so successive searches for one shape
// cost O(agents) in all rather than each. Call Reset whenever some agent's
// free resources grow (e.g. after a preemption).
//
// The zero value is ready to use. It is not safe for concurrent use.
type FirstFit struct {
	next map[fitKey]int
}

type fitKey struct {
	set int32
	res policy.Resources
}

// Find returns the first agent of agents (the admitted agents of set, in
// order) with free[a] fitting need, or -1.
func (f *FirstFit) Find(set int32, agents []int32, need policy.Resources, free []policy.Resources) int32 {
	if f.next == nil {
		f.next = map[fitKey]int{}
	}
	k := fitKey{set, need}
	i := f.next[k]
	for i < len(agents) && !free[agents[i]].Fits(need) {
		i++
	}
	f.next[k] = i
	if i == len(agents) {
		return -1
	}
	return agents[i]
}

// Reset forgets every cursor.
func (f *FirstFit) Reset() { clear(f.next) }
