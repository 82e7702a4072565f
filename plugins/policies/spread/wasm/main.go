//go:build wasip1

// Command wasm is the spread policy as a WebAssembly module (spread.wasm,
// built by go generate in plugins/policies).
package main

import (
	"github.com/dcos-kernel/dcos/plugins/policies/spread"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// spread never preempts: it reads no granted allocations.
var _ = policy.RegisterWants(spread.Place, 0)

func main() {}
