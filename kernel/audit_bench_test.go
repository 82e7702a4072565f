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
	b.Run("StatePut", func(b *testing.B) { benchAuditOnOff(b, statePutBurst) })
	b.Run("TaskCycle", func(b *testing.B) { benchAuditOnOff(b, taskCycleBurst) })
}

// auditBurst sends one burst of calls to k, each in the context mk gives
// it (carrying its AuditCall when the trail is measured), and returns the
// number of calls made.
type auditBurst func(b *testing.B, k *kernel.Kernel, agent string, mk func(call string, targets ...string) context.Context) int

// statePutBurst: 64 callers × 8 StatePut of 256 bytes, one key each — a
// mutating call of constant cost, the trail's worst case (its record is
// about the size of the call's own writes).
func statePutBurst(b *testing.B, k *kernel.Kernel, _ string, mk func(string, ...string) context.Context) int {
	const callers, calls = 64, 8
	value := make([]byte, 256)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			key := fmt.Sprintf("bench/%d", c)
			for range calls {
				if _, err := k.StatePut(mk("StatePut", key), fwA, &pb.StatePutRequest{Key: key, Value: value}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return callers * calls
}

// taskCycleBurst: 32 callers × 2 task lifecycles, each a framework's
// Allocate, Launch and Revoke (audited) and the agent's RUNNING report
// (not audited, as the API layer does not audit agents' reports).
func taskCycleBurst(b *testing.B, k *kernel.Kernel, agent string, mk func(string, ...string) context.Context) int {
	const callers, cycles = 32, 2
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range cycles {
				a, err := k.Allocate(mk("Allocate"), fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.01, MemBytes: 1 << 20}})
				if err != nil || len(a.GetAllocations()) != 1 {
					b.Errorf("Allocate: %v, %v", a, err)
					return
				}
				id := a.GetAllocations()[0].GetId()
				lr, err := k.Launch(mk("Launch", id), fwA, &pb.LaunchRequest{AllocationId: id, Command: "/bin/true"})
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := k.ReportTaskStatus(context.Background(), agentOne, &pb.ReportTaskStatusRequest{AgentId: agent, TaskId: lr.GetTask().GetId(), State: pb.TaskState_TASK_STATE_RUNNING, Pid: 42}); err != nil {
					b.Error(err)
					return
				}
				if _, err := k.Revoke(mk("Revoke", id), fwA, &pb.RevokeRequest{Id: id}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return callers * cycles * 4
}

func benchAuditOnOff(b *testing.B, burst auditBurst) {
	start := func(noAudit bool) (*kernel.Kernel, string) {
		e := newEnv(b)
		k, err := kernel.New(context.Background(), kernel.Config{Store: e.store, HeartbeatTimeout: time.Hour, NoAudit: noAudit})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { k.Run(ctx); close(done) }()
		b.Cleanup(func() { cancel(); <-done })
		return k, registerAs(b, k, agentOne)
	}
	// DCOS_BENCH_AUDIT_AA=1 runs the control: both kernels without the
	// trail, so that the spread the method itself has is seen.
	off, offAgent := start(true)
	on, onAgent := start(os.Getenv("DCOS_BENCH_AUDIT_AA") != "")
	plain := func(string, ...string) context.Context { return context.Background() }
	audited := func(call string, targets ...string) context.Context {
		return kernel.WithAudit(context.Background(), kernel.NewAuditCall(fwA, call, targets...))
	}
	run := func(k *kernel.Kernel, agent string, audit bool) (time.Duration, int) {
		mk := plain
		if audit {
			mk = audited
		}
		t0 := time.Now()
		n := burst(b, k, agent, mk)
		return time.Since(t0), n
	}
	run(off, offAgent, false) // warm both
	run(on, onAgent, true)
	var tOff, tOn time.Duration
	calls := 0
	var ratios []float64 // per iteration: the pair saw the same moment of the machine
	b.ResetTimer()
	for i := range b.N {
		var dOff, dOn time.Duration
		var n int
		if i%2 == 0 {
			dOff, n = run(off, offAgent, false)
			dOn, _ = run(on, onAgent, true)
		} else {
			dOn, n = run(on, onAgent, true)
			dOff, _ = run(off, offAgent, false)
		}
		calls += n
		tOff, tOn = tOff+dOff, tOn+dOn
		ratios = append(ratios, float64(dOn)/float64(dOff))
	}
	slices.Sort(ratios)
	b.ReportMetric(float64(tOff.Nanoseconds())/float64(calls), "ns/call-off")
	b.ReportMetric(float64(tOn.Nanoseconds())/float64(calls), "ns/call-on")
	b.ReportMetric(float64(tOn)/float64(tOff), "on/off")
	b.ReportMetric(ratios[len(ratios)/2], "median-pair-on/off")
}
