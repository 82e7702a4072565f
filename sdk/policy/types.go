package policy

// ABIVersion is the policy ABI this package speaks. A module exports
// dcos_policy_abi_version returning it, and batches and decisions carry
// it in their magic.
const ABIVersion = 2

// Resources in integral units: millicores, bytes and a count of host
// ports. Ports is a count, not a range: which ports an allocation gets is
// the agent's business; a policy only sees how many are free.
type Resources struct {
	MilliCPU, Mem, Disk, Ports int64
}

// Fits reports whether need fits in r in every dimension, ports included.
func (r Resources) Fits(need Resources) bool {
	return need.MilliCPU <= r.MilliCPU && need.Mem <= r.Mem && need.Disk <= r.Disk && need.Ports <= r.Ports
}

// Add returns r + o.
func (r Resources) Add(o Resources) Resources {
	return Resources{r.MilliCPU + o.MilliCPU, r.Mem + o.Mem, r.Disk + o.Disk, r.Ports + o.Ports}
}

// Sub returns r - o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{r.MilliCPU - o.MilliCPU, r.Mem - o.Mem, r.Disk - o.Disk, r.Ports - o.Ports}
}

// Label is one agent label.
type Label struct{ Key, Value string }

// Agent is an agent that is up, as the policy sees it.
type Agent struct {
	ID     string
	Labels []Label
	Total  Resources
	// Free is Total minus what granted allocations hold.
	Free Resources
}

// Label returns the value of the label key and whether it is set.
func (a *Agent) Label(key string) (string, bool) {
	for _, l := range a.Labels {
		if l.Key == key {
			return l.Value, true
		}
	}
	return "", false
}

// Op is a constraint operator.
type Op uint32

// Constraint operators, as in the syscall ABI.
const (
	OpEquals    Op = 1 // label set and equal to Values[0]
	OpNotEquals Op = 2 // label unset or different from Values[0]
	OpIn        Op = 3 // label set and one of Values
)

// Constraint restricts placement by agent label.
type Constraint struct {
	Op     Op
	Label  string
	Values []string
}

// Matches reports whether agent a satisfies c.
func (c *Constraint) Matches(a *Agent) bool {
	v, ok := a.Label(c.Label)
	switch c.Op {
	case OpEquals:
		return ok && len(c.Values) > 0 && v == c.Values[0]
	case OpNotEquals:
		return !ok || len(c.Values) == 0 || v != c.Values[0]
	case OpIn:
		if !ok {
			return false
		}
		for _, w := range c.Values {
			if v == w {
				return true
			}
		}
	}
	return false
}

// NoRole is the Role index of a request or allocation without a role.
const NoRole = ^uint32(0)

// Request is one pending allocation instance. Requests arrive ordered by
// priority (highest first), then by arrival.
type Request struct {
	Resources Resources
	Priority  int32
	Role      uint32 // index into Batch.Roles, or NoRole
	Group     uint32 // instances of one Allocate call share a group
	// GangMin is 0 when the request's group is not a gang. Else the group
	// is a gang: place at least GangMin of its requests in this decision,
	// or none of them (the kernel drops every placement of a gang with
	// fewer, and a gang holds no room while it waits). Every request of a
	// gang carries the same GangMin; docs/policy-abi.md explains.
	GangMin     uint32
	Constraints []Constraint
}

// Feasible reports whether agent a satisfies every constraint of r (it
// does not look at resources).
func (r *Request) Feasible(a *Agent) bool {
	for i := range r.Constraints {
		if !r.Constraints[i].Matches(a) {
			return false
		}
	}
	return true
}

// Role is a role with its fair-share parameters.
type Role struct {
	Name   string
	Weight float64 // > 0; 1 unless the operator set one
	// Usage is what the role's granted allocations hold now.
	Usage Resources
	// Quota caps Usage; a zero dimension means no cap.
	Quota Resources
}

// Allocation is a granted allocation, for policies that preempt.
type Allocation struct {
	Agent     uint32 // index into Batch.Agents
	Role      uint32 // index into Batch.Roles, or NoRole
	Priority  int32
	Resources Resources
}

// Batch is one allocation cycle's input.
type Batch struct {
	// Seed is the only randomness a policy may use.
	Seed        uint64
	Agents      []Agent
	Requests    []Request
	Roles       []Role
	Allocations []Allocation
	// NoRoleUsage is what the granted allocations without a role hold
	// (the roles' Usage covers the others). It is there whether or not
	// the batch carries the allocations.
	NoRoleUsage Resources
	// AgentsUnchanged reports that Agents (ids, labels, totals, order)
	// are those of the previous batch this module instance decoded, but
	// for their free resources: the host said so and the decoder reused
	// its decoding of them. A policy may reuse what it derived from the
	// agents' labels and totals last time; it must decide exactly as it
	// would without the hint. Encoders ignore it.
	AgentsUnchanged bool
}

// Verdict says why a request was not placed.
type Verdict uint32

// Verdicts for requests a policy leaves unplaced.
const (
	// NotNow: it may fit later (resources are busy).
	NotNow Verdict = 1
	// Never: it cannot fit on this cluster as it is (no agent is big
	// enough or matches its constraints).
	Never Verdict = 2
)

// Placement puts Batch.Requests[Request] on Batch.Agents[Agent].
type Placement struct{ Request, Agent uint32 }

// Unplaced is a verdict on one request.
type Unplaced struct {
	Request uint32
	Verdict Verdict
}

// Decision is a policy's answer.
type Decision struct {
	Placements []Placement
	// Revocations are indices into Batch.Allocations to preempt before
	// placing (the kernel revokes them with reason PREEMPTED).
	Revocations []uint32
	// Unplaced optionally explains requests left out.
	Unplaced []Unplaced
}

// Place appends a placement.
func (d *Decision) Place(req, agent int) {
	d.Placements = append(d.Placements, Placement{uint32(req), uint32(agent)})
}

// Reset empties d, keeping its storage.
func (d *Decision) Reset() {
	d.Placements, d.Revocations, d.Unplaced = d.Placements[:0], d.Revocations[:0], d.Unplaced[:0]
}
