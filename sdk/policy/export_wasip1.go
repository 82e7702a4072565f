//go:build wasip1

package policy

import "unsafe"

//go:wasmexport dcos_policy_abi_version
func exportABIVersion() int32 { return ABIVersion }

//go:wasmexport dcos_alloc
func exportAlloc(n int32) int32 {
	if n < 0 {
		return 0
	}
	b := g.alloc(int(n))
	if n == 0 {
		return 0
	}
	return int32(uintptr(unsafe.Pointer(&b[0])))
}

//go:wasmexport dcos_place
func exportPlace(ptr, n int32) int64 {
	if n < 0 || n > int32(len(g.in)) || (n > 0 && ptr != int32(uintptr(unsafe.Pointer(&g.in[0])))) {
		g.out = EncodeDecision(g.out[:0], &Decision{}, errString("dcos_place: input is not the buffer dcos_alloc returned"))
	} else {
		g.place(int(n))
	}
	if len(g.out) == 0 {
		return 0
	}
	return int64(uintptr(unsafe.Pointer(&g.out[0])))<<32 | int64(len(g.out))
}

//go:wasmimport dcos log
func hostLog(level int32, ptr unsafe.Pointer, n int32)

//go:wasmimport dcos log_enabled
func hostLogEnabled(level int32) int32

func logEnabled(l Level) bool { return hostLogEnabled(int32(l)) != 0 }

func logWrite(l Level, msg string) {
	if len(msg) == 0 {
		return
	}
	hostLog(int32(l), unsafe.Pointer(unsafe.StringData(msg)), int32(len(msg)))
}
