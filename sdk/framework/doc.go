// Package framework is the public Go SDK for dcos frameworks: programs
// that allocate resources, launch tasks and watch their state through the
// kernel's syscalls, and whose replicas elect a leader and keep small
// durable state in the kernel.
//
// It offers, on top of the ABI in syscalls/v1 (imported as pb):
//
//   - Client: one typed method per syscall, with failover between kernel
//     endpoints and retries of the calls the kernel could not serve
//     (Unavailable, or its rate limit); Fenced returns a client whose
//     writes carry a leadership epoch.
//   - Watch: an event stream that survives reconnects with neither a gap
//     nor a duplicate, and reports a compacted history as *ResyncError.
//   - Cache: the caller's own allocations and tasks, kept current by List
//     and Watch.
//   - Queue: a work queue of keys with per-key backoff (controller-runtime's
//     shape), to reconcile desired and observed state.
//   - Elector: leader election among a framework's replicas, handing the
//     winner a *pb.Fence for its writes.
//
// It is not a scheduler: placement is the kernel's (its allocation
// policy). It imports only the standard library, connect and syscalls/v1,
// never the kernel's own packages: what the init and jobs frameworks use,
// every outside framework can use too. See docs/framework-sdk.md.
package framework
