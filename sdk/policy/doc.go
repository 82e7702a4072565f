// Package policy is the SDK for dcos allocation policies: the typed values
// a policy sees (Batch) and answers (Decision), their wire encoding (ABI
// version 2, docs/policy-abi.md), and the glue that turns a plain Go
// function into a WebAssembly policy module.
//
// A policy is a Go function registered once:
//
//	var _ = policy.Register(func(b *policy.Batch, d *policy.Decision) error { ... })
//
// built with `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`. A
// policy that does not preempt registers with RegisterWants(f, 0): the
// host then leaves the granted allocations out of its batches. The
// same source builds natively (the exports become no-ops and Log writes
// nowhere), so a policy's logic is unit-tested with plain `go test`.
//
// The kernel host (plugins/wasm) uses the same codec: EncodeBatch and
// DecodeDecision on its side, DecodeBatch and EncodeDecision in the guest.
// The package has no dependencies beyond the standard library and imports
// nothing of dcos, so guests stay small.
package policy
