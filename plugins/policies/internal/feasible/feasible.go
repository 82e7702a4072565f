// Package feasible is the first stage of a built-in policy's placement:
// which agents a request's constraints admit, computed once per distinct
// constraint set rather than once per request, and whether a request can
// ever be placed on the cluster (the Never verdict).
//
// It looks at labels and total resources only; free resources, ranking and
// selection are the policies' business.
package feasible

import (
	"strconv"
	"strings"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

// Sets maps each request of a batch to the set of agents its constraints
// admit. Requests with equal constraints (same operators, labels and
// values, in the same order) share one set; requests without constraints
// share set 0, every agent. Agent lists are computed on first use.
//
// A Sets holds b and must not outlive the policy call. It is not safe for
// concurrent use.
type Sets struct {
	b      *policy.Batch
	of     []int32   // request → set
	rep    []int     // set → a request that has it
	agents [][]int32 // set → admitted agents in batch order; nil until computed
	done   []bool    // set → agents computed
	never  map[neverKey]bool
}

type neverKey struct {
	set int32
	res policy.Resources
}

// New groups b's requests by constraint set. It costs one pass over the
// requests (a string key is built only when a request's constraints differ
// from the previous request's); no agent is looked at yet.
func New(b *policy.Batch) *Sets {
	s := &Sets{b: b, of: make([]int32, len(b.Requests)), rep: []int{-1}, agents: [][]int32{nil}, done: []bool{false}}
	var byKey map[string]int32
	var key strings.Builder
	for i := range b.Requests {
		cs := b.Requests[i].Constraints
		switch {
		case len(cs) == 0:
			s.of[i] = 0
			continue
		case i > 0 && equal(cs, b.Requests[i-1].Constraints):
			s.of[i] = s.of[i-1]
			continue
		}
		key.Reset()
		for _, c := range cs {
			key.WriteString(strconv.Itoa(int(c.Op)))
			writeString(&key, c.Label)
			key.WriteString(strconv.Itoa(len(c.Values)))
			for _, v := range c.Values {
				writeString(&key, v)
			}
		}
		if byKey == nil {
			byKey = map[string]int32{}
		}
		id, ok := byKey[key.String()]
		if !ok {
			id = int32(len(s.rep))
			byKey[key.String()] = id
			s.rep = append(s.rep, i)
			s.agents = append(s.agents, nil)
			s.done = append(s.done, false)
		}
		s.of[i] = id
	}
	return s
}

// writeString writes a length-prefixed string, so that keys are unambiguous.
func writeString(b *strings.Builder, v string) {
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(len(v)))
	b.WriteByte(':')
	b.WriteString(v)
}

func equal(a, b []policy.Constraint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Op != b[i].Op || a[i].Label != b[i].Label || len(a[i].Values) != len(b[i].Values) {
			return false
		}
		for j := range a[i].Values {
			if a[i].Values[j] != b[i].Values[j] {
				return false
			}
		}
	}
	return true
}

// Len returns the number of distinct constraint sets.
func (s *Sets) Len() int { return len(s.rep) }

// Of returns the set of request req.
func (s *Sets) Of(req int) int32 { return s.of[req] }

// Agents returns the agents set admits, in batch order. The first call for
// a set costs one pass over the agents; the slice is shared and must not
// be modified.
func (s *Sets) Agents(set int32) []int32 {
	if s.done[set] {
		return s.agents[set]
	}
	s.done[set] = true
	var list []int32
	if set == 0 {
		list = make([]int32, len(s.b.Agents))
		for i := range list {
			list[i] = int32(i)
		}
	} else {
		r := &s.b.Requests[s.rep[set]]
		for i := range s.b.Agents {
			if r.Feasible(&s.b.Agents[i]) {
				list = append(list, int32(i))
			}
		}
	}
	s.agents[set] = list
	return list
}

// Never reports whether request req can never be placed on this cluster:
// no agent its constraints admit has total resources it fits in. Answers
// are cached per (constraint set, resources).
func (s *Sets) Never(req int) bool {
	k := neverKey{s.of[req], s.b.Requests[req].Resources}
	if v, ok := s.never[k]; ok {
		return v
	}
	never := true
	for _, a := range s.Agents(k.set) {
		if s.b.Agents[a].Total.Fits(k.res) {
			never = false
			break
		}
	}
	if s.never == nil {
		s.never = map[neverKey]bool{}
	}
	s.never[k] = never
	return never
}

// Verdict returns the verdict for request req left unplaced: Never when it
// can never be placed (see Never), else NotNow.
func (s *Sets) Verdict(req int) policy.Verdict {
	if s.Never(req) {
		return policy.Never
	}
	return policy.NotNow
}

// SameShape reports whether requests i and j ask for the same resources
// under the same constraint set, so that a policy may treat them as one
// run of identical instances.
func (s *Sets) SameShape(i, j int) bool {
	return s.of[i] == s.of[j] && s.b.Requests[i].Resources == s.b.Requests[j].Resources
}
