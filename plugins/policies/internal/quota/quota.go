package quota

import "github.com/dcos-kernel/dcos/sdk/policy"

// Usage is what each role with a quota holds as a decision is built: the
// batch's Role.Usage plus the placements recorded with Take. Roles
// without a quota (an all-zero Quota) and requests without a role
// (policy.NoRole) are never held.
//
// Revocations free nothing here: a policy that preempts counts a role's
// usage as if its preempted allocations were kept, which the kernel's
// check (usage less the accepted revocations of the role) can only find
// smaller. The room a preemption frees in a quota counts from the next
// cycle.
//
// A Usage reads its batch only in New. It is not safe for concurrent use.
type Usage struct {
	used  []policy.Resources // role → usage; nil when no role is capped
	quota []policy.Resources // role → quota
}

// New returns the usage of b's roles before any placement. It costs one
// pass over b.Roles, and allocates nothing when no role has a quota.
func New(b *policy.Batch) Usage {
	var u Usage
	for i := range b.Roles {
		if b.Roles[i].Quota == (policy.Resources{}) {
			continue
		}
		if u.used == nil {
			u.used = make([]policy.Resources, len(b.Roles))
			u.quota = make([]policy.Resources, len(b.Roles))
		}
		u.used[i], u.quota[i] = b.Roles[i].Usage, b.Roles[i].Quota
	}
	return u
}

// Fits reports whether placing need for role keeps the role within its
// quota in every capped (non-zero) dimension, host ports included: the
// kernel's rule. It is true for NoRole and for a role without a quota.
// A role already past its quota (the quota was lowered below its usage)
// fits nothing, as in the kernel.
func (u *Usage) Fits(role uint32, need policy.Resources) bool {
	if int(role) >= len(u.used) { // no role capped, NoRole, or out of range
		return true
	}
	q, n := u.quota[role], u.used[role].Add(need)
	return (q.MilliCPU == 0 || n.MilliCPU <= q.MilliCPU) &&
		(q.Mem == 0 || n.Mem <= q.Mem) &&
		(q.Disk == 0 || n.Disk <= q.Disk) &&
		(q.Ports == 0 || n.Ports <= q.Ports)
}

// Take records the placement of need for role.
func (u *Usage) Take(role uint32, need policy.Resources) {
	if int(role) < len(u.used) {
		u.used[role] = u.used[role].Add(need)
	}
}
