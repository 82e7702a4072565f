package rank

import (
	"slices"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

// FirstFit finds, for a request shape (a constraint set and the resources
// asked), the first admitted agent whose free resources fit it. It keeps a
// cursor per shape: while free resources only shrink, an agent passed over
// for a shape can never fit it again, so successive searches for one shape
// cost O(agents) in all rather than each. Call Grew (or Reset) whenever some agent's
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

// Grew tells f that agent a's free resources grew (the other agents'
// did not): every cursor that passed a, in a set whose agents (given by
// agents, sorted) include a, moves back to it. It costs O(S·log A) for S
// shapes searched so far.
func (f *FirstFit) Grew(a int32, agents func(set int32) []int32) {
	for k, i := range f.next {
		if j, ok := slices.BinarySearch(agents(k.set), a); ok && j < i {
			f.next[k] = j
		}
	}
}
