//go:build wasip1

// Command wasm is the drf policy as a WebAssembly module (drf.wasm,
// built by go generate in plugins/policies).
package main

import (
	"github.com/dcos-kernel/dcos/plugins/policies/drf"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// drf reads no granted allocations (their no-role usage comes in the
// batch header), so the host leaves them out.
var _ = policy.RegisterWants(drf.Place, 0)

func main() {}
