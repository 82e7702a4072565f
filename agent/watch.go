package agent

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// watchLoop streams the kernel's task events for this agent after rev and
// acts on them, resuming after the last seen revision when the stream
// breaks. A compacted revision makes it register again (which reconciles)
// and watch after the revision that registration returns.
func (a *Agent) watchLoop(ctx context.Context, after int64) {
	req := &syscallsv1.WatchRequest{
		AgentId: a.ID(),
		Kinds: []syscallsv1.EventKind{syscallsv1.EventKind_EVENT_KIND_TASK_STATE,
			syscallsv1.EventKind_EVENT_KIND_AGENT_REGISTERED, syscallsv1.EventKind_EVENT_KIND_AGENT_LOST,
			syscallsv1.EventKind_EVENT_KIND_VOLUME_DESTROYED},
	}
	a.follow(ctx, "watch", req, after, func(after, current int64) (int64, bool) {
		a.log.Warn("watch revision compacted; registering again", "after", after, "current", current)
		rev, err := a.register(ctx)
		return rev, err == nil
	})
}

// watchPeers streams the other agents' REGISTERED and LOST events after
// rev and reconfigures the node's overlay on each (handleEvent). It is a
// stream of its own, without watchLoop's agent_id filter, which hides
// other agents' events: with only that one, the first agent of a cluster
// would never learn of the agents registering after it. A compacted
// revision reconfigures once and resumes from the current revision.
func (a *Agent) watchPeers(ctx context.Context, after int64) {
	req := &syscallsv1.WatchRequest{Kinds: []syscallsv1.EventKind{
		syscallsv1.EventKind_EVENT_KIND_AGENT_REGISTERED, syscallsv1.EventKind_EVENT_KIND_AGENT_LOST}}
	a.follow(ctx, "peer watch", req, after, func(_, current int64) (int64, bool) {
		a.wg.Go(func() { a.configureNode(a.ctx) })
		return current, true
	})
}

// follow streams req's events after revision after and hands each to
// handleEvent until ctx is done. A broken stream resumes after the last
// revision seen, with backoff (logged as "<what> broke"); so does a stream
// the kernel ended because the agent fell behind (a resync error without
// a compact revision), at once. When the kernel says that revision is
// compacted, resync(after, current) returns the revision to resume after,
// or false to stop.
func (a *Agent) follow(ctx context.Context, what string, req *syscallsv1.WatchRequest, after int64, resync func(after, current int64) (int64, bool)) {
	bo := newBackoff()
	for {
		req.AfterRevision = after
		stream, err := a.client.Watch(ctx, connect.NewRequest(req))
		if err == nil {
			for stream.Receive() {
				ev := stream.Msg()
				after = max(after, ev.GetRevision())
				bo.reset()
				a.handleEvent(ev)
			}
			err = stream.Err()
			stream.Close()
		}
		if ctx.Err() != nil {
			return
		}
		if ri := resyncInfo(err); ri != nil && ri.GetCompactRevision() == 0 {
			// The kernel ended the stream because this agent fell behind;
			// the history after the last revision seen is still there.
			a.log.Warn(what+" fell behind; resuming", "after", after, "err", err)
			continue
		}
		if ri := resyncInfo(err); ri != nil {
			rev, ok := resync(after, ri.GetCurrentRevision())
			if !ok {
				return
			}
			after = rev
			continue
		}
		d := bo.next()
		a.log.Warn(what+" broke; resuming", "after", after, "in", d, "err", err)
		if !sleep(ctx, d) {
			return
		}
	}
}

// resyncInfo returns the ResyncInfo detail of a FailedPrecondition error,
// or nil.
func resyncInfo(err error) *syscallsv1.ResyncInfo {
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition {
		return nil
	}
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			continue
		}
		if ri, ok := v.(*syscallsv1.ResyncInfo); ok {
			return ri
		}
	}
	return nil
}

// handleEvent acts on one event: a PENDING task on this agent is launched;
// a KILLED or LOST one is killed; a volume destroyed on this agent is
// deleted; another agent registering or being lost
// reconfigures the node's overlay. Other events are ignored.
func (a *Agent) handleEvent(ev *syscallsv1.Event) {
	if v := ev.GetVolume(); v != nil {
		if ev.GetKind() == syscallsv1.EventKind_EVENT_KIND_VOLUME_DESTROYED && v.GetAgentId() == a.ID() {
			a.wg.Go(func() { a.destroyVolume(v) })
		}
		return
	}
	if g := ev.GetAgent(); g != nil {
		if g.GetId() != a.ID() && a.network != "" {
			a.wg.Go(func() { a.configureNode(a.ctx) })
		}
		return
	}
	t := ev.GetTask()
	if ev.GetKind() != syscallsv1.EventKind_EVENT_KIND_TASK_STATE || t == nil || t.GetAgentId() != a.ID() {
		return
	}
	switch t.GetState() {
	case syscallsv1.TaskState_TASK_STATE_PENDING:
		a.launch(t)
	case syscallsv1.TaskState_TASK_STATE_KILLED, syscallsv1.TaskState_TASK_STATE_LOST:
		reason := t.GetReason()
		if reason == "" {
			reason = ev.GetReason()
		}
		if reason == "" {
			reason = "killed by the kernel"
		}
		a.kill(t.GetId(), reason)
	}
}
