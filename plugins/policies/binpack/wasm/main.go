//go:build wasip1

// Command wasm is the binpack policy as a WebAssembly module (binpack.wasm,
// built by go generate in plugins/policies).
package main

import (
	"github.com/dcos-kernel/dcos/plugins/policies/binpack"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

var _ = policy.Register(binpack.Place)

func main() {}
