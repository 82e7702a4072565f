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
	// Place decides for some of s.Requests. A request left out stays
	// pending.
	Place(s *Snapshot) (*Decision, error)
}

// Snapshot is a policy's whole input: the live agents, the pending
// requests in the order the kernel wants them considered (priority
// descending, then arrival), the roles with their usage, weights and quota,
// and the granted allocations (for policies that preempt).
type Snapshot struct {
	Agents      []AgentInfo
	Requests    []Request
	Roles       []RoleInfo
	Allocations []Granted
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
	ID        string
	RequestID string
	Owner     string
	Role      string
	Priority  int32
	// GangMin is the minimum of the request's gang (Allocation.gang_min):
	// 0, not a gang; else the requests sharing its RequestID are placed
	// at least GangMin together in one decision, or none of them (the
	// kernel drops the placements of a gang with fewer; gang.go).
	GangMin     int32
	Resources   Resources
	Constraints []*pb.Constraint
}

// RoleInfo is a role's fair-share parameters and current usage. Every role
// named by a request or a granted allocation is listed, sorted by name.
type RoleInfo struct {
	Name   string
	Weight float64 // > 0 (1 unless configured)
	Usage  Resources
	Quota  Resources // zero dimension: no cap
}

// Granted is a granted allocation on an alive agent.
type Granted struct {
	ID        string
	Agent     int // index into Snapshot.Agents
	Owner     string
	Role      string
	Priority  int32
	Resources Resources
}

// Decision is a policy's answer.
type Decision struct {
	// Placements assign requests to agents.
	Placements []Placement
	// Revocations name Snapshot.Allocations to preempt before placing. The
	// kernel accepts one only if a request of higher priority is placed on
	// the same agent in this decision; it revokes it with reason PREEMPTED.
	Revocations []int
	// Never lists requests the policy judges can never be placed on this
	// cluster as it is (as opposed to "not now").
	Never []int
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
