package dinit

import (
	"sort"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var kernelOps = map[string]pb.Constraint_Op{
	OpEquals: pb.Constraint_OP_EQUALS, OpNotEquals: pb.Constraint_OP_NOT_EQUALS, OpIn: pb.Constraint_OP_IN,
}

// Serial reports whether the spec has constraints that depend on where the
// other instances run (UNIQUE, MAX_PER, GROUP_BY): such instances are
// allocated one at a time so that two pending ones cannot land together.
func (s *Service) Serial() bool {
	for _, c := range s.Constraints {
		if _, ok := kernelOps[c.Op]; !ok {
			return true
		}
	}
	return false
}

// KernelConstraints translates the spec's constraints into kernel
// constraints for one more instance, given the labels of the agents the
// other live instances run on (one entry per instance) and the labels of
// all known agents (for GROUP_BY's set of values):
//
//   - EQUALS, NOT_EQUALS, IN pass through;
//   - UNIQUE L: NOT_EQUALS v for every value v of L already used;
//   - MAX_PER L N: NOT_EQUALS v for every value used N times or more;
//   - GROUP_BY L: IN the values of L (among agents) used least.
//
// The result is deterministic (values sorted).
func (s *Service) KernelConstraints(placed []map[string]string, agents []map[string]string) []*pb.Constraint {
	var out []*pb.Constraint
	for _, c := range s.Constraints {
		if op, ok := kernelOps[c.Op]; ok {
			vals := c.Values
			if c.Op != OpIn {
				vals = []string{c.Value}
			}
			out = append(out, &pb.Constraint{Label: c.Label, Op: op, Values: append([]string(nil), vals...)})
			continue
		}
		used := map[string]int{}
		for _, l := range placed {
			if v, ok := l[c.Label]; ok {
				used[v]++
			}
		}
		switch c.Op {
		case OpUnique, OpMaxPer:
			limit := 1
			if c.Op == OpMaxPer {
				limit = c.Max
			}
			for _, v := range sortedKeys(used) {
				if used[v] >= limit {
					out = append(out, &pb.Constraint{Label: c.Label, Op: pb.Constraint_OP_NOT_EQUALS, Values: []string{v}})
				}
			}
		case OpGroupBy:
			all := map[string]bool{}
			for _, l := range agents {
				if v, ok := l[c.Label]; ok {
					all[v] = true
				}
			}
			if len(all) == 0 {
				// No agent carries the label: the kernel will report why.
				out = append(out, &pb.Constraint{Label: c.Label, Op: pb.Constraint_OP_IN, Values: []string{""}})
				continue
			}
			least := -1
			for v := range all {
				if least < 0 || used[v] < least {
					least = used[v]
				}
			}
			var vals []string
			for _, v := range sortedKeys(all) {
				if used[v] == least {
					vals = append(vals, v)
				}
			}
			out = append(out, &pb.Constraint{Label: c.Label, Op: pb.Constraint_OP_IN, Values: vals})
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
