package agent

import (
	"context"
	"log/slog"
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

// reportQueue delivers task status reports to the kernel in the order they
// were pushed, one at a time, retrying with backoff until the kernel
// answers. A report is dropped only when the kernel answers NotFound (the
// task is forgotten) or InvalidArgument (it will never be accepted).
//
// push is safe for concurrent use; run is called by one goroutine.
type reportQueue struct {
	mu    sync.Mutex
	items []report
	wake  chan struct{} // capacity 1: "items may be non-empty"
}

func newReportQueue() *reportQueue {
	return &reportQueue{wake: make(chan struct{}, 1)}
}

// push appends r to the queue.
func (q *reportQueue) push(r report) {
	q.mu.Lock()
	q.items = append(q.items, r)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *reportQueue) head() (report, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return report{}, false
	}
	return q.items[0], true
}

func (q *reportQueue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items[0] = report{}
	q.items = q.items[1:]
}

// run sends reports until ctx is done. agentID is read for every send, so
// that a report queued before a re-registration carries the current id.
// Reports still queued when ctx ends are dropped; checkpoints make the
// final ones survive.
func (q *reportQueue) run(ctx context.Context, client syscallsv1connect.KernelClient, agentID func() string, log *slog.Logger) {
	bo := newBackoff()
	for {
		r, ok := q.head()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
				continue
			}
		}
		req := proto.CloneOf(r.req)
		req.AgentId = agentID()
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err := client.ReportTaskStatus(cctx, connect.NewRequest(req))
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch code := connect.CodeOf(err); {
		case err == nil:
		case code == connect.CodeNotFound || code == connect.CodeInvalidArgument:
			log.Warn("kernel refused task report; dropping it", "task", req.TaskId, "state", req.State, "err", err)
		default:
			d := bo.next()
			log.Warn("task report failed; retrying", "task", req.TaskId, "state", req.State, "in", d, "err", err)
			if !sleep(ctx, d) {
				return
			}
			continue
		}
		bo.reset()
		q.pop()
		if r.done != nil {
			r.done()
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
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
