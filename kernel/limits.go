package kernel

import (
	"cmp"
	"slices"
	"time"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// DefaultMaxPending is how many pending allocations one framework may hold
// in one role when Config.MaxPending is zero.
const DefaultMaxPending = 10_000

// RevokeChunk bounds the allocations one transaction of a bulk revoke
// takes back: external etcd clusters refuse larger transactions
// (--max-txn-ops), and watchers get the events in digestible batches.
const RevokeChunk = 2000

// pendingKey counts pending allocations per owner and role.
type pendingKey struct{ owner, role string }

// SetPendingLimits sets the cap on pending allocations a framework may hold
// per role: perRole[role] where set, def otherwise. A negative cap, and a
// def of 0 (a new Table's), mean none; a role's 0 means no pending
// allocation at all.
func (t *Table) SetPendingLimits(def int, perRole map[string]int) {
	t.maxPending, t.roleMaxPending = def, perRole
}

// pendingLimit is the cap for role; ok is false when there is none.
func (t *Table) pendingLimit(role string) (limit int, ok bool) {
	if n, set := t.roleMaxPending[role]; set {
		return n, n >= 0
	}
	return t.maxPending, t.maxPending > 0
}

// countPending adds d to the pending count of a's owner and role.
func (t *Table) countPending(a *pb.Allocation, d int) {
	k := pendingKey{a.GetOwner(), a.GetRole()}
	if n := t.pending[k] + d; n > 0 {
		t.pending[k] = n
	} else {
		delete(t.pending, k)
	}
}

// checkPending refuses an Allocate of n more instances that would take
// framework p past its role's cap on pending allocations: they would queue
// without bound (each is kept in memory and etcd, and every cycle looks at
// it). Operators are not capped. ResourceExhausted names the limit.
func (t *Table) checkPending(p Principal, role string, n int) error {
	if p.Role == RoleOperator {
		return nil
	}
	limit, capped := t.pendingLimit(role)
	if !capped {
		return nil
	}
	have := t.pending[pendingKey{p.Name, role}]
	if have+n <= limit {
		return nil
	}
	return errorf(ResourceExhausted, "count: %s %q holds %d pending allocations in role %q and asks for %d more; the limit is %d (dcosd --max-pending, --role-max-pending); revoke some (dcosctl revoke --all --pending) or wait for grants",
		p.Role, p.Name, have, displayRole(role), n, limit)
}

func displayRole(role string) string {
	if role == "" {
		return "*"
	}
	return role
}

// RevokeFilter selects the allocations of a bulk revoke. Empty fields
// match anything.
type RevokeFilter struct {
	Role, Owner string
	// Pending selects only allocations not granted yet.
	Pending bool
}

func (f RevokeFilter) match(a *pb.Allocation) bool {
	return (f.Role == "" || a.GetRole() == f.Role) &&
		(f.Owner == "" || a.GetOwner() == f.Owner) &&
		(!f.Pending || a.GetState() == pb.AllocationState_ALLOCATION_STATE_PENDING)
}

// RevokeAll revokes, in id order, at most max live allocations p may act on
// that match f, and returns their ids. A framework matches only its own:
// asking for another owner's is PermissionDenied.
func (t *Table) RevokeAll(p Principal, f RevokeFilter, max int, reason string, now time.Time, c *Changes) ([]string, error) {
	if p.Role == RoleFramework && f.Owner != "" && f.Owner != p.Name {
		return nil, errorf(PermissionDenied, "owner: a framework revokes only its own allocations, not %q's", clip(f.Owner))
	}
	if reason == "" {
		reason = "revoked by " + p.Name
	}
	type seqID struct {
		seq uint64
		id  string
	}
	var match []seqID
	for id, a := range t.allocs {
		if p.owns(a.GetOwner()) && f.match(a) {
			match = append(match, seqID{idSeq(id, "a-"), id})
		}
	}
	slices.SortFunc(match, func(a, b seqID) int { return cmp.Compare(a.seq, b.seq) })
	ids := make([]string, 0, min(len(match), max))
	for _, m := range match[:min(len(match), max)] {
		t.revokeAllocation(t.allocs[m.id], reason, now, c)
		ids = append(ids, m.id)
	}
	return ids, nil
}
