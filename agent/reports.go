package agent

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
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
// backoff until the kernel answers. Reports of one task are delivered in
// the order they were pushed, and never while an earlier one of the task
// is in flight; reports of different tasks go out concurrently (up to
// reportWorkers calls at once), so that a burst of task starts is not
// paced by one commit per report. A worker takes every report that is
// ready (up to maxReportBatch) and sends them in one
// ReportTaskStatusBatch call, which the kernel applies in order in one
// commit; a lone report goes out as ReportTaskStatus. A report is dropped
// only when the kernel answers NotFound (the task is forgotten) or
// InvalidArgument (it will never be accepted); any other refusal of an
// item, or failure of the whole call, is retried with backoff (the items
// of a batch the kernel took are not sent again). A kernel without the
// batch call (Unimplemented) gets the reports one call each.
//
// push is safe for concurrent use; run is called by one goroutine.
type reportQueue struct {
	mu       sync.Mutex
	items    []*queued
	inflight map[string]int // task id → its reports being sent
	wake     chan struct{}  // capacity 1: "a report may be ready"
	noBatch  atomic.Bool    // the kernel answered Unimplemented to a batch
}

// reportWorkers bounds the report calls in flight.
const reportWorkers = 8

// maxReportBatch bounds the reports of one ReportTaskStatusBatch call
// (the kernel's limit, kernel.MaxBatchItems).
const maxReportBatch = 1000

type queued struct{ report }

func newReportQueue() *reportQueue {
	return &reportQueue{inflight: map[string]int{}, wake: make(chan struct{}, 1)}
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

// take returns, in queue order, up to max reports of tasks that have none
// in flight (all of such a task's queued reports, in order, as long as
// they fit), marking them taken; nil when none is ready.
func (q *reportQueue) take(max int) []*queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*queued
	blocked := map[string]bool{}
	mine := map[string]bool{}
	for _, it := range q.items {
		if len(out) == max {
			break
		}
		id := it.req.GetTaskId()
		if blocked[id] || (q.inflight[id] > 0 && !mine[id]) {
			blocked[id] = true // later reports of the task wait for this one
			continue
		}
		mine[id] = true
		q.inflight[id]++
		out = append(out, it)
	}
	return out
}

// finish removes it, delivered or dropped, and runs its done.
func (q *reportQueue) finish(it *queued) {
	q.mu.Lock()
	id := it.req.GetTaskId()
	if q.inflight[id]--; q.inflight[id] <= 0 {
		delete(q.inflight, id)
	}
	if i := slices.Index(q.items, it); i >= 0 {
		q.items = slices.Delete(q.items, i, i+1)
	}
	q.mu.Unlock()
	q.signal()
	if it.done != nil {
		it.done()
	}
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
		max := maxReportBatch
		if q.noBatch.Load() {
			max = 1
		}
		its := q.take(max)
		if len(its) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		q.signal() // another worker may find another task's report
		if !q.deliver(ctx, its, client, agentID, log) {
			return
		}
	}
}

// deliver sends its until the kernel took or refused each (finishing
// each as it is answered); it reports false when ctx ended first.
func (q *reportQueue) deliver(ctx context.Context, its []*queued, client syscallsv1connect.KernelClient, agentID func() string, log *slog.Logger) bool {
	bo := newBackoff()
	for len(its) > 0 {
		var err error
		if len(its) == 1 || q.noBatch.Load() {
			err = q.deliverOne(ctx, its[0], client, agentID, log)
			if err == nil {
				its = its[1:]
				bo.reset()
				continue
			}
		} else {
			its, err = q.deliverBatch(ctx, its, client, agentID, log)
			if err == nil && len(its) == 0 {
				return true
			}
			if connect.CodeOf(err) == connect.CodeUnimplemented {
				log.Info("kernel has no ReportTaskStatusBatch; reporting one call per report")
				q.noBatch.Store(true)
				continue
			}
		}
		if ctx.Err() != nil {
			return false
		}
		d := bo.next()
		log.Warn("task report failed; retrying", "task", its[0].req.GetTaskId(), "state", its[0].req.GetState(), "reports", len(its), "in", d, "err", err)
		if !sleep(ctx, d) {
			return false
		}
	}
	return true
}

// deliverOne sends it once with ReportTaskStatus; nil when the kernel
// took or refused it for good (it is finished).
func (q *reportQueue) deliverOne(ctx context.Context, it *queued, client syscallsv1connect.KernelClient, agentID func() string, log *slog.Logger) error {
	req := proto.CloneOf(it.req)
	req.AgentId = agentID()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	_, err := client.ReportTaskStatus(cctx, connect.NewRequest(req))
	cancel()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	switch code := connect.CodeOf(err); {
	case err == nil:
	case code == connect.CodeNotFound || code == connect.CodeInvalidArgument:
		log.Warn("kernel refused task report; dropping it", "task", req.TaskId, "state", req.State, "err", err)
	default:
		return err
	}
	q.finish(it)
	return nil
}

// deliverBatch sends its once with ReportTaskStatusBatch and finishes
// the items the kernel took or refused for good; it returns the rest, in
// order, and the error to retry them after (the call's, or the first
// item's).
func (q *reportQueue) deliverBatch(ctx context.Context, its []*queued, client syscallsv1connect.KernelClient, agentID func() string, log *slog.Logger) ([]*queued, error) {
	req := &syscallsv1.ReportTaskStatusBatchRequest{Reports: make([]*syscallsv1.ReportTaskStatusRequest, len(its))}
	id := agentID()
	for i, it := range its {
		r := proto.CloneOf(it.req)
		r.AgentId = id
		req.Reports[i] = r
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	resp, err := client.ReportTaskStatusBatch(cctx, connect.NewRequest(req))
	cancel()
	if ctx.Err() != nil {
		return its, ctx.Err()
	}
	if err != nil {
		return its, err
	}
	res := resp.Msg.GetResults()
	if len(res) != len(its) {
		return its, fmt.Errorf("report batch: the kernel answered %d results for %d reports", len(res), len(its))
	}
	var rest []*queued
	var first error
	for i, it := range its {
		switch code := res[i].GetCode(); code {
		case "ok":
		case "not_found", "invalid_argument":
			log.Warn("kernel refused task report; dropping it", "task", it.req.GetTaskId(), "state", it.req.GetState(), "err", res[i].GetMessage())
		default:
			rest = append(rest, it)
			if first == nil {
				first = fmt.Errorf("report batch: %s: %s", code, res[i].GetMessage())
			}
			continue
		}
		q.finish(it)
	}
	return rest, first
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
