package agent

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// slowKernel takes each report after a delay, recording the order per
// task and the most reports it had in flight at once.
type slowKernel struct {
	syscallsv1connect.KernelClient
	mu       sync.Mutex
	inflight int
	peak     int
	byTask   map[string][]syscallsv1.TaskState
	n        int
}

func (k *slowKernel) ReportTaskStatus(_ context.Context, r *connect.Request[syscallsv1.ReportTaskStatusRequest]) (*connect.Response[syscallsv1.ReportTaskStatusResponse], error) {
	k.mu.Lock()
	k.inflight++
	k.peak = max(k.peak, k.inflight)
	k.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	k.mu.Lock()
	k.inflight--
	k.byTask[r.Msg.GetTaskId()] = append(k.byTask[r.Msg.GetTaskId()], r.Msg.GetState())
	k.n++
	k.mu.Unlock()
	return connect.NewResponse(&syscallsv1.ReportTaskStatusResponse{}), nil
}

func TestReportQueue_ConcurrentAcrossTasksOrderedPerTask(t *testing.T) {
	t.Parallel()
	k := &slowKernel{byTask: map[string][]syscallsv1.TaskState{}}
	q := newReportQueue()
	const tasks = 20
	want := []syscallsv1.TaskState{starting, running, finished}
	var done sync.WaitGroup
	for i := range tasks {
		for _, s := range want {
			done.Add(1)
			q.push(report{req: &syscallsv1.ReportTaskStatusRequest{TaskId: fmt.Sprintf("t-%d", i), State: s}, done: done.Done})
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { q.run(ctx, k, func() string { return "ag-1" }, slog.New(slog.DiscardHandler)); close(stopped) }()
	done.Wait()
	cancel()
	<-stopped
	if k.n != tasks*len(want) {
		t.Fatalf("delivered %d reports, want %d", k.n, tasks*len(want))
	}
	for id, got := range k.byTask {
		if !slices.Equal(got, want) {
			t.Errorf("%s: states in order %v, want %v", id, got, want)
		}
	}
	if k.peak < 2 || k.peak > reportWorkers {
		t.Errorf("peak reports in flight = %d, want 2..%d", k.peak, reportWorkers)
	}
}
