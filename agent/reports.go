package agent

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// report is one queued task status report. done, if set, runs once the
// kernel acknowledged the report or answered that it will never take it.
type report struct {
	req  *syscallsv1.ReportTaskStatusRequest
	done func()
}

// reportQueue delivers task status reports to the kernel, retrying with
// backoff until the kernel answers. Reports of one task are delivered one
// at a time, in the order they were pushed; reports of different tasks go
// out concurrently (up to reportWorkers at once), so that a burst of task
// starts is not paced by one commit per report. A report is dropped only
// when the kernel answers NotFound (the task is forgotten) or
// InvalidArgument (it will never be accepted).
//
// push is safe for concurrent use; run is called by one goroutine.
type reportQueue struct {
	mu       sync.Mutex
	items    []*queued
	inflight map[string]bool // task ids with a report being sent (the first queued of the task)
	wake     chan struct{}   // capacity 1: "a report may be ready"
}

// reportWorkers bounds the reports in flight.
const reportWorkers = 8

type queued struct{ report }

func newReportQueue() *reportQueue {
	return &reportQueue{inflight: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// push appends r to the queue.
func (q *reportQueue) push(r report) {
	q.mu.Lock()
	q.items = append(q.items, &queued{report: r})
	q.mu.Unlock()
	q.signal()
}

func (q *reportQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns the first report whose task has none in flight, marking it
// taken, or nil.
func (q *reportQueue) take() *queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	blocked := map[string]bool{}
	for _, it := range q.items {
		id := it.req.GetTaskId()
		if q.inflight[id] || blocked[id] {
			blocked[id] = true // later reports of the task wait for this one
			continue
		}
		q.inflight[id] = true
		return it
	}
	return nil
}

// finish removes it, delivered or dropped.
func (q *reportQueue) finish(it *queued) {
	q.mu.Lock()
	delete(q.inflight, it.req.GetTaskId())
	if i := slices.Index(q.items, it); i >= 0 {
		q.items = slices.Delete(q.items, i, i+1)
	}
	q.mu.Unlock()
	q.signal()
}

// run sends reports until ctx is done. agentID is read for every send, so
// that a report queued before a re-registration carries the current id.
// Reports still queued when ctx ends are dropped; checkpoints make the
// final ones survive.
func (q *reportQueue) run(ctx context.Context, client syscallsv1connect.KernelClient, agentID func() string, log *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for range reportWorkers {
		wg.Go(func() { q.work(ctx, client, agentID, log) })
	}
}

func (q *reportQueue) work(ctx context.Context, client syscallsv1connect.KernelClient, agentID func() string, log *slog.Logger) {
	for {
		it := q.take()
		if it == nil {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		q.signal() // another worker may find another task's report
		if !q.deliver(ctx, it, client, agentID, log) {
			return
		}
		q.finish(it)
		if it.done != nil {
			it.done()
		}
	}
}

// deliver sends it until the kernel takes or refuses it; it reports false
// when ctx ended first.
func (q *reportQueue) deliver(ctx context.Context, it *queued, client syscallsv1connect.KernelClient, agentID func() string, log *slog.Logger) bool {
	bo := newBackoff()
	for {
		req := proto.CloneOf(it.req)
		req.AgentId = agentID()
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err := client.ReportTaskStatus(cctx, connect.NewRequest(req))
		cancel()
		if ctx.Err() != nil {
			return false
		}
		switch code := connect.CodeOf(err); {
		case err == nil:
			return true
		case code == connect.CodeNotFound || code == connect.CodeInvalidArgument:
			log.Warn("kernel refused task report; dropping it", "task", req.TaskId, "state", req.State, "err", err)
			return true
		}
		d := bo.next()
		log.Warn("task report failed; retrying", "task", req.TaskId, "state", req.State, "in", d, "err", err)
		if !sleep(ctx, d) {
			return false
		}
	}
}

// backoff is an exponential delay from minBackoff to maxBackoff.
type backoff struct{ d time.Duration }

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func newBackoff() *backoff { return &backoff{} }

// next returns the delay to wait now and doubles the following one.
func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = minBackoff
	}
	d := b.d
	b.d = min(2*b.d, maxBackoff)
	return d
}

func (b *backoff) reset() { b.d = 0 }

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool { return sleepOrKick(ctx, d, nil) }
