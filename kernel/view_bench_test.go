package kernel_test

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// BenchmarkListAgents_DuringCycle measures ListAgents latency while the
// kernel runs the large cycle: 10,000 agents registered, then
// each iteration submits 1,000 single-instance requests at once (a few
// group commits, one native first-fit cycle over 10,000 agents × 1,000
// requests, one commit of the placements to a real embedded etcd), while
// one reader calls ListAgents back to back. The metrics are the reader's
// p50/p99/max over every call that overlapped an iteration; revoking the
// placements between iterations is untimed and unmeasured. The reader
// also times Revision, the cheapest read, after each ListAgents: its p99
// (floor-p99-ms) is what waiting for a CPU costs on this machine, the
// floor under ListAgents' own.
//
//	go test ./kernel -run '^$' -bench ListAgents_DuringCycle -benchtime 10x
func BenchmarkListAgents_DuringCycle(b *testing.B) {
	const agents, reqs = 10_000, 1_000
	e := newEnv(b)
	k, err := kernel.New(context.Background(), kernel.Config{Store: e.store, HeartbeatTimeout: time.Hour,
		ClusterCIDR: netip.MustParsePrefix("10.0.0.0/8")})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	parallel(b, agents, func(int) error {
		_, err := k.RegisterAgent(ctx, ops, &pb.RegisterAgentRequest{Hostname: "h",
			Resources: &pb.Resources{Cpus: 64, MemBytes: 256 << 30}, Labels: map[string]string{"zone": "a"}})
		return err
	})
	if n := len(k.ListAgents(ctx, ops).GetAgents()); n != agents {
		b.Fatalf("%d agents registered, want %d", n, agents)
	}
	var durs, floor []time.Duration
	b.ResetTimer()
	for b.Loop() {
		stop := make(chan struct{})
		var reader sync.WaitGroup
		reader.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				n := len(k.ListAgents(ctx, ops).GetAgents())
				durs = append(durs, time.Since(start))
				if n != agents {
					b.Errorf("ListAgents: %d agents, want %d", n, agents)
				}
				start = time.Now()
				k.Revision()
				floor = append(floor, time.Since(start))
			}
		})
		parallel(b, reqs, func(int) error {
			resp, err := k.Allocate(ctx, ops, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
			if err == nil && resp.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
				b.Errorf("allocation %s: %v", resp.GetAllocations()[0].GetId(), resp.GetAllocations()[0].GetState())
			}
			return err
		})
		close(stop)
		reader.Wait()
		b.StopTimer()
		if _, err := k.Revoke(ctx, ops, &pb.RevokeRequest{All: true}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(durs)
	slices.Sort(floor)
	pct := func(d []time.Duration, p int) float64 {
		if len(d) == 0 {
			return 0
		}
		return float64(d[(len(d)-1)*p/100].Microseconds()) / 1000
	}
	b.ReportMetric(pct(durs, 50), "p50-ms")
	b.ReportMetric(pct(durs, 99), "p99-ms")
	b.ReportMetric(pct(durs, 100), "max-ms")
	b.ReportMetric(pct(floor, 99), "floor-p99-ms")
	b.ReportMetric(float64(len(durs))/float64(b.N), "lists/op")
}

// parallel runs fn(0..n-1) on 64 goroutines and fails b on the first error.
func parallel(b *testing.B, n int, fn func(i int) error) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := make(chan int)
	for range 64 {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}
