//go:build !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm)

package policy

func u32(p []byte, off int) uint32 { return le.Uint32(p[off:]) }

func i64(p []byte, off int) int64 { return int64(le.Uint64(p[off:])) }
