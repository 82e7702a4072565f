package rank

import (
	"slices"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

// FirstFit finds, for a request shape (a constraint set and the resources
// asked, numbered by feasible.Sets), the first admitted agent whose free
// resources fit it. It keeps a cursor per shape: while free resources only
// shrink, an agent passed over for a shape can never fit it again, so
// successive searches for one shape cost O(agents) in all rather than
// each. Call Grew (or Reset) whenever some agent's free resources grow
// (e.g. after a preemption).
//
// The zero value is ready to use. It is not safe for concurrent use.
type FirstFit struct {
	next []int32 // shape → cursor
	set  []int32 // shape → its set, or -1 while the shape is unsearched
}

// Find returns the first agent of agents (the admitted agents of set, in
// order) with free[a] fitting need, or -1. shape numbers (set, need).
func (f *FirstFit) Find(shape, set int32, agents []int32, need policy.Resources, free []policy.Resources) int32 {
	if int(shape) >= len(f.next) {
		f.grow(int(shape) + 1)
	}
	f.set[shape] = set
	i := int(f.next[shape])
	for i < len(agents) {
		r := &free[agents[i]]
		if need.MilliCPU <= r.MilliCPU && need.Mem <= r.Mem && need.Disk <= r.Disk && need.Ports <= r.Ports {
			break
		}
		i++
	}
	f.next[shape] = int32(i)
	if i == len(agents) {
		return -1
	}
	return agents[i]
}

func (f *FirstFit) grow(n int) {
	for len(f.next) < n {
		f.next = append(f.next, 0)
		f.set = append(f.set, -1)
	}
}

// Reset forgets every cursor.
func (f *FirstFit) Reset() {
	clear(f.next)
	for i := range f.set {
		f.set[i] = -1
	}
}

// Grew tells f that agent a's free resources grew (the other agents'
// did not): every cursor that passed a, in a set whose agents (given by
// agents, sorted) include a, moves back to it. It costs O(S·log A) for S
// shapes searched so far.
func (f *FirstFit) Grew(a int32, agents func(set int32) []int32) {
	for k, i := range f.next {
		if f.set[k] < 0 {
			continue
		}
		if j, ok := slices.BinarySearch(agents(f.set[k]), a); ok && int32(j) < i {
			f.next[k] = int32(j)
		}
	}
}
