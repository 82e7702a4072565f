package kernel

import (
	"context"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// view is the committed read view every read call is served from (see
// doc.go, "Reads: persist, then apply"). It holds a replica Table of clones of the committed
// objects: the loop applies each committed batch to it after the store
// accepted the batch (persist, then apply), under mu for the few map
// assignments only (the clones are made before mu is taken). A failed
// commit leaves the view as it was. The replica shares the loop table's
// memory-only maps (heartbeats, plugins, images, image removals, task
// usage) and their lock, memMu, so a heartbeat is seen at once and never
// waits for the loop.
//
// The replica's objects are never changed once they are in it (apply puts
// new clones in their place), so a reader may keep one after the lock is
// released. What leaves the kernel is cloned by the Table's read methods,
// except ListAgents' agents (agentsShared), which are shared read-only.
//
// Lock order: Kernel.mu, then view.mu, then Table.memMu or Kernel.pmu
// (each innermost: nothing is taken while either is held).
type view struct {
	mu sync.RWMutex
	t  *Table // read-only under mu.RLock; replaced or changed under mu.Lock
	// changed is closed and replaced (under mu.Lock) whenever t changes:
	// waitFor waits on it.
	changed chan struct{}
}

// signal wakes waitFor's callers; v.mu is held for writing.
func (v *view) signal() {
	if v.changed != nil {
		close(v.changed)
	}
	v.changed = make(chan struct{})
}

// waitFor waits until the view has reached revision rev (a committed
// batch is applied to it just after the store accepted it), for at most
// max; false if it has not by then, or ctx ended.
func (v *view) waitFor(ctx context.Context, rev int64, max time.Duration) bool {
	var timeout <-chan time.Time
	for {
		v.mu.RLock()
		cur, ch := v.t.rev, v.changed
		v.mu.RUnlock()
		if cur >= rev {
			return true
		}
		if timeout == nil {
			t := time.NewTimer(max)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// read calls fn with the view's table under the read lock. fn must not
// change the table (its memory-only maps excepted, under memMu); it may
// keep the table's objects, which are never changed.
func (v *view) read(fn func(t *Table)) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	fn(v.t)
}

// reset replaces the view with a replica of t (at start and after a
// reload: t is the store's state).
func (v *view) reset(t *Table) {
	r := replicate(t)
	v.mu.Lock()
	v.t = r
	v.signal()
	v.mu.Unlock()
}

// apply brings the view to rev with c, a batch the store committed (or,
// with rev 0, a batch with only memory-only changes: lease renewals). It
// is called by the loop, which owns c's live objects; it clones them
// before taking the lock.
func (v *view) apply(c *Changes, rev int64) {
	d := cloneChanges(c)
	v.mu.Lock()
	defer v.mu.Unlock()
	v.t.applyCommitted(d, rev)
	if rev > 0 {
		v.signal()
	}
}

// replicate returns a replica of t for reading: clones of its durable
// objects, the indexes the read methods use, and t's memory-only maps and
// their lock (shared, not copied).
func replicate(t *Table) *Table {
	r := NewTable()
	r.memMu = t.memMu
	r.heartbeat, r.plugins, r.images, r.removals, r.usage, r.usageNew = t.heartbeat, t.plugins, t.images, t.removals, t.usage, t.usageNew
	r.seq, r.rev, r.policies = t.seq, t.rev, t.policies.clone()
	r.roles, r.roleUsers, r.cidr = t.roles, t.roleUsers, t.cidr
	r.maxPending, r.roleMaxPending = t.maxPending, t.roleMaxPending
	for id, g := range t.agents {
		r.agents[id] = proto.Clone(g).(*pb.Agent)
	}
	r.shown = make(map[string]*pb.Agent, len(r.agents))
	r.memMu.Lock()
	for id := range r.agents {
		r.shown[id] = r.compose(id)
	}
	r.memMu.Unlock()
	for name, id := range t.bound {
		r.bound[name] = id
	}
	for id, a := range t.allocs {
		r.allocs[id] = proto.Clone(a).(*pb.Allocation)
	}
	for id, k := range t.tasks {
		cl := proto.Clone(k).(*pb.Task)
		r.tasks[id] = cl
		r.linkTask(cl)
	}
	for name, vol := range t.volumes {
		r.volumes[name] = proto.Clone(vol).(*pb.Volume)
	}
	for name, vol := range t.destroyed {
		r.destroyed[name] = proto.Clone(vol).(*pb.Volume)
	}
	r.completed, r.nextDone = make([]*pb.Task, len(t.completed), MaxCompleted), t.nextDone
	for i, k := range t.completed {
		r.completed[i] = proto.Clone(k).(*pb.Task)
	}
	for name, s := range t.roleSets {
		r.roleSets[name] = proto.Clone(s).(*pb.Role)
	}
	for key, l := range t.elections {
		r.elections[key] = proto.Clone(l).(*pb.Leadership)
	}
	for owner, os := range t.state {
		ros := r.ownerState(owner)
		for key, e := range os.entries {
			ros.entries[key] = proto.Clone(e).(*pb.StateEntry)
		}
		ros.bytes = os.bytes
	}
	return r
}

// cloneChanges returns c with every object cloned (nil values, which
// delete, kept), for the view.
func cloneChanges(c *Changes) *Changes {
	d := newChanges()
	d.Seq = c.Seq
	for id, g := range c.Agents {
		d.Agents[id] = cloneOrNil(g)
	}
	for id, a := range c.Allocations {
		d.Allocations[id] = cloneOrNil(a)
	}
	for id, k := range c.Tasks {
		d.Tasks[id] = cloneOrNil(k)
	}
	for name, vol := range c.Volumes {
		d.Volumes[name] = cloneOrNil(vol)
	}
	for name, vol := range c.DestroyedVolumes {
		d.DestroyedVolumes[name] = cloneOrNil(vol)
	}
	if c.Policies != nil {
		st := c.Policies.clone()
		d.Policies = &st
	}
	for key, l := range c.Elections {
		d.Elections[key] = cloneOrNil(l)
	}
	for key, l := range c.renewed {
		if _, written := d.Elections[key]; !written {
			d.Elections[key] = cloneOrNil(l)
		}
	}
	for key, e := range c.State {
		d.State[key] = cloneOrNil(e)
	}
	for name, s := range c.Roles {
		d.Roles[name] = cloneOrNil(s)
	}
	for _, k := range c.ended {
		d.ended = append(d.ended, proto.Clone(k).(*pb.Task))
	}
	return d
}

// cloneOrNil clones m; a nil m stays nil.
func cloneOrNil[M proto.Message](m M) M {
	if !m.ProtoReflect().IsValid() { // a nil message
		var zero M
		return zero
	}
	return proto.Clone(m).(M)
}

// applyCommitted applies d (cloneChanges of a committed batch) to a
// replica table; rev > 0 is the batch's revision.
func (t *Table) applyCommitted(d *Changes, rev int64) {
	if rev > 0 {
		t.rev = rev
	}
	if d.Seq > t.seq {
		t.seq = d.Seq
	}
	for id, g := range d.Agents {
		if g == nil {
			delete(t.agents, id)
			continue
		}
		t.agents[id] = g
		if g.GetPrincipal() != "" {
			t.bound[g.GetPrincipal()] = id
		}
	}
	if len(d.Agents) > 0 {
		t.memMu.Lock()
		for id, g := range d.Agents {
			if g == nil {
				delete(t.shown, id)
			} else {
				t.shown[id] = t.compose(id)
			}
		}
		t.memMu.Unlock()
	}
	for id, a := range d.Allocations {
		if a == nil {
			delete(t.allocs, id)
		} else {
			t.allocs[id] = a
		}
	}
	for id, k := range d.Tasks {
		if old := t.tasks[id]; old != nil {
			if m := t.allocTasks[old.GetAllocationId()]; m != nil {
				delete(m, id)
				if len(m) == 0 {
					delete(t.allocTasks, old.GetAllocationId())
				}
			}
			delete(t.tasks, id)
		}
		if k != nil {
			t.tasks[id] = k
			t.linkTask(k)
		}
	}
	for _, k := range d.ended {
		t.remember(k)
	}
	for name, vol := range d.Volumes {
		if vol == nil {
			delete(t.volumes, name)
		} else {
			t.volumes[name] = vol
		}
	}
	for name, vol := range d.DestroyedVolumes {
		if vol == nil {
			delete(t.destroyed, name)
		} else {
			t.destroyed[name] = vol
		}
	}
	if d.Policies != nil {
		t.policies = *d.Policies
	}
	for key, l := range d.Elections {
		t.elections[key] = l
	}
	for key, e := range d.State {
		os := t.ownerState(key.Owner)
		if old := os.entries[key.Key]; old != nil {
			os.bytes -= int64(len(old.GetValue()))
			delete(os.entries, key.Key)
		}
		if e != nil {
			if rev > 0 {
				e.Revision = rev
			}
			os.entries[key.Key] = e
			os.bytes += int64(len(e.GetValue()))
		}
	}
	for name, s := range d.Roles {
		t.roleSets[name] = s
	}
}

// agentsShared is Agents for the read view, without its deep clones: it
// returns the view's composed agents (t.shown), which are never changed
// once made. 10,000 deep clones cost tens of milliseconds; this costs a
// slice. Callers must not change the agents (marshalling them is fine).
func (t *Table) agentsShared() []*pb.Agent {
	t.memMu.RLock()
	defer t.memMu.RUnlock()
	out := make([]*pb.Agent, 0, len(t.shown))
	for _, g := range t.shown {
		out = append(out, g)
	}
	return out
}

// compose makes the agent id as ListAgents shows it: a new message with
// the memory-only fields (last heartbeat, plugins, images) set, sharing
// the rest with the view's agent. The caller holds memMu (for writing,
// to store it in t.shown).
func (t *Table) compose(id string) *pb.Agent {
	g := t.agents[id]
	cl := shallowAgent(g)
	if hb, ok := t.heartbeat[id]; ok {
		cl.LastHeartbeat = timestamppb.New(hb)
	}
	// The memory-only lists are replaced, never changed, by heartbeats:
	// they may be shared too.
	cl.Plugins = concatShared(g.GetPlugins(), t.plugins[id])
	cl.Images = concatShared(g.GetImages(), t.images[id])
	return cl
}

// viewHeartbeat is Kernel.Heartbeat on the read view: checked against
// it, recorded in the memory-only maps, the agent's composed view
// remade; it answers the image removals queued for the agent.
func (t *Table) viewHeartbeat(p Principal, hb *pb.HeartbeatRequest, now time.Time) ([]string, error) {
	if _, err := t.checkHeartbeat(p, hb); err != nil {
		return nil, err
	}
	id := hb.GetAgentId()
	t.memMu.Lock()
	defer t.memMu.Unlock()
	t.recordHeartbeatLocked(hb, now)
	t.shown[id] = t.compose(id)
	q := t.removals[id]
	delete(t.removals, id)
	return q, nil
}

// shallowAgent copies g's fields into a new message: nested messages,
// maps and lists are shared. TestShallowAgent_EveryField keeps it
// complete when the ABI grows.
func shallowAgent(g *pb.Agent) *pb.Agent {
	return &pb.Agent{
		Id:            g.GetId(),
		Hostname:      g.GetHostname(),
		Labels:        g.GetLabels(),
		Total:         g.GetTotal(),
		Allocated:     g.GetAllocated(),
		State:         g.GetState(),
		Registered:    g.GetRegistered(),
		LastHeartbeat: g.GetLastHeartbeat(),
		Plugins:       g.GetPlugins(),
		Subnet:        g.GetSubnet(),
		UnderlayIp:    g.GetUnderlayIp(),
		HostPorts:     g.GetHostPorts(),
		Principal:     g.GetPrincipal(),
		Images:        g.GetImages(),
		Draining:      g.GetDraining(),
		DrainDeadline: g.GetDrainDeadline(),
	}
}

// concatShared is a followed by b, sharing whichever is the whole answer.
func concatShared[E any](a, b []E) []E {
	switch {
	case len(b) == 0:
		return a
	case len(a) == 0:
		return b
	}
	return append(slices.Clip(a), b...)
}

// durable returns the view's committed content as a State of clones,
// for Restore (which takes ownership of what it is given and changes
// it): what the loop rebuilds its working table from when a commit
// failed without writing anything (Kernel.rollback). The caller holds
// the view's lock.
func (t *Table) durable() *State {
	s := &State{Seq: t.seq, Revision: t.rev, Policies: t.policies.clone()}
	for _, g := range t.agents {
		s.Agents = append(s.Agents, proto.Clone(g).(*pb.Agent))
	}
	for _, a := range t.allocs {
		s.Allocations = append(s.Allocations, proto.Clone(a).(*pb.Allocation))
	}
	for _, k := range t.tasks {
		s.Tasks = append(s.Tasks, proto.Clone(k).(*pb.Task))
	}
	for _, vol := range t.volumes {
		s.Volumes = append(s.Volumes, proto.Clone(vol).(*pb.Volume))
	}
	for _, vol := range t.destroyed {
		s.DestroyedVolumes = append(s.DestroyedVolumes, proto.Clone(vol).(*pb.Volume))
	}
	for _, l := range t.elections {
		s.Elections = append(s.Elections, proto.Clone(l).(*pb.Leadership))
	}
	for _, os := range t.state {
		for _, e := range os.entries {
			s.StateEntries = append(s.StateEntries, proto.Clone(e).(*pb.StateEntry))
		}
	}
	for _, r := range t.roleSets {
		s.Roles = append(s.Roles, proto.Clone(r).(*pb.Role))
	}
	return s
}
