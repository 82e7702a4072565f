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
// It is not a scheduler framework for tasks inside allocations: what runs in
// an allocation is the owner's business; the kernel records it and tells the
// agent.
package kernel
