//go:build wasip1

// Command wasm is the drf policy as a WebAssembly module (drf.wasm,
// built by go generate in plugins/policies).
package main

import (
	"github.com/dcos-kernel/dcos/plugins/policies/drf"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

var _ = policy.Register(drf.Place)

func main() {}
