package policies_test

import (
	"context"
	"os"
	"runtime"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/dcos-kernel/dcos/plugins/policies"
	pt "github.com/dcos-kernel/dcos/plugins/policies/internal/policytest"
	"github.com/dcos-kernel/dcos/plugins/wasm"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// BenchmarkCycleParts splits BenchmarkCycle's wasm cycle (pt.Big(1),
// agents unchanged since the previous cycle, as between most cycles) into
// its parts, in CPU time of the benchmark's thread per cycle:
//
//   - encode-ms: policy.Encoder.EncodeBatchSameAgents, the host's encoding
//     (the agents' encoding reused, free resources rewritten);
//   - write-ms: dcos_alloc and copying the batch into the guest;
//   - guest-ms: dcos_place on an instance of the module called directly
//     in wazero (decoding, the algorithm, encoding the answer);
//   - place-ms: wasm.Policy.Place on the snapshot, the whole cycle; what
//     it adds to the three above is the host's conversion of the snapshot
//     (mostly comparing 10,000 agents' labels with the previous cycle's)
//     and decoding the answer;
//   - native-ms: the same Go function natively, as BenchmarkCycle/native.
//
// Each iteration runs all five, one after the other. drf-c is drf's
// algorithm in C (internal/cdrf) in the same harness, against native drf.
func BenchmarkCycleParts(b *testing.B) {
	ctx := context.Background()
	batch := pt.Big(1)
	nb := pt.Normalize(batch)
	s := pt.Snapshot(batch)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	if _, err := rt.NewHostModuleBuilder("dcos").
		NewFunctionBuilder().WithFunc(func(int32, int32, int32) {}).Export("log").
		NewFunctionBuilder().WithFunc(func(int32) int32 { return 0 }).Export("log_enabled").
		Instantiate(ctx); err != nil {
		b.Fatal(err)
	}
	h, err := wasm.NewHost(ctx, wasm.HostConfig{CacheDir: b.TempDir(), Deadline: benchDeadline})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	type module struct {
		name, native string
		wasm         []byte
	}
	var mods []module
	for _, name := range policies.Names() {
		mod, _ := policies.Builtin(name)
		mods = append(mods, module{name, name, mod})
	}
	c, err := os.ReadFile(cDRF)
	if err != nil {
		b.Fatal(err)
	}
	mods = append(mods, module{"drf-c", "drf", c})
	for _, mm := range mods {
		name, mod := mm.name, mm.wasm
		b.Run(name, func(b *testing.B) {
			p, err := h.LoadTrusted(ctx, name, mod)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(ctx)
			in := nb
			if p.Wants()&policy.WantAllocations == 0 {
				lean := *nb
				lean.Allocations = nil
				in = &lean
			}
			cm, err := rt.CompileModule(ctx, mod)
			if err != nil {
				b.Fatal(err)
			}
			m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close(ctx)
			alloc, place := m.ExportedFunction("dcos_alloc"), m.ExportedFunction("dcos_place")
			var e policy.Encoder
			e.EncodeBatch(in)
			var parts [5]float64 // ms
			step := func(i int, f func()) {
				t := cpuNow()
				f()
				parts[i] += float64((cpuNow() - t).Nanoseconds()) / 1e6
			}
			var enc []byte
			var ptr uint32
			var d policy.Decision
			cycle := func() {
				step(0, func() { enc = e.EncodeBatchSameAgents(in) })
				step(1, func() {
					res, err := alloc.Call(ctx, uint64(len(enc)))
					if err != nil {
						b.Fatal(err)
					}
					ptr = api.DecodeU32(res[0])
					m.Memory().Write(ptr, enc)
				})
				step(2, func() {
					if _, err := place.Call(ctx, uint64(ptr), uint64(len(enc))); err != nil {
						b.Fatal(err)
					}
				})
				step(3, func() {
					if _, err := p.Place(s); err != nil {
						b.Fatal(err)
					}
				})
				step(4, func() {
					d.Reset()
					if err := native[mm.native](nb, &d); err != nil {
						b.Fatal(err)
					}
				})
			}
			runtime.LockOSThread() // the CPU clock is the thread's
			defer runtime.UnlockOSThread()
			cycle() // warm: instances started, agents decoded once
			parts = [5]float64{}
			b.ResetTimer()
			for b.Loop() {
				cycle()
			}
			for i, unit := range []string{"encode-ms", "write-ms", "guest-ms", "place-ms", "native-ms"} {
				b.ReportMetric(parts[i]/float64(b.N), unit)
			}
		})
	}
}
