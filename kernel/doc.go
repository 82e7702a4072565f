// Package kernel is the dcos kernel: the only writer of cluster state.
//
// It keeps the resource table (agents, allocations, tasks, leases) in
// memory, runs allocation cycles, validates every placement a Policy
// returns, and makes each change durable through a Store in one transaction
// per loop iteration, emitting the events that Watch streams.
//
// The placement path is pure: a Policy sees a Snapshot and returns
// Placements; time (Config.Clock) and randomness (Snapshot.Seed) are
// injected. Transport (Connect/gRPC), authentication and the etcd client
// live outside this package: callers pass an authenticated Principal, and
// the store is an interface implemented in internal/store.
//
// # Reads: persist, then apply
//
// The loop's Table is its scratch: calls and the cycle compute the
// batch's changes on it; the committed state is the read view, which
// changes only once the store has accepted the batch. A commit that wrote
// nothing (refused by the store or by the leader fence) throws the scratch
// away: the loop rebuilds it from the read view, without reading the
// store, and puts the policy runtime (compiled modules, the active and
// last good policy) back as it was; only a commit whose outcome is
// unknown (ErrCommitUnknown: sent, unanswered) makes the loop read the
// store back, the one place that knows. Reads are never served from the
// scratch. They are served
// from the committed read view (view.go), a replica of clones that the
// loop brings up to date after each successful commit, before it answers
// the batch's callers, under a lock of the view's own held only for the
// map assignments (the clones are made before). So:
//
//   - a read never waits for the policy, the cycle or the store's fsync,
//     only, at worst, for the view's short apply;
//   - a read shows only committed state: a call not yet committed, or one
//     whose commit failed, is never seen (everything a client can observe
//     is durable first); a caller answered with revision R reads at least
//     R afterwards, and so does a watcher that received an event of
//     revision R (the watch hub holds a revision back until the view has
//     it: etcd may report a commit on its watch before the commit's own
//     answer reaches the loop);
//   - the objects in the view are never changed once put there (a change
//     puts a new clone in their place), so read results built from them
//     stay consistent after the lock is released.
//
// Memory-only data (agents' last heartbeats, plugins, images, queued image
// removals, task usage) is not part of a commit. The loop's table and the
// view share it, under a lock of its own (Table.memMu), so a heartbeat is
// checked against the view and recorded without waiting for the loop;
// lease renewals (also memory only) reach the view at the end of the
// loop iteration that made them. A failed commit leaves the view as it
// was (after an unknown outcome, the view is reset from the reloaded
// table once the reload succeeds).
//
// It is not a scheduler framework for tasks inside allocations: what runs in
// an allocation is the owner's business; the kernel records it and tells the
// agent.
package kernel
