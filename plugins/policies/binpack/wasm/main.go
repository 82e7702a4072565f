//go:build wasip1

// Command wasm is the binpack policy as a WebAssembly module (binpack.wasm,
// built by go generate in plugins/policies).
package main

import (
	"github.com/dcos-kernel/dcos/plugins/policies/binpack"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// binpack never preempts: it reads no granted allocations.
var _ = policy.RegisterWants(binpack.Place, 0)

func main() {}
