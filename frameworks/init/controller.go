package dinit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Kernel is the part of the SDK client the controller calls. A fenced
// *framework.Client (Client.Fenced(fence)) satisfies it: every write then
// carries the leader's epoch, so a deposed leader can never act.
type Kernel interface {
	Allocate(ctx context.Context, r *pb.AllocateRequest) (*pb.AllocateResponse, error)
	Launch(ctx context.Context, r *pb.LaunchRequest) (*pb.LaunchResponse, error)
	Revoke(ctx context.Context, r *pb.RevokeRequest) (*pb.RevokeResponse, error)
	ListAgents(ctx context.Context, r *pb.ListAgentsRequest) (*pb.ListAgentsResponse, error)
	StateGet(ctx context.Context, r *pb.StateGetRequest) (*pb.StateGetResponse, error)
	StatePut(ctx context.Context, r *pb.StatePutRequest) (*pb.StatePutResponse, error)
	StateDelete(ctx context.Context, r *pb.StateDeleteRequest) (*pb.StateDeleteResponse, error)
	StateList(ctx context.Context, r *pb.StateListRequest) (*pb.StateListResponse, error)
}

// Cache is the part of the SDK cache the controller reads: the init's own
// live allocations and tasks, and the revision it has applied events up
// to. *framework.Cache satisfies it.
type Cache interface {
	Allocations() []*pb.Allocation
	Tasks() []*pb.Task
	// AllocationsLabeled and TasksLabeled return those with the label
	// key=value: a pass reads one service's instances only.
	AllocationsLabeled(key, value string) []*pb.Allocation
	TasksLabeled(key, value string) []*pb.Task
	Revision() int64
}

// Controller reconciles services: Reconcile(ctx, name) reads the service's
// record, deployment and status from the framework state and its instances
// from the cache, Decides, and applies the decision. It holds no state
// that the kernel does not also hold (only a debounce of status writes),
// so a new leader's Controller picks up where the last one stopped.
//
// Reconcile is safe for concurrent use on different services; the SDK's
// Queue never runs one key twice at once.
type Controller struct {
	Kernel Kernel
	Cache  Cache
	Logger *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// StatusInterval is the least time between two status writes of one
	// service (default 200ms: at most 5 per second).
	StatusInterval time.Duration
	// MaxInFlight bounds the kernel calls one pass has in flight at once
	// (default 32).
	MaxInFlight int

	mu        sync.Mutex
	lastWrite map[string]time.Time
	// latest is the last status decided per service, written or put
	// off: a pass starts from it rather than from the stored one, which
	// may trail it by a put-off write (a failure counted in a put-off
	// status would otherwise be counted again from the older one, and a
	// crash loop would back off at half the rate).
	latest map[string]*Status
	// expect holds, per service, the allocations and tasks this
	// controller made that the cache does not show yet, so that the next
	// pass neither allocates nor launches them twice.
	expect map[string]map[string]*expectation
	// drains are the agents known to be draining (drain.go).
	drains drainSet
}

// expectation is one allocation or task made at revision rev.
type expectation struct {
	alloc *pb.Allocation
	task  *pb.Task
	rev   int64
	since time.Time
}

// expectTTL bounds how long an expectation holds without the cache
// catching up to its revision (it normally does within milliseconds).
const expectTTL = 30 * time.Second

// withExpectations adds to the cache's view what this controller made
// and the cache does not show yet, and forgets what it shows or has gone
// past (the cache applied a later revision: the object was made and maybe
// already ended).
func (c *Controller) withExpectations(name string, allocs []*pb.Allocation, tasks []*pb.Task, rev int64, now time.Time) ([]*pb.Allocation, []*pb.Task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for _, a := range allocs {
		seen[a.GetId()] = true
	}
	for _, t := range tasks {
		seen[t.GetId()] = true
	}
	for k, e := range c.expect[name] {
		if seen[e.alloc.GetId()] || seen[e.task.GetId()] || rev > e.rev || now.Sub(e.since) > expectTTL {
			delete(c.expect[name], k)
			continue
		}
		if e.alloc != nil {
			allocs = append(allocs, e.alloc)
		}
		if e.task != nil {
			tasks = append(tasks, e.task)
		}
	}
	if len(c.expect[name]) == 0 {
		delete(c.expect, name)
	}
	return allocs, tasks
}

func (c *Controller) expectMade(name, key string, e *expectation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expect == nil {
		c.expect = map[string]map[string]*expectation{}
	}
	if c.expect[name] == nil {
		c.expect[name] = map[string]*expectation{}
	}
	c.expect[name][key] = e
}

func (c *Controller) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Controller) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// Services lists the services that have a spec (for a full resync).
func (c *Controller) Services(ctx context.Context) ([]string, error) {
	res, err := c.Kernel.StateList(ctx, &pb.StateListRequest{Prefix: PrefixSpecs, KeysOnly: true})
	if err != nil {
		return nil, fmt.Errorf("list specs: %w", err)
	}
	var out []string
	for _, e := range res.GetEntries() {
		out = append(out, e.GetKey()[len(PrefixSpecs):])
	}
	return out, nil
}

// KeysOf returns the services an event concerns (for the Queue): the
// dcos.svc label of its allocation or task, or the service of a specs/ key.
func KeysOf(ev *pb.Event) []string {
	var out []string
	if s := ServiceOf(ev.GetAllocation().GetLabels()); s != "" {
		out = append(out, s)
	}
	if s := ServiceOf(ev.GetTask().GetLabels()); s != "" && (len(out) == 0 || out[0] != s) {
		out = append(out, s)
	}
	// Only specs: the init's own deployment and status writes would
	// otherwise wake it for nothing.
	if k := ev.GetState().GetKey(); strings.HasPrefix(k, PrefixSpecs) {
		out = append(out, ServiceOfKey(k))
	}
	return out
}

// Reconcile is one pass over service name (the SDK Reconciler contract):
// it returns when to look again, or an error to be retried with backoff.
func (c *Controller) Reconcile(ctx context.Context, name string) (time.Duration, error) {
	var v View
	v.Now = c.now()
	rec, specRev, err := getJSONRev[Record](ctx, c.Kernel, SpecKey(name))
	if err != nil {
		return 0, err
	}
	// The spec is read from the kernel, the instances from the cache:
	// act only once the cache has caught up with the spec's write, or a
	// pass could judge a new spec against instances older than it (old
	// instances not yet seen ready would be replaced as unready ones).
	if rev := c.Cache.Revision(); rev < specRev {
		return cacheLagWait, nil
	}
	v.Record = rec
	if v.Deployment, err = getJSON[Deployment](ctx, c.Kernel, DeploymentKey(name)); err != nil {
		return 0, err
	}
	if v.Status, err = getJSON[Status](ctx, c.Kernel, StatusKey(name)); err != nil {
		return 0, err
	}
	c.mu.Lock()
	if st := c.latest[name]; st != nil {
		v.Status = cloneStatus(st)
	}
	c.mu.Unlock()
	if rec != nil {
		rec.Spec.Default()
		if err := rec.Spec.Validate(); err != nil {
			// A spec written around dcosctl's validation: say so, do nothing.
			st := cloneStatus(v.Status)
			st.Message = "invalid spec: " + err.Error()
			st.Updated = v.Now.UTC()
			return c.putStatus(ctx, name, st)
		}
	}
	rev := c.Cache.Revision()
	allocs, tasks := c.withExpectations(name, c.Cache.AllocationsLabeled(LabelService, name), c.Cache.TasksLabeled(LabelService, name), rev, v.Now)
	v.Instances = Instances(name, allocs, tasks)
	if rec != nil {
		var fallback int64
		if d := v.Deployment; d != nil && d.Status == DeploymentFailed && d.SpecVersion == rec.Version {
			fallback = d.Fallback
		}
		if v.Old, err = c.oldSpecs(ctx, name, rec, v.Instances, fallback); err != nil {
			return 0, err
		}
	}
	// Agents' labels matter only to constraints that depend on where
	// the other instances run.
	if rec != nil && rec.Spec.Serial() {
		agents, err := c.Kernel.ListAgents(ctx, &pb.ListAgentsRequest{})
		if err != nil {
			return 0, fmt.Errorf("list agents: %w", err)
		}
		v.Agents = map[string]map[string]string{}
		for _, a := range agents.GetAgents() {
			l := map[string]string{"dcos.agent": a.GetId()}
			for k, val := range a.GetLabels() {
				l[k] = val
			}
			v.Agents[a.GetId()] = l
		}
	}
	v.Draining = c.draining()
	d := Decide(v)
	wait, err := c.apply(ctx, name, v, d)
	if wait > 0 && (d.RequeueAfter == 0 || wait < d.RequeueAfter) {
		d.RequeueAfter = wait
	}
	return d.RequeueAfter, err
}

// apply carries out a decision: kills, allocations, launches, then the
// deployment and status writes (persist what happened after doing it: a
// crash in between is repaired by the next pass, which sees the kernel).
// It returns when to come back for a status write it put off.
func (c *Controller) apply(ctx context.Context, name string, v View, d Decision) (time.Duration, error) {
	log := c.logger().With("service", name)
	var (
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// Calls go out concurrently, at most MaxInFlight at once: the kernel
	// commits the calls that arrive together in one store transaction, so a
	// large service starts in a few round trips instead of one per
	// instance. Kills all end before anything starts.
	limit := c.MaxInFlight
	if limit <= 0 {
		limit = 32
	}
	var g errgroup.Group
	g.SetLimit(limit)
	for _, k := range d.Kills {
		g.Go(func() error {
			_, err := c.Kernel.Revoke(ctx, &pb.RevokeRequest{Id: k.ID, Reason: k.Reason})
			if err != nil && connect.CodeOf(err) != connect.CodeNotFound {
				fail(fmt.Errorf("revoke %s: %w", k.ID, err))
				return nil
			}
			log.Info("killed", "id", k.ID, "reason", k.Reason)
			return nil
		})
	}
	g.Wait()
	launch := func(r *pb.LaunchRequest) {
		res, err := c.Kernel.Launch(ctx, r)
		if err != nil {
			fail(fmt.Errorf("launch in %s: %w", r.GetAllocationId(), err))
			return
		}
		if t := res.GetTask(); t != nil {
			if t.GetCreated() == nil {
				t.Created = timestamppb.New(v.Now)
			}
			c.expectMade(name, "t:"+t.GetAllocationId(), &expectation{task: t, rev: res.GetRevision(), since: v.Now})
		}
		log.Info("launched", "instance", r.GetLabels()[LabelInstance], "task", res.GetTask().GetId())
	}
	for _, r := range d.Allocate {
		g.Go(func() error {
			res, err := c.Kernel.Allocate(ctx, r)
			if err != nil {
				fail(fmt.Errorf("allocate instance %s: %w", r.GetLabels()[LabelInstance], err))
				return nil
			}
			for _, a := range res.GetAllocations() {
				if a.GetLabels() == nil {
					a.Labels = r.GetLabels()
				}
				c.expectMade(name, "a:"+a.GetId(), &expectation{alloc: a, rev: res.GetRevision(), since: v.Now})
				log.Info("allocated", "instance", r.GetLabels()[LabelInstance], "allocation", a.GetId(), "state", a.GetState().String())
				if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
					// Launch at once rather than on the next event.
					n, _ := strconv.Atoi(r.GetLabels()[LabelInstance])
					launch(v.Record.Spec.launchRequest(a.GetId(), v.Record.TemplateVersion, n))
				}
			}
			return nil
		})
	}
	for _, r := range d.Launch {
		g.Go(func() error { launch(r); return nil })
	}
	g.Wait()
	if d.Deployment != nil {
		if err := putJSON(ctx, c.Kernel, DeploymentKey(name), d.Deployment); err != nil {
			errs = append(errs, err)
		}
	}
	var wait time.Duration
	if d.Status != nil {
		w, err := c.putStatus(ctx, name, d.Status)
		if err != nil {
			errs = append(errs, err)
		}
		wait = w
	}
	if d.Done {
		c.mu.Lock()
		delete(c.latest, name)
		c.mu.Unlock()
		for _, key := range []string{DeploymentKey(name), StatusKey(name)} {
			if _, err := c.Kernel.StateDelete(ctx, &pb.StateDeleteRequest{Key: key}); err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", key, err))
			}
		}
	}
	return wait, errors.Join(errs...)
}

// putStatus writes a service's status at most once per StatusInterval; for
// a write it puts off it returns how long until the service should be
// reconciled again to make it.
func (c *Controller) putStatus(ctx context.Context, name string, st *Status) (time.Duration, error) {
	every := c.StatusInterval
	if every == 0 {
		every = 200 * time.Millisecond
	}
	c.mu.Lock()
	if c.lastWrite == nil {
		c.lastWrite, c.latest = map[string]time.Time{}, map[string]*Status{}
	}
	c.latest[name] = cloneStatus(st)
	last := c.lastWrite[name]
	now := c.now()
	if wait := last.Add(every).Sub(now); wait > 0 {
		c.mu.Unlock()
		return wait, nil
	}
	c.lastWrite[name] = now
	c.mu.Unlock()
	return 0, putJSON(ctx, c.Kernel, StatusKey(name), st)
}

// oldSpecs loads from history the specs of the template versions other
// than rec's that instances in ins run, and of fallback (a failed
// deployment's, 0 for none), by template version.
func (c *Controller) oldSpecs(ctx context.Context, name string, rec *Record, ins []*Instance, fallback int64) (map[int64]*Service, error) {
	want := map[int64]bool{}
	for _, in := range ins {
		if in.Version != rec.TemplateVersion {
			want[in.Version] = true
		}
	}
	if fallback != 0 && fallback != rec.TemplateVersion {
		want[fallback] = true
	}
	if len(want) == 0 {
		return nil, nil
	}
	res, err := c.Kernel.StateList(ctx, &pb.StateListRequest{Prefix: HistoryPrefix(name)})
	if err != nil {
		return nil, fmt.Errorf("list history: %w", err)
	}
	out := map[int64]*Service{}
	for _, e := range res.GetEntries() {
		var r Record
		if json.Unmarshal(e.GetValue(), &r) != nil || !want[r.TemplateVersion] {
			continue
		}
		r.Spec.Default()
		s := r.Spec
		out[r.TemplateVersion] = &s
	}
	return out, nil
}

// getJSON reads key into a T; nil when the key does not exist.
func getJSON[T any](ctx context.Context, k Kernel, key string) (*T, error) {
	v, _, err := getJSONRev[T](ctx, k, key)
	return v, err
}

// getJSONRev reads key as JSON and the revision of its last write (nil
// and 0 when it does not exist).
func getJSONRev[T any](ctx context.Context, k Kernel, key string) (*T, int64, error) {
	res, err := k.StateGet(ctx, &pb.StateGetRequest{Key: key})
	if connect.CodeOf(err) == connect.CodeNotFound {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", key, err)
	}
	var v T
	if err := json.Unmarshal(res.GetEntry().GetValue(), &v); err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", key, err)
	}
	return &v, res.GetEntry().GetRevision(), nil
}

// cacheLagWait is when a pass that found the cache behind the spec it
// read looks again (the spec's own event usually wakes it first).
const cacheLagWait = 10 * time.Millisecond

func putJSON(ctx context.Context, k Kernel, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if _, err := k.StatePut(ctx, &pb.StatePutRequest{Key: key, Value: b}); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}
