// Package store makes the kernel's table durable in etcd and serves its
// event log: it implements kernel.Store over a clientv3 client, and starts
// an embedded single-member etcd when no external cluster is given.
//
// Layout under the prefix (default "/dcos/"): agents/<id>, allocations/<id>, volumes/<name>,
// tasks/<id> hold protobuf-encoded syscall messages; meta/seq the id
// sequence; events the events of the last transaction (length-delimited
// Events), so that the event log is etcd's own revision history and a Watch
// resumes across kernel restarts until etcd compacts it.
//
// The embedded etcd guards its disk (Embedded.Writable, see space.go): below
// a free-space floor on its filesystem, or with etcd's NOSPACE alarm
// raised, writes are refused with a *SpaceError before etcd could hit
// ENOSPC (which it does not survive); Etcd.WithGate makes the kernel's
// store ask it.
//
// A standby kernel keeps the state warm with a Follower (warm.go): one
// load, then etcd's watch of the prefix, decoded by the same per-key
// decoder as Load; a store WithFollower loads from it. Its State may
// write kernel/warm-sync, a marker whose revision it waits for.
//
// On an external cluster of several members, a LeaderRoute (route.go)
// sends the kernel's commits to the etcd leader's endpoint, which a
// follower would otherwise forward them to.
//
// It is not a general etcd wrapper: it knows the kernel's keys only.
package store
