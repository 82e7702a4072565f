package simagent

import (
	"context"
	"fmt"
	"sync"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// maxReportBatch bounds the reports of one ReportTaskStatusBatch call
// (the kernel's kernel.MaxBatchItems).
const maxReportBatch = 1000

// reportQueue is one agent's queue of task status reports, as the real
// agent's (agent/reports.go): reports of one task are sent in the order
// they were queued, never while an earlier one of the task is in flight;
// up to Config.ReportWorkers calls are in flight, each carrying every
// report ready when it is sent (up to maxReportBatch) in one
// ReportTaskStatusBatch call, or one ReportTaskStatus call for a lone
// report or with Config.SingleReports. A report the kernel refuses for
// good (NotFound, InvalidArgument, PermissionDenied) is dropped; any
// other failure is retried with backoff. The senders are started on
// demand and end when nothing is ready.
type reportQueue struct {
	a *agent

	mu       sync.Mutex
	items    []*pb.ReportTaskStatusRequest
	inflight map[string]int // task id → its reports being sent
	workers  int            // senders running
}

func newReportQueue(a *agent) *reportQueue {
	return &reportQueue{a: a, inflight: map[string]int{}}
}

// push queues r; it does not wait for its delivery.
func (q *reportQueue) push(r *pb.ReportTaskStatusRequest) {
	q.mu.Lock()
	q.items = append(q.items, r)
	start := q.workers < q.a.c.cfg.ReportWorkers
	if start {
		q.workers++
	}
	q.mu.Unlock()
	if start {
		q.a.c.wg.Go(q.work)
	}
}

// takeLocked removes and returns, in order, up to max reports of tasks
// with none in flight, marking them in flight.
func (q *reportQueue) takeLocked(max int) []*pb.ReportTaskStatusRequest {
	var out []*pb.ReportTaskStatusRequest
	blocked := map[string]bool{}
	mine := map[string]bool{}
	rest := q.items[:0]
	for _, r := range q.items {
		id := r.GetTaskId()
		if len(out) == max || blocked[id] || (q.inflight[id] > 0 && !mine[id]) {
			blocked[id] = true
			rest = append(rest, r)
			continue
		}
		mine[id] = true
		q.inflight[id]++
		out = append(out, r)
	}
	clear(q.items[len(rest):])
	q.items = rest
	return out
}

func (q *reportQueue) work() {
	max := maxReportBatch
	if q.a.c.cfg.SingleReports {
		max = 1
	}
	for {
		q.mu.Lock()
		batch := q.takeLocked(max)
		if len(batch) == 0 || q.a.ctx.Err() != nil {
			q.workers--
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		q.send(batch)
		q.mu.Lock()
		for _, r := range batch {
			if q.inflight[r.GetTaskId()]--; q.inflight[r.GetTaskId()] <= 0 {
				delete(q.inflight, r.GetTaskId())
			}
		}
		q.mu.Unlock()
	}
}

// send delivers batch until the kernel took or refused every report for
// good, or the cluster closed.
func (q *reportQueue) send(batch []*pb.ReportTaskStatusRequest) {
	a := q.a
	var bo backoff
	for len(batch) > 0 {
		id := a.ID()
		for _, r := range batch {
			r.AgentId = id
		}
		var err error
		batch, err = q.sendOnce(batch)
		if a.ctx.Err() != nil || len(batch) == 0 {
			return
		}
		a.c.retries.Add(int64(len(batch)))
		d := bo.next()
		a.c.log.Warn("task report failed; retrying", "task", batch[0].GetTaskId(), "state", batch[0].GetState(), "reports", len(batch), "in", d, "err", err)
		if !sleep(a.ctx, d) {
			return
		}
	}
}

// refusedForGood are the codes of a report that is dropped, not retried.
var refusedForGood = map[connect.Code]bool{connect.CodeNotFound: true, connect.CodeInvalidArgument: true, connect.CodePermissionDenied: true}

// sendOnce makes one call for batch and returns the reports to send
// again, with the error why.
func (q *reportQueue) sendOnce(batch []*pb.ReportTaskStatusRequest) ([]*pb.ReportTaskStatusRequest, error) {
	a := q.a
	cctx, cancel := context.WithTimeout(a.ctx, callTimeout)
	defer cancel()
	a.c.reportCalls.Add(1)
	if len(batch) == 1 {
		_, err := a.client.ReportTaskStatus(cctx, connect.NewRequest(batch[0]))
		if err != nil && !refusedForGood[connect.CodeOf(err)] {
			return batch, err
		}
		if err != nil {
			a.c.log.Warn("kernel refused task report; dropping it", "task", batch[0].GetTaskId(), "state", batch[0].GetState(), "err", err)
		}
		a.c.reports.Add(1)
		return nil, nil
	}
	res, err := a.client.ReportTaskStatusBatch(cctx, connect.NewRequest(&pb.ReportTaskStatusBatchRequest{Reports: batch}))
	if err != nil {
		return batch, err
	}
	results := res.Msg.GetResults()
	if len(results) != len(batch) {
		return batch, fmt.Errorf("report batch: the kernel answered %d results for %d reports", len(results), len(batch))
	}
	var again []*pb.ReportTaskStatusRequest
	var first error
	for i, r := range results {
		switch r.GetCode() {
		case "ok":
		case "not_found", "invalid_argument", "permission_denied":
			a.c.log.Warn("kernel refused task report; dropping it", "task", batch[i].GetTaskId(), "state", batch[i].GetState(), "err", r.GetMessage())
		default:
			again = append(again, batch[i])
			if first == nil {
				first = fmt.Errorf("report batch: %s: %s", r.GetCode(), r.GetMessage())
			}
			continue
		}
		a.c.reports.Add(1)
	}
	return again, first
}
