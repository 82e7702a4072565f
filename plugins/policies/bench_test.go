package policies_test

import (
	"context"
	"maps"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/plugins/policies"
	pt "github.com/dcos-kernel/dcos/plugins/policies/internal/policytest"
	"github.com/dcos-kernel/dcos/plugins/wasm"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// benchDeadline lets a slow cycle be measured rather than cut off.
const benchDeadline = 30 * time.Second

// loaders are the two ways the host loads a module.
var loaders = []struct {
	mode string
	load func(h *wasm.Host) func(context.Context, string, []byte) (*wasm.Policy, error)
}{
	{trusted, func(h *wasm.Host) func(context.Context, string, []byte) (*wasm.Policy, error) { return h.LoadTrusted }},
	{interruptible, func(h *wasm.Host) func(context.Context, string, []byte) (*wasm.Policy, error) { return h.Load }},
}

// BenchmarkCycle is one allocation cycle of each built-in on policytest.Big
// (10,000 agents filled to 90% of their cpu by 20,000-odd granted
// allocations, 1,000 pending requests, 4 roles), as a kernel snapshot.
//
//   - wasm: the module loaded trusted (as dcosd loads its built-ins);
//     Place(snapshot) per iteration: the host's conversion and encoding,
//     the guest's decoding, the algorithm, encoding and decoding the answer.
//   - wasm-interruptible: the same, loaded as an operator's module is
//     (deadline checked at every loop header).
//   - wasm-agents-changed: wasm, but every cycle one agent's labels differ
//     from the previous cycle's, so the host converts and encodes every
//     agent again (wasm reuses the agents' encoding when only their free
//     resources changed, as between most cycles; the snapshot here is the
//     same every cycle).
//   - native: the same Go function on the batch the module decodes, built
//     from the snapshot once, outside the timer (so it excludes any
//     conversion or encoding).
//   - drf/wasm-c: drf's algorithm written in C (internal/cdrf), loaded and
//     called as wasm is: a non-Go guest deciding the same.
//
// Each reports placements/s (the decision's placements per cycle) and
// cpu-ms/op, the CPU time of the benchmark's thread per cycle (the guest
// runs on the calling thread): on a machine shared with other work it
// varies far less than the wall time (ns/op).
func BenchmarkCycle(b *testing.B) { benchCycle(b, pt.Big(1)) }

// BenchmarkCycleOpen is BenchmarkCycle on the same kind of cluster with
// nothing granted yet, so that every request that can fit does: the
// issue's "10,000 agents × 1,000 pending requests" on an idle cluster.
func BenchmarkCycleOpen(b *testing.B) {
	benchCycle(b, pt.Random(1, pt.Size{Agents: 10000, Requests: 1000, Roles: 4}))
}

func benchCycle(b *testing.B, batch *policy.Batch) {
	s := pt.Snapshot(batch)
	// changed is s with agent 0's labels changed: alternating the two makes
	// every cycle see a changed agent.
	changed := *s
	changed.Agents = slices.Clone(s.Agents)
	changed.Agents[0].Labels = maps.Clone(s.Agents[0].Labels)
	if changed.Agents[0].Labels == nil {
		changed.Agents[0].Labels = map[string]string{}
	}
	changed.Agents[0].Labels["bench"] = "changed"
	nb := pt.Normalize(batch)
	ctx := context.Background()
	h, err := wasm.NewHost(ctx, wasm.HostConfig{CacheDir: b.TempDir(), Deadline: benchDeadline})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	for _, name := range policies.Names() {
		mod, _ := policies.Builtin(name)
		var want *kernel.Decision
		b.Run(name+"/native", func(b *testing.B) {
			var d policy.Decision
			if err := native[name](nb, &d); err != nil {
				b.Fatal(err)
			}
			want = pt.KernelDecision(&d)
			placed := len(d.Placements)
			cpu := startCPU()
			for b.Loop() {
				d.Reset()
				if err := native[name](nb, &d); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
			b.ReportMetric(float64(placed)*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
		})
		if name == "drf" {
			b.Run(name+"/wasm-c", func(b *testing.B) {
				mod, err := os.ReadFile(cDRF)
				if err != nil {
					b.Fatal(err)
				}
				p, err := h.LoadTrusted(ctx, "c-drf", mod)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close(ctx)
				d, err := p.Place(s)
				if err != nil {
					b.Fatal(err)
				}
				if diff := pt.DiffDecisions(d, want); diff != "" {
					b.Fatalf("C and Go drf differ on the big batch: %s", diff)
				}
				cpu := startCPU()
				for b.Loop() {
					if _, err := p.Place(s); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b)
				b.ReportMetric(float64(len(d.Placements))*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
			})
		}
		for _, l := range loaders {
			sub := "wasm"
			if l.mode == interruptible {
				sub = "wasm-interruptible"
			}
			b.Run(name+"/"+sub, func(b *testing.B) {
				p, err := l.load(h)(ctx, name, mod)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close(ctx)
				d, err := p.Place(s) // also starts the instance the loop reuses
				if err != nil {
					b.Fatal(err)
				}
				if want != nil {
					if diff := pt.DiffDecisions(d, want); diff != "" {
						b.Fatalf("wasm and native differ on the big batch: %s", diff)
					}
				}
				placed := len(d.Placements)
				cpu := startCPU()
				for b.Loop() {
					if _, err := p.Place(s); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b)
				b.ReportMetric(float64(placed)*float64(b.N)/b.Elapsed().Seconds(), "placements/s")
			})
			if l.mode != trusted {
				continue
			}
			b.Run(name+"/wasm-agents-changed", func(b *testing.B) {
				p, err := l.load(h)(ctx, name, mod)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close(ctx)
				snaps := []*kernel.Snapshot{s, &changed}
				i := 0
				cpu := startCPU()
				for b.Loop() {
					if _, err := p.Place(snaps[i%2]); err != nil {
						b.Fatal(err)
					}
					i++
				}
				cpu.report(b)
			})
		}
	}
}

// BenchmarkSwap is the policy swap latency: from Load of a built-in
// module (2.8–2.9 MB, Go-built) into a fresh Host to the end of its first
// Place on a small snapshot (7 agents, 40 requests). cold: the Host's
// compilation cache directory is empty (first load); warm: a new Host on a
// directory an earlier Host filled (as after a kernel restart). Making and
// closing the Hosts is outside the timer. cpu-ms/op is the CPU time the
// whole process spent meanwhile (every thread: the compiler's workers
// too), which on a machine shared with other work says more than the wall
// time about what a swap costs.
func BenchmarkSwap(b *testing.B) {
	small := pt.Snapshot(pt.Random(1, pt.Size{Agents: 7, Requests: 40, Roles: 2, Allocations: 10}))
	ctx := context.Background()
	var cpuSum *time.Duration
	swap := func(b *testing.B, dir, mode, name string, mod []byte) {
		b.StopTimer()
		h, err := wasm.NewHost(ctx, wasm.HostConfig{CacheDir: dir, Deadline: benchDeadline})
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close(ctx)
		load := h.Load
		if mode == trusted {
			load = h.LoadTrusted
		}
		b.StartTimer()
		cpu := processCPU()
		p, err := load(ctx, name, mod)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Place(small); err != nil {
			b.Fatal(err)
		}
		*cpuSum += processCPU() - cpu
		b.StopTimer()
		_ = p.Close(ctx)
	}
	for _, name := range []string{"drf", "priority"} {
		mod, _ := policies.Builtin(name)
		for _, l := range loaders {
			b.Run(name+"/"+l.mode+"/cold", func(b *testing.B) {
				cpuSum = new(time.Duration)
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					dir := b.TempDir()
					swap(b, dir, l.mode, name, mod)
				}
				b.ReportMetric(float64(len(mod))/1e6, "MB")
				b.ReportMetric(float64(cpuSum.Milliseconds())/float64(b.N), "cpu-ms/op")
			})
			b.Run(name+"/"+l.mode+"/warm", func(b *testing.B) {
				dir := b.TempDir()
				cpuSum = new(time.Duration)
				swap(b, dir, l.mode, name, mod) // fills the cache
				cpuSum = new(time.Duration)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					swap(b, dir, l.mode, name, mod)
				}
				b.ReportMetric(float64(len(mod))/1e6, "MB")
				b.ReportMetric(float64(cpuSum.Milliseconds())/float64(b.N), "cpu-ms/op")
			})
		}
	}
}

// threadCPU measures the CPU time of the benchmark's goroutine, locked to
// its thread from startCPU to report.
type threadCPU struct{ start time.Duration }

func cpuNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// startCPU locks the goroutine to its thread and starts measuring.
func startCPU() threadCPU {
	runtime.LockOSThread()
	return threadCPU{cpuNow()}
}

// report unlocks the thread and reports cpu-ms/op.
func (c threadCPU) report(b *testing.B) {
	d := cpuNow() - c.start
	runtime.UnlockOSThread()
	b.ReportMetric(float64(d.Nanoseconds())/1e6/float64(b.N), "cpu-ms/op")
}

// processCPU is the CPU time the process has used, every thread.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
