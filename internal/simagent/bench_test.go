package simagent_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// BenchmarkCluster_Gang1000 is e2e's BenchmarkGang1000 with the kernel in
// the benchmark's process (kerneltest: native first-fit, the production
// HTTP server on 127.0.0.1), so that one -cpuprofile shows the kernel,
// the 100 simulated agents and the framework side together:
//
//	go test ./internal/simagent -run '^$' -bench Gang1000 -benchtime 10x -cpuprofile cpu.out
func BenchmarkCluster_Gang1000(b *testing.B) {
	op, _ := start(b, 100)
	w := watchTasks(b, op, 1)
	ctx := context.Background()
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res, err := op.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{
			Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 << 20}, Count: 1000, Gang: &pb.Gang{}}))
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]string, 1000)
		sem := make(chan struct{}, 32)
		var wg sync.WaitGroup
		for i, a := range res.Msg.GetAllocations() {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				l, err := op.Launch(ctx, connect.NewRequest(&pb.LaunchRequest{AllocationId: a.GetId(), Command: "sleep"}))
				if err != nil {
					b.Error(err)
					return
				}
				ids[i] = l.Msg.GetTask().GetId()
			})
		}
		wg.Wait()
		w.waitAll(b, ids, pb.TaskState_TASK_STATE_RUNNING)
		total += time.Since(start)
		b.StopTimer()
		if _, err := op.Revoke(ctx, connect.NewRequest(&pb.RevokeRequest{All: true})); err != nil {
			b.Fatal(err)
		}
		w.waitAll(b, ids, pb.TaskState_TASK_STATE_KILLED)
		waitEmpty(b, op)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/gang")
}

// BenchmarkCluster_ShortTasks is e2e's BenchmarkShortTasks in one
// process (see BenchmarkCluster_Gang1000): `true` tasks, each Allocate →
// Launch → FINISHED → Revoke, 256 in flight, on 100 simulated agents.
//
//	go test ./internal/simagent -run '^$' -bench ShortTasks -benchtime 5000x -cpuprofile cpu.out
func BenchmarkCluster_ShortTasks(b *testing.B) {
	op, _ := start(b, 100)
	w := watchTasks(b, op, 1)
	ctx := context.Background()
	next := make(chan struct{})
	var wg sync.WaitGroup
	for range 256 {
		wg.Go(func() {
			for range next {
				res, err := op.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 << 20}}))
				if err != nil {
					b.Error(err)
					return
				}
				id := res.Msg.GetAllocations()[0].GetId()
				l, err := op.Launch(ctx, connect.NewRequest(&pb.LaunchRequest{AllocationId: id, Command: "true"}))
				if err != nil {
					b.Error(err)
					return
				}
				w.wait(b, l.Msg.GetTask().GetId(), pb.TaskState_TASK_STATE_FINISHED)
				if _, err := op.Revoke(ctx, connect.NewRequest(&pb.RevokeRequest{Id: id})); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}
