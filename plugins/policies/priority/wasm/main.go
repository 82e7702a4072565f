//go:build wasip1

// Command wasm is the priority policy as a WebAssembly module (priority.wasm,
// built by go generate in plugins/policies).
package main

import (
	"github.com/dcos-kernel/dcos/plugins/policies/priority"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

var _ = policy.Register(priority.Place)

func main() {}
