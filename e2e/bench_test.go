package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// BenchmarkAllocateRoundTrip measures one Allocate syscall (0.001 cpu,
// 1Mi, granted) from a client to dcosd dev and back, over loopback HTTP
// with the Connect protocol, including the kernel's allocation cycle and
// its etcd commit. It reports the median and 99th percentile latency.
//
//	go test ./e2e -run '^$' -bench AllocateRoundTrip -benchtime 2000x
func BenchmarkAllocateRoundTrip(b *testing.B) {
	e := newEnv(b)
	e.startDev("--resources", "cpus=100000,mem=1000Ti")
	c := e.op()
	req := connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.001, MemBytes: mi}})
	ctx := context.Background()
	// One call to open the connection.
	if _, err := c.Allocate(ctx, req); err != nil {
		b.Fatal(err)
	}
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res, err := c.Allocate(ctx, req)
		durs = append(durs, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if a := res.Msg.GetAllocations(); len(a) != 1 || a[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
			b.Fatalf("Allocate = %v, want one GRANTED allocation", res.Msg)
		}
	}
	b.StopTimer()
	slices.Sort(durs)
	b.ReportMetric(float64(percentile(durs, 50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(percentile(durs, 99).Nanoseconds()), "p99-ns")
}

// percentile returns the p-th percentile of sorted (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}
