package simagent_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// BenchmarkCluster_Gang1000 is e2e's BenchmarkGang1000 (one LaunchBatch,
// the agents' reports batched) with the kernel in
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
		var batch pb.LaunchBatchRequest
		for _, a := range res.Msg.GetAllocations() {
			batch.Launches = append(batch.Launches, &pb.LaunchRequest{AllocationId: a.GetId(), Command: "sleep"})
		}
		lb, err := op.LaunchBatch(ctx, connect.NewRequest(&batch))
		if err != nil {
			b.Fatal(err)
		}
		var ids []string
		for _, r := range lb.Msg.GetResults() {
			if r.GetCode() != "ok" {
				b.Fatalf("%s: %s", r.GetCode(), r.GetMessage())
			}
			ids = append(ids, r.GetTask().GetId())
		}
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

// BenchmarkCluster_ShortTasksReuse is e2e's BenchmarkShortTasksReuse in
// one process: 256 allocations made once, each next `true` launched
// into an allocation whose task FINISHED, the free ones launched together
// in one LaunchBatch (two launchers).
//
//	go test ./internal/simagent -run '^$' -bench ShortTasksReuse -benchtime 20000x -cpuprofile cpu.out
func BenchmarkCluster_ShortTasksReuse(b *testing.B) {
	op, _ := start(b, 100)
	w := watchTasks(b, op, 1)
	ctx := context.Background()
	res, err := op.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 << 20}, Count: 256}))
	if err != nil {
		b.Fatal(err)
	}
	free := make(chan string, 256)
	for _, a := range res.Msg.GetAllocations() {
		free <- a.GetId()
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	var finished sync.WaitGroup
	finished.Add(b.N)
	launcher := func() {
		for id := range free {
			ids := []string{id}
		more:
			for len(ids) < 1000 {
				select {
				case id, ok := <-free:
					if !ok {
						break more
					}
					ids = append(ids, id)
				default:
					break more
				}
			}
			if n := left.Add(-int64(len(ids))); n < 0 {
				ids = ids[:max(len(ids)+int(n), 0)]
			}
			if len(ids) == 0 {
				continue
			}
			var batch pb.LaunchBatchRequest
			for _, id := range ids {
				batch.Launches = append(batch.Launches, &pb.LaunchRequest{AllocationId: id, Command: "true"})
			}
			lb, err := op.LaunchBatch(ctx, connect.NewRequest(&batch))
			if err != nil {
				b.Error(err)
				for range ids {
					finished.Done()
				}
				continue
			}
			for i, r := range lb.Msg.GetResults() {
				if r.GetCode() != "ok" {
					b.Errorf("%s: %s", r.GetCode(), r.GetMessage())
					finished.Done()
					continue
				}
				go func() {
					w.wait(b, r.GetTask().GetId(), pb.TaskState_TASK_STATE_FINISHED)
					free <- ids[i] // never blocks; closed after the last Done
					finished.Done()
				}()
			}
		}
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(launcher)
	}
	finished.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(free)
	wg.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "tasks/s")
}
