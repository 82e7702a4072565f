package kernel

import pb "github.com/dcos-kernel/dcos/syscalls/v1"

// Policy decides placements. It is called once per allocation cycle with
// the whole batch and must be a pure function of the Snapshot: same
// snapshot, same answer. It must not retain or modify the snapshot.
//
// The kernel never trusts the answer: every Placement is validated (index
// ranges, agent alive, constraints, capacity summed over the batch) before
// commit; invalid ones are dropped and reported. A returned error fails the
// whole cycle for this policy (nothing is placed; requests stay pending).
type Policy interface {
	// Name identifies the policy in events and logs.
	Name() string
	// Place returns placements for some of s.Requests. A request left out
	// stays pending.
	Place(s *Snapshot) ([]Placement, error)
}

// Snapshot is a policy's whole input: the live agents and the pending
// requests, in the order the kernel wants them considered (priority
// descending, then arrival).
type Snapshot struct {
	Agents   []AgentInfo
	Requests []Request
	// Seed is the only randomness a policy may use.
	Seed uint64
}

// AgentInfo is one alive agent as a policy sees it.
type AgentInfo struct {
	ID     string
	Labels map[string]string
	Total  Resources
	// Free is Total minus what granted allocations hold.
	Free Resources
}

// Request is one pending allocation instance.
type Request struct {
	ID          string
	RequestID   string
	Owner       string
	Role        string
	Priority    int32
	Resources   Resources
	Constraints []*pb.Constraint
}

// Placement assigns Snapshot.Requests[Request] to Snapshot.Agents[Agent].
type Placement struct {
	Request int
	Agent   int
}

// Matches reports whether an agent's labels satisfy every constraint.
func Matches(labels map[string]string, cs []*pb.Constraint) bool {
	for _, c := range cs {
		if !matches(labels, c) {
			return false
		}
	}
	return true
}

func matches(labels map[string]string, c *pb.Constraint) bool {
	v, ok := labels[c.GetLabel()]
	switch c.GetOp() {
	case pb.Constraint_OP_EQUALS:
		return ok && len(c.GetValues()) > 0 && v == c.GetValues()[0]
	case pb.Constraint_OP_NOT_EQUALS:
		return !ok || len(c.GetValues()) == 0 || v != c.GetValues()[0]
	case pb.Constraint_OP_IN:
		if !ok {
			return false
		}
		for _, w := range c.GetValues() {
			if v == w {
				return true
			}
		}
		return false
	}
	return false
}
