// Package policies ships the built-in allocation policies as WebAssembly
// modules: binpack, spread, drf (the default) and priority. Each is a Go
// package here (plugins/policies/<name>, exporting Place), compiled for
// GOOS=wasip1 by <name>/wasm into <name>.wasm, which is committed and
// embedded; `go generate ./plugins/policies` rebuilds them, and
// TestBuiltinsUpToDate fails when a committed module no longer matches
// its source.
//
// Every built-in places gangs (policy.Request.GangMin) whole or not at
// all, through internal/gang (docs/policy-abi.md, "Groups and gangs").
//
// This package only hands out the modules' bytes; loading and running
// them is the wasm host's business (plugins/wasm). The Go packages are
// also the native baseline the modules are measured against.
package policies
