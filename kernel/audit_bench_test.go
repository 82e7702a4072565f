package kernel_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// BenchmarkAudit_OnOff measures syscall throughput with the audit trail
// off and on in the same run, interleaved, so that both see the same
// machine: two kernels, each on its own embedded etcd, one with
// NoAudit; each iteration sends a burst of 64 concurrent callers × 8
// StatePut calls (a mutating call of constant cost, group-committed) to
// one kernel, then the same burst to the other (which goes first
// alternates). The "on" calls carry an AuditCall as the API layer's
// interceptor adds, so each is recorded, chained and written in its
// batch's transaction. Reported: ns per call for each, and on/off, the
// figure docs/benchmarks.md quotes (goal ≤ 1.05).
//
// median-pair-on/off is the median of each iteration's own ratio, which
// the machine's drift between iterations does not move; with
// DCOS_BENCH_AUDIT_AA=1 both kernels run without the trail (a control:
// what the method reports for no difference).
func BenchmarkAudit_OnOff(b *testing.B) {
	const callers, calls = 64, 8
	start := func(noAudit bool) *kernel.Kernel {
		e := newEnv(b)
		k, err := kernel.New(context.Background(), kernel.Config{Store: e.store, HeartbeatTimeout: time.Hour, NoAudit: noAudit})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { k.Run(ctx); close(done) }()
		b.Cleanup(func() { cancel(); <-done })
		return k
	}
	// DCOS_BENCH_AUDIT_AA=1 runs the control: both kernels without the
	// trail, so that the spread the method itself has is seen.
	off, on := start(true), start(os.Getenv("DCOS_BENCH_AUDIT_AA") != "")
	value := make([]byte, 256)
	burst := func(k *kernel.Kernel, audit bool) time.Duration {
		t0 := time.Now()
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				key := fmt.Sprintf("bench/%d", c)
				for range calls {
					ctx := context.Background()
					if audit {
						ctx = kernel.WithAudit(ctx, kernel.NewAuditCall(fwA, "StatePut", key))
					}
					if _, err := k.StatePut(ctx, fwA, &pb.StatePutRequest{Key: key, Value: value}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(t0)
	}
	burst(off, false) // warm both
	burst(on, true)
	var tOff, tOn time.Duration
	var ratios []float64 // per iteration: the pair saw the same moment of the machine
	b.ResetTimer()
	for i := range b.N {
		var dOff, dOn time.Duration
		if i%2 == 0 {
			dOff = burst(off, false)
			dOn = burst(on, true)
		} else {
			dOn = burst(on, true)
			dOff = burst(off, false)
		}
		tOff, tOn = tOff+dOff, tOn+dOn
		ratios = append(ratios, float64(dOn)/float64(dOff))
	}
	slices.Sort(ratios)
	n := float64(b.N * callers * calls)
	b.ReportMetric(float64(tOff.Nanoseconds())/n, "ns/call-off")
	b.ReportMetric(float64(tOn.Nanoseconds())/n, "ns/call-on")
	b.ReportMetric(float64(tOn)/float64(tOff), "on/off")
	b.ReportMetric(ratios[len(ratios)/2], "median-pair-on/off")

}
