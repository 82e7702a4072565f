package agent

import (
	"context"
	"errors"
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
	calls    int // ReportTaskStatus and ReportTaskStatusBatch calls
	biggest  int // the most reports in one call
	// answer, if set, gives a batch item's code ("" or "ok": taken).
	answer  func(r *syscallsv1.ReportTaskStatusRequest) string
	noBatch bool // answer Unimplemented to batches
}

func (k *slowKernel) ReportTaskStatusBatch(_ context.Context, r *connect.Request[syscallsv1.ReportTaskStatusBatchRequest]) (*connect.Response[syscallsv1.ReportTaskStatusBatchResponse], error) {
	if k.noBatch {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("no batches here"))
	}
	k.mu.Lock()
	k.inflight++
	k.peak = max(k.peak, k.inflight)
	k.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.inflight--
	k.calls++
	k.biggest = max(k.biggest, len(r.Msg.GetReports()))
	resp := &syscallsv1.ReportTaskStatusBatchResponse{}
	for _, m := range r.Msg.GetReports() {
		code := "ok"
		if k.answer != nil {
			if c := k.answer(m); c != "" {
				code = c
			}
		}
		if code == "ok" {
			k.byTask[m.GetTaskId()] = append(k.byTask[m.GetTaskId()], m.GetState())
			k.n++
		}
		resp.Results = append(resp.Results, &syscallsv1.ReportResult{Code: code})
	}
	return connect.NewResponse(resp), nil
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
	k.calls++
	k.biggest = max(k.biggest, 1)
	k.mu.Unlock()
	return connect.NewResponse(&syscallsv1.ReportTaskStatusResponse{}), nil
}

// runQueue runs q against k until every pushed report is done.
func runQueue(t *testing.T, q *reportQueue, k syscallsv1connect.KernelClient, done *sync.WaitGroup) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { q.run(ctx, k, func() string { return "ag-1" }, slog.New(slog.DiscardHandler)); close(stopped) }()
	done.Wait()
	cancel()
	<-stopped
}

// TestReportQueue_BatchedOrderedPerTask: the reports queued while others
// are in flight go out together in ReportTaskStatusBatch calls, far
// fewer calls than reports, and each task's states arrive in order.
func TestReportQueue_BatchedOrderedPerTask(t *testing.T) {
	t.Parallel()
	k := &slowKernel{byTask: map[string][]syscallsv1.TaskState{}}
	q := newReportQueue()
	const tasks = 20
	want := []syscallsv1.TaskState{starting, running, finished}
	var done sync.WaitGroup
	push := func(i int, s syscallsv1.TaskState) {
		done.Add(1)
		q.push(report{req: &syscallsv1.ReportTaskStatusRequest{TaskId: fmt.Sprintf("t-%d", i), State: s}, done: done.Done})
	}
	for i := range tasks {
		push(i, want[0])
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { q.run(ctx, k, func() string { return "ag-1" }, slog.New(slog.DiscardHandler)); close(stopped) }()
	// More states arrive while the first ones are in flight.
	for _, s := range want[1:] {
		for i := range tasks {
			push(i, s)
		}
	}
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
	if k.calls >= k.n/2 || k.biggest < 2 {
		t.Errorf("%d calls for %d reports, at most %d in one: want batches", k.calls, k.n, k.biggest)
	}
	if k.peak > reportWorkers {
		t.Errorf("peak calls in flight = %d, want at most %d", k.peak, reportWorkers)
	}
}

// TestReportQueue_BatchItemsRetriedOrDropped: a batch item the kernel
// refuses for good (not_found) is dropped, one it refuses otherwise is
// sent again until taken, and the others are not sent twice.
func TestReportQueue_BatchItemsRetriedOrDropped(t *testing.T) {
	t.Parallel()
	refused := 0
	k := &slowKernel{byTask: map[string][]syscallsv1.TaskState{}}
	k.answer = func(r *syscallsv1.ReportTaskStatusRequest) string {
		switch {
		case r.GetTaskId() == "gone":
			return "not_found"
		case r.GetTaskId() == "flaky" && refused < 2:
			refused++
			return "permission_denied"
		}
		return ""
	}
	q := newReportQueue()
	var done sync.WaitGroup
	for _, id := range []string{"a", "gone", "flaky", "b"} {
		for _, s := range []syscallsv1.TaskState{starting, running} {
			done.Add(1)
			q.push(report{req: &syscallsv1.ReportTaskStatusRequest{TaskId: id, State: s}, done: done.Done})
		}
	}
	runQueue(t, q, k, &done)
	for _, id := range []string{"a", "b", "flaky"} {
		if got := k.byTask[id]; !slices.Equal(got, []syscallsv1.TaskState{starting, running}) {
			t.Errorf("%s: taken %v, want STARTING, RUNNING once each", id, got)
		}
	}
	if len(k.byTask["gone"]) != 0 || refused != 2 {
		t.Errorf("gone: taken %v; flaky refused %d times, want 2", k.byTask["gone"], refused)
	}
}

// TestReportQueue_KernelWithoutBatches: a kernel that answers
// Unimplemented to the batch call gets every report one call each, in
// order.
func TestReportQueue_KernelWithoutBatches(t *testing.T) {
	t.Parallel()
	k := &slowKernel{byTask: map[string][]syscallsv1.TaskState{}, noBatch: true}
	q := newReportQueue()
	want := []syscallsv1.TaskState{starting, running, finished}
	var done sync.WaitGroup
	for i := range 4 {
		for _, s := range want {
			done.Add(1)
			q.push(report{req: &syscallsv1.ReportTaskStatusRequest{TaskId: fmt.Sprintf("t-%d", i), State: s}, done: done.Done})
		}
	}
	runQueue(t, q, k, &done)
	if k.n != 12 || k.calls != 12 {
		t.Fatalf("%d reports in %d calls, want 12 in 12", k.n, k.calls)
	}
	for id, got := range k.byTask {
		if !slices.Equal(got, want) {
			t.Errorf("%s: states in order %v, want %v", id, got, want)
		}
	}
}
