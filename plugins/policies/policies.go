package policies

import (
	"embed"
	"slices"
	"strings"
)

// Default is the policy the kernel uses unless told otherwise.
const Default = "drf"

//go:embed *.wasm
var modules embed.FS

// Builtin returns the WebAssembly module of built-in policy name, and
// whether there is one. The bytes are shared: callers must not modify
// them.
func Builtin(name string) ([]byte, bool) {
	if name == "" || strings.ContainsAny(name, "/.*?[\\") {
		return nil, false
	}
	b, err := modules.ReadFile(name + ".wasm")
	if err != nil {
		return nil, false
	}
	return b, true
}

// Names returns the names of the built-in policies, sorted.
func Names() []string {
	entries, _ := modules.ReadDir(".")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".wasm"); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}
