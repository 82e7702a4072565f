//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package policy

import "unsafe"

// u32 and i64 read little-endian integers at p[off:]. On little-endian
// targets (wasm among them) each is one unaligned load after one bounds
// check; the byte-by-byte form costs a Go wasm guest several times more.
func u32(p []byte, off int) uint32 {
	_ = p[off+3]
	return *(*uint32)(unsafe.Pointer(&p[off]))
}

func i64(p []byte, off int) int64 {
	_ = p[off+7]
	return *(*int64)(unsafe.Pointer(&p[off]))
}
