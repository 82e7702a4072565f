//go:build wasip1

package policy

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"unsafe"
)

//go:wasmexport dcos_policy_abi_version
func exportABIVersion() int32 { return ABIVersion }

//go:wasmexport dcos_policy_wants
func exportWants() int32 { return int32(wants) }

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

// Garbage collection in a guest. In a wasm reactor nothing runs between
// calls, so a collection that starts during a call (when the heap reaches
// its goal) cannot finish: its mark phase stays open, and with it the
// write barrier, which made every pointer store of later calls ~10x slower
// (decoding a 10k-agent batch: 17 ms instead of 1.8 ms). So the guest
// turns proportional GC off and collects itself, synchronously, at the end
// of a call once the heap has grown past gcEvery; the memory limit is a
// backstop for a single call that allocates a lot.
const (
	gcEvery    = 32 << 20
	gcBackstop = 128 << 20
)

var (
	gcTuned  bool
	gcSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
)

func tuneGC() {
	if !gcTuned {
		debug.SetGCPercent(-1)
		debug.SetMemoryLimit(gcBackstop)
		gcTuned = true
	}
}

func collect() {
	metrics.Read(gcSample)
	if v := gcSample[0].Value; v.Kind() == metrics.KindUint64 && v.Uint64() > gcEvery {
		runtime.GC()
	}
}
