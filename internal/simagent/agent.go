package simagent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// agent is one simulated agent.
type agent struct {
	c        *Cluster
	client   syscallsv1connect.KernelClient
	http     *http.Client // its own, presenting its certificate (Config.CACert); nil: the cluster's
	hostname string
	labels   map[string]string
	reports  *reportQueue
	ctx      context.Context // the cluster's: ends at Close

	regMu sync.Mutex // serialises registrations

	mu    sync.Mutex
	id    string
	hb    time.Duration
	tasks map[string]*task // live tasks
	ended recentSet        // tasks that ended here: a stale PENDING does not start them again
}

// task is one simulated task. killed is closed when the kernel kills it.
type task struct {
	id     string
	killed chan struct{}
	reason string // why it was killed; set before killed is closed
}

// ID returns the agent's id ("" before its first registration).
func (a *agent) ID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

// register registers (again) and reconciles, as the real agent: tasks
// the kernel lists PENDING that the agent does not run are launched,
// STARTING or RUNNING ones it does not know are reported LOST. It returns
// the revision to watch after. It retries every refusal with backoff, as
// the real agent, and fails only when ctx ends.
func (a *agent) register(ctx context.Context) (int64, error) {
	a.regMu.Lock()
	defer a.regMu.Unlock()
	var bo backoff
	for {
		a.mu.Lock()
		req := &pb.RegisterAgentRequest{
			AgentId: a.id, Hostname: a.hostname, Labels: a.labels, Resources: a.c.cfg.Resources,
		}
		for id := range a.tasks {
			req.RunningTaskIds = append(req.RunningTaskIds, id)
		}
		a.mu.Unlock()
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		res, err := a.client.RegisterAgent(cctx, connect.NewRequest(req))
		cancel()
		if ctx.Err() != nil {
			return 0, fmt.Errorf("register %s: %w (last answer: %v)", a.hostname, ctx.Err(), err)
		}
		if err != nil {
			// As the real agent, retry whatever the answer: a token that
			// AgentJoin just made is unknown until the kernel's token
			// watch has it (Unauthenticated for a moment).
			d := bo.next()
			a.c.log.Warn("register failed; retrying", "agent", a.hostname, "in", d, "err", err)
			if !sleep(ctx, d) {
				return 0, fmt.Errorf("register %s: %w (last answer: %v)", a.hostname, ctx.Err(), err)
			}
			continue
		}
		hb := res.Msg.GetHeartbeatInterval().AsDuration()
		if hb <= 0 {
			hb = defaultHeartbeat
		}
		a.mu.Lock()
		a.id, a.hb = res.Msg.GetAgentId(), hb
		a.mu.Unlock()
		a.c.registrations.Add(1)
		a.reconcile(res.Msg.GetTasks())
		return res.Msg.GetRevision(), nil
	}
}

func (a *agent) reconcile(expected []*pb.Task) {
	want := map[string]bool{}
	for _, t := range expected {
		want[t.GetId()] = true
		a.mu.Lock()
		_, known := a.tasks[t.GetId()]
		done := a.ended.has(t.GetId())
		a.mu.Unlock()
		switch {
		case known || done:
		case t.GetState() == pb.TaskState_TASK_STATE_PENDING:
			a.launch(t)
		case t.GetState() == pb.TaskState_TASK_STATE_STARTING, t.GetState() == pb.TaskState_TASK_STATE_RUNNING:
			a.reports.push(&pb.ReportTaskStatusRequest{TaskId: t.GetId(), State: pb.TaskState_TASK_STATE_LOST,
				Reason: "task not found on agent after restart"})
		}
	}
	a.mu.Lock()
	var stale []string
	for id := range a.tasks {
		if !want[id] {
			stale = append(stale, id)
		}
	}
	a.mu.Unlock()
	for _, id := range stale {
		a.kill(id, "killed: the kernel does not expect this task on the agent")
	}
}

// heartbeatLoop heartbeats at the kernel's interval; the first beat of
// agent i is spread over the interval so that the agents do not beat in
// step. A NotFound or FailedPrecondition answer registers again.
func (a *agent) heartbeatLoop(ctx context.Context, i int) {
	a.mu.Lock()
	d := a.hb
	a.mu.Unlock()
	if !sleep(ctx, d*time.Duration(i%len(a.c.agents)+1)/time.Duration(len(a.c.agents))) {
		return
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err := a.client.Heartbeat(cctx, connect.NewRequest(&pb.HeartbeatRequest{AgentId: a.ID()}))
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch connect.CodeOf(err) {
		case connect.CodeNotFound, connect.CodeFailedPrecondition:
			a.c.log.Warn("kernel lost this agent; registering again", "agent", a.hostname, "err", err)
			a.register(ctx)
		default:
			if err != nil {
				a.c.log.Warn("heartbeat failed", "agent", a.hostname, "err", err)
			}
		}
		a.mu.Lock()
		d = a.hb
		a.mu.Unlock()
		if !sleep(ctx, d) {
			return
		}
	}
}

// watchLoop follows the agent's task events after rev, as the real
// agent's watchLoop: a broken stream resumes after the last revision
// seen (with backoff), one ended because the agent fell behind resumes
// at once, and a compacted revision registers again and resumes after
// the registration's revision.
func (a *agent) watchLoop(ctx context.Context, after int64) {
	var bo backoff
	for {
		req := &pb.WatchRequest{AgentId: a.ID(), AfterRevision: after,
			Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_TASK_STATE}}
		stream, err := a.client.Watch(ctx, connect.NewRequest(req))
		if err == nil {
			for stream.Receive() {
				ev := stream.Msg()
				after = max(after, ev.GetRevision())
				bo = backoff{}
				a.handle(ev)
			}
			err = stream.Err()
			stream.Close()
		}
		if ctx.Err() != nil {
			return
		}
		ri := resyncInfo(err)
		switch {
		case ri != nil && ri.GetCompactRevision() == 0:
			a.c.log.Warn("watch fell behind; resuming", "agent", a.hostname, "after", after)
			continue
		case ri != nil:
			rev, err := a.register(ctx)
			if err != nil {
				return
			}
			after = rev
			continue
		}
		d := bo.next()
		a.c.log.Warn("watch broke; resuming", "agent", a.hostname, "after", after, "in", d, "err", err)
		if !sleep(ctx, d) {
			return
		}
	}
}

// resyncInfo returns the ResyncInfo detail of a FailedPrecondition error,
// or nil.
func resyncInfo(err error) *pb.ResyncInfo {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		return nil
	}
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if ri, ok := v.(*pb.ResyncInfo); ok {
				return ri
			}
		}
	}
	return nil
}

// handle acts on one event: a PENDING task of this agent is launched, a
// KILLED or LOST one is killed.
func (a *agent) handle(ev *pb.Event) {
	t := ev.GetTask()
	if ev.GetKind() != pb.EventKind_EVENT_KIND_TASK_STATE || t == nil || t.GetAgentId() != a.ID() {
		return
	}
	switch t.GetState() {
	case pb.TaskState_TASK_STATE_PENDING:
		a.launch(t)
	case pb.TaskState_TASK_STATE_KILLED, pb.TaskState_TASK_STATE_LOST:
		a.kill(t.GetId(), cmpOr(t.GetReason(), ev.GetReason(), "killed by the kernel"))
	}
}

func cmpOr(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// launch starts simulating t unless it runs or ran here already: one
// goroutine per task reports STARTING, RUNNING, then FINISHED (a short
// task) or, once killed, KILLED, in that order, as the real agent.
func (a *agent) launch(t *pb.Task) {
	a.mu.Lock()
	if _, ok := a.tasks[t.GetId()]; ok || a.ended.has(t.GetId()) {
		a.mu.Unlock()
		return
	}
	tk := &task{id: t.GetId(), killed: make(chan struct{})}
	a.tasks[tk.id] = tk
	a.mu.Unlock()
	a.c.launched.Add(1)
	short := a.c.cfg.Short(t)
	a.c.wg.Go(func() { a.run(tk, short) })
}

func (a *agent) run(tk *task, short bool) {
	st := func(s pb.TaskState, reason string) *pb.ReportTaskStatusRequest {
		return &pb.ReportTaskStatusRequest{TaskId: tk.id, State: s, Reason: reason}
	}
	// Queued, as the real agent queues them: the queue sends them in
	// order, batched with whatever else is ready.
	a.reports.push(st(pb.TaskState_TASK_STATE_STARTING, ""))
	a.reports.push(st(pb.TaskState_TASK_STATE_RUNNING, ""))
	var end *pb.ReportTaskStatusRequest
	if short {
		end = st(pb.TaskState_TASK_STATE_FINISHED, "exit code 0")
	} else {
		select {
		case <-tk.killed:
		case <-a.ctx.Done():
			return
		}
		end = st(pb.TaskState_TASK_STATE_KILLED, tk.reason)
		end.ExitCode = -1
	}
	a.mu.Lock()
	delete(a.tasks, tk.id)
	a.ended.add(tk.id)
	a.mu.Unlock()
	if short {
		a.c.finished.Add(1)
	} else {
		a.c.killed.Add(1)
	}
	a.reports.push(end)
}

// kill ends a live non-short task KILLED with reason (once).
func (a *agent) kill(id, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	tk := a.tasks[id]
	if tk == nil || tk.reason != "" {
		return
	}
	tk.reason = reason
	close(tk.killed)
}

// recentSet remembers the last n ids added.
type recentSet struct {
	n     int
	order []string
	set   map[string]struct{}
}

func newRecentSet(n int) recentSet { return recentSet{n: n, set: map[string]struct{}{}} }

func (r *recentSet) has(id string) bool { _, ok := r.set[id]; return ok }

func (r *recentSet) add(id string) {
	if r.has(id) {
		return
	}
	if len(r.order) == r.n {
		delete(r.set, r.order[0])
		r.order = r.order[1:]
	}
	r.order = append(r.order, id)
	r.set[id] = struct{}{}
}
