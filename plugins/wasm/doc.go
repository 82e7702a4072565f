// Package wasm runs allocation policies written in WebAssembly: it is the
// kernel's host side of the policy ABI (version 1, docs/policy-abi.md).
//
// A Host owns one wazero runtime (compiler engine, optional on-disk
// compilation cache, a memory cap per module instance, WASI made
// deterministic, and the `dcos` log imports). Host.Load compiles and checks
// a module and returns a *Policy, which implements kernel.Policy: each
// Place encodes the kernel's snapshot as a policy.Batch, calls the module
// under a deadline in one of a pool of instances, and decodes its answer.
// Each instance keeps the agents it converted and encoded last: when only
// their free resources changed (the usual cycle), it rewrites those and
// reuses the rest. It leaves the granted allocations out of the batch for
// a module whose dcos_policy_wants does not ask for them.
//
// Failures are contained and named: a deadline overrun, a trap, memory
// exhaustion and a malformed answer each yield an error wrapping
// ErrDeadline, ErrTrap, ErrOutOfMemory or ErrMalformedAnswer, and the
// instance that failed is discarded. A policy's own report of failure is a
// *policy.PolicyError.
//
// It is not the place that decides what to do with a failure (fall back to
// the last good policy, emit an event): the kernel does that. Nor does it
// validate placements against capacity or constraints: the kernel does
// that for every policy.
package wasm
