// Package feasible is the first stage of a built-in policy's placement:
// which agents a request's constraints admit, computed once per distinct
// constraint set rather than once per request, and whether a request can
// ever be placed on the cluster (the Never verdict).
//
// It looks at labels and total resources only; free resources, ranking and
// selection are the policies' business.
package feasible

import (
	"math/bits"
	"strconv"
	"strings"
	"unsafe"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

// Sets maps each request of a batch to the set of agents its constraints
// admit, and to its shape: requests with equal constraints (same
// operators, labels and values, in the same order) share one set;
// requests without constraints share set 0, every agent; requests with
// one set and equal resources share a shape. Agent lists are computed on
// first use.
//
// A Sets holds b and must not outlive the policy call. It is not safe for
// concurrent use.
type Sets struct {
	b      *policy.Batch
	of     []int32   // request → set
	shape  []int32   // request → shape
	rep    []int     // set → a request that has it
	agents [][]int32 // set → admitted agents in batch order; nil until computed
	done   []bool    // set → agents computed
	never  []int8    // shape → 0 unknown, 1 can fit somewhere, 2 never
	cols   *columns  // label columns for constraint matching; nil until needed
}

// New groups b's requests by constraint set and shape. It costs one pass
// over the requests (a string key is built only when a request's
// constraints differ from the previous request's, a map is consulted only
// when its shape does); no agent is looked at yet.
func New(b *policy.Batch) *Sets {
	n := len(b.Requests)
	s := &Sets{b: b, of: make([]int32, n), shape: make([]int32, n), rep: []int{-1}, agents: [][]int32{nil}, done: []bool{false}}
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
	type shapeKey struct {
		set int32
		res policy.Resources
	}
	var shapes map[shapeKey]int32
	nShapes := int32(0)
	for i := range b.Requests {
		if i > 0 && s.of[i] == s.of[i-1] && b.Requests[i].Resources == b.Requests[i-1].Resources {
			s.shape[i] = s.shape[i-1]
			continue
		}
		if shapes == nil {
			shapes = map[shapeKey]int32{}
		}
		k := shapeKey{s.of[i], b.Requests[i].Resources}
		id, ok := shapes[k]
		if !ok {
			id = nShapes
			nShapes++
			shapes[k] = id
		}
		s.shape[i] = id
	}
	s.never = make([]int8, nShapes)
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
		if a[i].Op != b[i].Op || !Same(a[i].Label, b[i].Label) || len(a[i].Values) != len(b[i].Values) {
			return false
		}
		for j := range a[i].Values {
			if !Same(a[i].Values[j], b[i].Values[j]) {
				return false
			}
		}
	}
	return true
}

// Same is a == b, with the common cases decided inline: a decoded batch
// shares one copy of equal strings (docs/policy-abi.md), so equal strings
// usually have the same data pointer, and different ones of one length
// usually differ in their first byte. A Go wasm guest pays a function call
// for every byte comparison the compiler does not inline.
func Same(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || unsafe.StringData(a) == unsafe.StringData(b) {
		return true
	}
	return a[0] == b[0] && a == b
}

// Len returns the number of distinct constraint sets.
func (s *Sets) Len() int { return len(s.rep) }

// Of returns the set of request req.
func (s *Sets) Of(req int) int32 { return s.of[req] }

// Shape returns the shape of request req: requests of one shape have the
// same set and the same resources. Shapes are numbered from 0 in order of
// first appearance.
func (s *Sets) Shape(req int) int32 { return s.shape[req] }

// Shapes returns the number of distinct shapes.
func (s *Sets) Shapes() int { return len(s.never) }

// Agents returns the agents set admits, in batch order. The first call for
// a set costs one pass over the agents (and the first call for a set with
// constraints one pass over every agent's labels); the slice is shared
// and must not be modified.
func (s *Sets) Agents(set int32) []int32 {
	if s.done[set] {
		return s.agents[set]
	}
	s.done[set] = true
	n := len(s.b.Agents)
	var list []int32
	if set == 0 {
		list = make([]int32, n)
		for i := range list {
			list[i] = int32(i)
		}
	} else {
		if s.cols == nil {
			s.cols = newColumns(s.b, s.rep[1:])
			if s.admitAll() {
				return s.agents[set]
			}
		}
		list = s.admitted(&s.b.Requests[s.rep[set]])
	}
	s.agents[set] = list
	return list
}

// admitAll computes the agent lists of every set with constraints at
// once, when it can: each agent's codes in every column combine into a
// class (few: a handful of zones times a flag or two), each class admits
// a bit set of sets, and one pass over the agents appends each to the
// lists of its class's sets. That replaces a pass over the agents per set
// (a dear loop in a wasm guest). It reports false, computing nothing, when
// there are more than 64 such sets, a column is wide or the classes are
// too many.
func (s *Sets) admitAll() bool {
	const maxClasses = 1 << 12
	sets := len(s.rep) - 1
	cols := s.cols.cols
	if sets > 64 || len(cols) == 0 {
		return false
	}
	stride := make([]int, len(cols))
	classes := 1
	for k := range cols {
		if cols[k].wide {
			return false
		}
		stride[k] = classes
		classes *= len(cols[k].vals) + 2
		if classes > maxClasses {
			return false
		}
	}
	// admits[c] is the bit set of the sets (bit i for set i+1) class c
	// satisfies.
	admits := make([]uint64, classes)
	for i := range sets {
		r := &s.b.Requests[s.rep[i+1]]
		for c := range admits {
			ok := true
			for j := range r.Constraints {
				con := &r.Constraints[j]
				k := s.cols.index(con.Label)
				code := c / stride[k] % (len(cols[k].vals) + 2)
				if cols[k].mask(con)>>code&1 == 0 {
					ok = false
					break
				}
			}
			if ok {
				admits[c] |= 1 << i
			}
		}
	}
	n := len(s.b.Agents)
	class := make([]uint16, n)
	count := make([]int, classes)
	for k := range cols {
		codes, st := cols[k].codes, uint16(stride[k])
		for a := range class {
			class[a] += uint16(codes[a]) * st
		}
	}
	for _, c := range class {
		count[c]++
	}
	sizes := make([]int, sets)
	for c, m := range admits {
		for ; m != 0; m &= m - 1 {
			sizes[bits.TrailingZeros64(m)] += count[c]
		}
	}
	for i := range sets {
		s.agents[i+1] = make([]int32, 0, sizes[i])
		s.done[i+1] = true
	}
	lists := s.agents[1:]
	for a, c := range class {
		for m := admits[c]; m != 0; m &= m - 1 {
			i := bits.TrailingZeros64(m)
			lists[i] = append(lists[i], int32(a))
		}
	}
	return true
}

// admitted lists the agents that satisfy r's constraints.
func (s *Sets) admitted(r *policy.Request) []int32 {
	if s.cols == nil {
		s.cols = newColumns(s.b, s.rep[1:])
	}
	type test struct {
		codes []uint8
		mask  uint64
	}
	tests := make([]test, len(r.Constraints))
	for i := range r.Constraints {
		c := &r.Constraints[i]
		col := s.cols.find(c.Label)
		if col == nil || col.wide {
			return s.scan(r)
		}
		tests[i] = test{col.codes, col.mask(c)}
	}
	list := make([]int32, 0, len(s.b.Agents))
agents:
	for a := range s.b.Agents {
		for _, t := range tests {
			if t.mask>>t.codes[a]&1 == 0 {
				continue agents
			}
		}
		list = append(list, int32(a))
	}
	return list
}

// scan lists the agents that satisfy r's constraints the plain way.
func (s *Sets) scan(r *policy.Request) []int32 {
	var list []int32
	for i := range s.b.Agents {
		if r.Feasible(&s.b.Agents[i]) {
			list = append(list, int32(i))
		}
	}
	return list
}

// Never reports whether request req can never be placed on this cluster:
// no agent its constraints admit has total resources it fits in. Answers
// are cached per shape.
func (s *Sets) Never(req int) bool {
	k := s.shape[req]
	if v := s.never[k]; v != 0 {
		return v == 2
	}
	need := s.b.Requests[req].Resources
	never := true
	for _, a := range s.Agents(s.of[req]) {
		if s.b.Agents[a].Total.Fits(need) {
			never = false
			break
		}
	}
	s.never[k] = 1
	if never {
		s.never[k] = 2
	}
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
func (s *Sets) SameShape(i, j int) bool { return s.shape[i] == s.shape[j] }

// columns code, for each label key that some constraint reads, every
// agent's value of it as a small integer, so that a constraint becomes a
// bit mask tested per agent instead of string comparisons.
type columns struct {
	cols []column
}

// column is one label key. Agent a's code is 0 when the label is unset, 1
// when it is set to a value no constraint names, 2+j when it is vals[j].
type column struct {
	key   string
	vals  []string
	wide  bool // too many values for a 64-bit mask: constraints on it are matched the plain way
	codes []uint8
}

const maxValues = 62 // codes 0..63 fit a uint64 mask

// newColumns builds the columns for the constraints of the requests reps,
// in one pass over every agent's labels.
func newColumns(b *policy.Batch, reps []int) *columns {
	cs := &columns{}
	for _, ri := range reps {
		for _, c := range b.Requests[ri].Constraints {
			col := cs.find(c.Label)
			if col == nil {
				cs.cols = append(cs.cols, column{key: c.Label})
				col = &cs.cols[len(cs.cols)-1]
			}
			for _, v := range c.Values {
				if col.index(v) < 0 {
					col.vals = append(col.vals, v)
				}
			}
		}
	}
	for k := range cs.cols {
		col := &cs.cols[k]
		col.wide = len(col.vals) > maxValues
		if !col.wide {
			col.codes = make([]uint8, len(b.Agents))
		}
	}
	// The loop below runs once per agent label: it is written for a Go
	// wasm guest, where every load and call is dear (locals, no method
	// calls, string comparisons by pointer first).
	keys := make([]string, len(cs.cols))
	for k := range cs.cols {
		keys[k] = cs.cols[k].key
	}
	for a := range b.Agents {
		ls := b.Agents[a].Labels
		for li := range ls {
			l := &ls[li]
			for k, key := range keys {
				if !Same(l.Key, key) {
					continue
				}
				col := &cs.cols[k]
				if col.wide {
					break
				}
				code := uint8(1)
				for j, v := range col.vals {
					if Same(l.Value, v) {
						code = uint8(2 + j)
						break
					}
				}
				col.codes[a] = code
				break
			}
		}
	}
	return cs
}

// index returns the position of the column of key in cs.cols, or -1.
func (cs *columns) index(key string) int {
	for k := range cs.cols {
		if Same(cs.cols[k].key, key) {
			return k
		}
	}
	return -1
}

// find returns the column of key, or nil.
func (cs *columns) find(key string) *column {
	for k := range cs.cols {
		if Same(cs.cols[k].key, key) {
			return &cs.cols[k]
		}
	}
	return nil
}

// index returns the position of v in col.vals, or -1.
func (col *column) index(v string) int {
	for j, w := range col.vals {
		if Same(v, w) {
			return j
		}
	}
	return -1
}

// mask returns the codes c admits, as bits (see column).
func (col *column) mask(c *policy.Constraint) uint64 {
	bit := func(v string) uint64 { return 1 << (2 + col.index(v)) }
	switch c.Op {
	case policy.OpEquals:
		if len(c.Values) > 0 {
			return bit(c.Values[0])
		}
	case policy.OpNotEquals:
		if len(c.Values) == 0 {
			return ^uint64(0)
		}
		return ^bit(c.Values[0])
	case policy.OpIn:
		var m uint64
		for _, v := range c.Values {
			m |= bit(v)
		}
		return m
	}
	return 0
}
