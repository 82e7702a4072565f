package framework

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Cache is the caller's view of its own live allocations (what
// ListAllocations shows it) and of their tasks (what ListTasks shows it,
// less the tasks of allocations that have ended), fed by one List of each
// and then by Watch. On a compacted history it lists again. Memory grows
// with what the caller owns, never with the cluster's size. The cache
// does not track usage (Allocation.usage and Task.usage are left unset;
// List calls report them).
//
// The cache reflects every change before Revision() (see Revision). Its
// methods are safe for concurrent use and return clones the caller may
// keep, except the *Labeled ones, which return shared read-only messages.
type Cache struct {
	c *Client

	mu     sync.RWMutex
	allocs map[string]*pb.Allocation
	tasks  map[string]*pb.Task
	rev    int64 // last revision applied (or the older list's)
	allocR int64 // allocation events at or before this are in the list
	taskR  int64 // task events at or before this are in the list
	synced chan struct{}
	subs   map[int]func(*pb.Event)
	nextID int
}

// NewCache returns a cache fed through c; it is empty until Run lists.
func NewCache(c *Client) *Cache {
	return &Cache{c: c, allocs: map[string]*pb.Allocation{}, tasks: map[string]*pb.Task{},
		synced: make(chan struct{}), subs: map[int]func(*pb.Event){}}
}

// Run lists, then watches, re-listing after a compacted history, until ctx
// ends (then it returns nil). Listing is retried with backoff; an error
// the kernel will not get over (PermissionDenied, Unauthenticated, ...) is
// returned. Call it once, in a goroutine.
func (c *Cache) Run(ctx context.Context) error {
	failures := 0
	for {
		after, err := c.list(ctx)
		if err == nil {
			failures = 0
			err = c.c.Watch(ctx, &pb.WatchRequest{AfterRevision: after, Kinds: cacheKinds()}, c.apply)
		}
		if ctx.Err() != nil {
			return nil
		}
		var re *ResyncError
		if errors.As(err, &re) {
			c.c.shared.log.Warn("framework: cache history compacted; listing again", "current", re.Current)
			continue
		}
		if ok, _, _ := retryable(err); !ok {
			return err
		}
		failures++
		if !sleep(ctx, c.c.shared.retry.delay(failures)) {
			return nil
		}
	}
}

// cacheKinds is every event kind but TASK_USAGE (the cache keeps no usage).
func cacheKinds() []pb.EventKind {
	values := pb.EventKind(0).Descriptor().Values()
	var out []pb.EventKind
	for i := range values.Len() {
		if k := pb.EventKind(values.Get(i).Number()); k != 0 && k != pb.EventKind_EVENT_KIND_TASK_USAGE {
			out = append(out, k)
		}
	}
	return out
}

// list replaces the cache's content with the kernel's and returns the
// revision to watch after. Tasks are listed first: the allocations, listed
// at a revision at least as new, decide which tasks are live; the watch
// starts after the tasks' revision and each kind ignores the events its
// list already holds.
func (c *Cache) list(ctx context.Context) (int64, error) {
	tr, err := c.c.ListTasks(ctx, &pb.ListTasksRequest{})
	if err != nil {
		return 0, err
	}
	ar, err := c.c.ListAllocations(ctx, &pb.ListAllocationsRequest{})
	if err != nil {
		return 0, err
	}
	allocs := make(map[string]*pb.Allocation, len(ar.GetAllocations()))
	for _, a := range ar.GetAllocations() {
		a.Usage = nil
		allocs[a.GetId()] = a
	}
	tasks := make(map[string]*pb.Task, len(tr.GetTasks()))
	for _, t := range tr.GetTasks() {
		if allocs[t.GetAllocationId()] != nil {
			t.Usage = nil
			tasks[t.GetId()] = t
		}
	}
	c.mu.Lock()
	resync := c.rev != 0
	c.allocs, c.tasks = allocs, tasks
	c.allocR, c.taskR = ar.GetRevision(), tr.GetRevision()
	c.rev = tr.GetRevision()
	select {
	case <-c.synced:
	default:
		close(c.synced)
	}
	c.mu.Unlock()
	if resync {
		c.notify(&pb.Event{Revision: tr.GetRevision(), Reason: "resync"})
	}
	return tr.GetRevision(), nil
}

// apply folds one event into the cache, then tells the subscribers.
func (c *Cache) apply(ev *pb.Event) error {
	c.mu.Lock()
	rev := ev.GetRevision()
	c.rev = max(c.rev, rev)
	switch ev.GetKind() {
	case pb.EventKind_EVENT_KIND_ALLOCATION_PENDING, pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED:
		if rev > c.allocR {
			a := proto.Clone(ev.GetAllocation()).(*pb.Allocation)
			a.Usage = nil
			c.allocs[a.GetId()] = a
		}
	case pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED:
		if rev > c.allocR {
			id := ev.GetAllocation().GetId()
			delete(c.allocs, id)
			for tid, t := range c.tasks {
				if t.GetAllocationId() == id {
					delete(c.tasks, tid)
				}
			}
		}
	case pb.EventKind_EVENT_KIND_TASK_STATE, pb.EventKind_EVENT_KIND_TASK_HEALTH:
		if t := ev.GetTask(); rev > c.taskR && c.allocs[t.GetAllocationId()] != nil {
			t = proto.Clone(t).(*pb.Task)
			t.Usage = nil
			c.tasks[t.GetId()] = t
		}
	}
	c.mu.Unlock()
	c.notify(ev)
	return nil
}

func (c *Cache) notify(ev *pb.Event) {
	c.mu.RLock()
	fns := make([]func(*pb.Event), 0, len(c.subs))
	for _, fn := range c.subs {
		fns = append(fns, fn)
	}
	c.mu.RUnlock()
	for _, fn := range fns {
		fn(ev)
	}
}

// WaitSynced waits until the cache has listed once, or ctx ends (its
// error).
func (c *Cache) WaitSynced(ctx context.Context) error {
	select {
	case <-c.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Allocations returns clones of the cached allocations, sorted by id.
func (c *Cache) Allocations() []*pb.Allocation {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*pb.Allocation, 0, len(c.allocs))
	for _, a := range c.allocs {
		out = append(out, proto.Clone(a).(*pb.Allocation))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return out
}

// Tasks returns clones of the cached tasks, sorted by id.
func (c *Cache) Tasks() []*pb.Task {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]*pb.Task, 0, len(c.tasks))
	for _, t := range c.tasks {
		out = append(out, proto.Clone(t).(*pb.Task))
	}
	slices.SortFunc(out, func(a, b *pb.Task) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out
}

// AllocationsLabeled returns the cached allocations whose label key
// equals value, sorted by id. Unlike Allocations it does not clone: it
// returns the cache's own messages, shared with other callers, which the
// caller must not modify (proto.Clone one first). They never change under
// the caller: the cache replaces the messages it holds, it never modifies
// one (client-go's listers make the same deal). A framework that
// reconciles one group of its allocations at a time (e.g. one service's)
// pays for reading that group, not for copying it.
func (c *Cache) AllocationsLabeled(key, value string) []*pb.Allocation {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*pb.Allocation
	for _, a := range c.allocs {
		if v, ok := a.GetLabels()[key]; ok && v == value {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetId() < out[j].GetId() })
	return out
}

// TasksLabeled returns the cached tasks whose label key equals value
// (LaunchRequest.labels), sorted by id, shared and read-only as
// AllocationsLabeled's.
func (c *Cache) TasksLabeled(key, value string) []*pb.Task {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []*pb.Task
	for _, t := range c.tasks {
		if v, ok := t.GetLabels()[key]; ok && v == value {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *pb.Task) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out
}

// Allocation returns a clone of the cached allocation id.
func (c *Cache) Allocation(id string) (*pb.Allocation, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	a, ok := c.allocs[id]
	if !ok {
		return nil, false
	}
	return proto.Clone(a).(*pb.Allocation), true
}

// Task returns a clone of the cached task id.
func (c *Cache) Task(id string) (*pb.Task, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.tasks[id]
	if !ok {
		return nil, false
	}
	return proto.Clone(t).(*pb.Task), true
}

// Revision returns the revision of the last event the cache applied (or
// of its list; 0 before the first list). Every change of an earlier
// revision is reflected. The events of one revision (one store
// transaction, e.g. the instances of one Allocate) are applied one at a
// time, so some of Revision()'s own may still be on their way: to wait
// for a write of yours, wait for Revision() > its revision, or for the
// objects it made (Allocation(id), Task(id)).
func (c *Cache) Revision() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.rev
}

// Subscribe calls fn after the cache applied each event it watches (all
// kinds but TASK_USAGE, including those it does not store, such as
// STATE_CHANGED and LEADER_CHANGED), and after a re-list with a synthetic
// notice: an Event of kind UNSPECIFIED, Reason "resync", at the list's
// revision. fn runs on the cache's goroutine, one event at a time: it must
// not block for long (hand work to a Queue) and must not call cancel.
// cancel stops the calls; it is idempotent.
func (c *Cache) Subscribe(fn func(*pb.Event)) (cancel func()) {
	c.mu.Lock()
	id := c.nextID
	c.nextID++
	c.subs[id] = fn
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
	}
}
