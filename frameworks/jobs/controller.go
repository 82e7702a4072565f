package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	StateGet(ctx context.Context, r *pb.StateGetRequest) (*pb.StateGetResponse, error)
	StatePut(ctx context.Context, r *pb.StatePutRequest) (*pb.StatePutResponse, error)
	StateDelete(ctx context.Context, r *pb.StateDeleteRequest) (*pb.StateDeleteResponse, error)
	StateList(ctx context.Context, r *pb.StateListRequest) (*pb.StateListResponse, error)
}

// Cache is the part of the SDK cache the controller reads.
// *framework.Cache satisfies it.
type Cache interface {
	Allocations() []*pb.Allocation
	AllocationsLabeled(key, value string) []*pb.Allocation
	TasksLabeled(key, value string) []*pb.Task
	Revision() int64
}

// Controller reconciles jobs: Reconcile(ctx, job) reads the job's spec,
// meta and runs from the framework state and its allocations and tasks
// from the cache, Decides, and applies the decision. It holds nothing the
// kernel does not also hold but the objects it made that the cache does
// not show yet, so a new leader's Controller picks up where the last one
// stopped. Reconcile is safe for concurrent use on different jobs (the
// SDK's Queue never runs one key twice at once).
type Controller struct {
	Kernel Kernel
	Cache  Cache
	Logger *slog.Logger
	// Now is the clock (time.Now when nil): schedules, backoffs and
	// deadlines are judged by it (tests inject a fake clock here).
	Now func() time.Time
	// KernelURL and Token are given to MPI launchers as DCOS_KERNEL and
	// DCOS_TOKEN (see mpi.go): a kernel URL tasks can reach and the jobs
	// principal's own token, so that mpirun's dcosctl exec may start its
	// daemons in the rank hosts. Empty: not given.
	KernelURL string
	Token     string

	mu   sync.Mutex
	made map[string]map[string]*made

	noBatch atomic.Bool // the kernel answered Unimplemented to LaunchBatch
}

// BatchLauncher is what a Kernel that can launch many tasks in one call
// also has (*framework.Client does): LaunchBatch's results are per item,
// in order. A Controller whose Kernel has it launches a pass's tasks in
// LaunchBatch calls of at most MaxLaunchBatch (a 1,000-task gang in one
// call and one commit) rather than one Launch each; a kernel that
// answers Unimplemented gets Launch calls from then on.
type BatchLauncher interface {
	LaunchBatch(ctx context.Context, r *pb.LaunchBatchRequest) (*pb.LaunchBatchResponse, error)
}

// MaxLaunchBatch is the most launches of one LaunchBatch call (the
// kernel's limit).
const MaxLaunchBatch = 1000

// made is an allocation or task this controller made at revision rev.
type made struct {
	alloc *pb.Allocation
	task  *pb.Task
	rev   int64
}

// maxInFlight bounds the kernel calls one pass has in flight at once.
const maxInFlight = 32

// cacheLagWait is when a pass that found the cache behind the state it
// read looks again.
const cacheLagWait = 10 * time.Millisecond

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

func (c *Controller) remember(job, id string, m *made) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.made == nil {
		c.made = map[string]map[string]*made{}
	}
	if c.made[job] == nil {
		c.made[job] = map[string]*made{}
	}
	c.made[job][id] = m
}

// withMade adds what this controller made that the cache does not show
// yet, and forgets what the cache shows or has gone past.
func (c *Controller) withMade(job string, allocs []*pb.Allocation, tasks []*pb.Task, rev int64) ([]*pb.Allocation, []*pb.Task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[string]bool{}
	for _, a := range allocs {
		seen[a.GetId()] = true
	}
	for _, t := range tasks {
		seen[t.GetId()] = true
	}
	for id, m := range c.made[job] {
		if seen[id] || rev >= m.rev {
			delete(c.made[job], id)
			continue
		}
		if m.alloc != nil {
			allocs = append(allocs, m.alloc)
		}
		if m.task != nil {
			tasks = append(tasks, m.task)
		}
	}
	if len(c.made[job]) == 0 {
		delete(c.made, job)
	}
	return allocs, tasks
}

// Jobs lists every job that has a spec, runs or allocations, sorted.
func (c *Controller) Jobs(ctx context.Context) ([]string, error) {
	set := map[string]bool{}
	for _, a := range c.Cache.Allocations() {
		if j := a.GetLabels()[LabelJob]; j != "" {
			set[j] = true
		}
	}
	for _, p := range []string{PrefixSpecs, PrefixRuns, PrefixMeta} {
		res, err := c.Kernel.StateList(ctx, &pb.StateListRequest{Prefix: p, KeysOnly: true})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", p, err)
		}
		for _, e := range res.GetEntries() {
			if j := JobOfKey(e.GetKey()); j != "" {
				set[j] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for j := range set {
		out = append(out, j)
	}
	sort.Strings(out)
	return out, nil
}

// KeysOf returns the jobs an event concerns: the dcos.job label of its
// allocation or task, or the job of a specs/ or runs/ key.
func KeysOf(ev *pb.Event) []string {
	var out []string
	if j := ev.GetAllocation().GetLabels()[LabelJob]; j != "" {
		out = append(out, j)
	}
	if j := ev.GetTask().GetLabels()[LabelJob]; j != "" && (len(out) == 0 || out[0] != j) {
		out = append(out, j)
	}
	if k := ev.GetState().GetKey(); strings.HasPrefix(k, PrefixSpecs) || strings.HasPrefix(k, PrefixRuns) {
		out = append(out, JobOfKey(k))
	}
	return out
}

// Load reads a job's view from the state and the cache. ok is false when
// the cache trails the state read (look again shortly). revs holds each
// run's key revision by sequence number.
func (c *Controller) Load(ctx context.Context, job string) (v View, revs map[int64]int64, ok bool, err error) {
	v.Now, v.Job = c.now(), job
	spec, specRev, err := getJSONRev[SpecRecord](ctx, c.Kernel, SpecKey(job))
	if err != nil {
		return v, nil, false, err
	}
	if spec != nil {
		spec.Spec.Default()
		if spec.Spec.Validate() != nil {
			spec = nil // written around dcosctl's validation: no runs
		}
	}
	v.Spec = spec
	meta, metaRev, err := getJSONRev[Meta](ctx, c.Kernel, MetaKey(job))
	if err != nil {
		return v, nil, false, err
	}
	if meta != nil {
		v.Meta = *meta
	}
	res, err := c.Kernel.StateList(ctx, &pb.StateListRequest{Prefix: RunsPrefix(job)})
	if err != nil {
		return v, nil, false, fmt.Errorf("list runs: %w", err)
	}
	revs = map[int64]int64{}
	top := max(specRev, metaRev)
	for _, e := range res.GetEntries() {
		var r Run
		if json.Unmarshal(e.GetValue(), &r) != nil {
			continue
		}
		if r.Spec != nil {
			r.Spec.Default()
		}
		revs[r.Seq] = e.GetRevision()
		top = max(top, e.GetRevision())
		v.Runs = append(v.Runs, &r)
	}
	sort.Slice(v.Runs, func(i, j int) bool { return v.Runs[i].Seq < v.Runs[j].Seq })
	rev := c.Cache.Revision()
	if rev < top {
		return v, revs, false, nil
	}
	v.Allocs, v.Tasks = c.withMade(job, c.Cache.AllocationsLabeled(LabelJob, job), c.Cache.TasksLabeled(LabelJob, job), rev)
	return v, revs, true, nil
}

// Reconcile is one pass over a job (the SDK Reconciler contract): it
// returns when to look again, or an error to be retried with backoff.
func (c *Controller) Reconcile(ctx context.Context, job string) (time.Duration, error) {
	v, revs, ok, err := c.Load(ctx, job)
	if err != nil {
		return 0, err
	}
	if !ok {
		return cacheLagWait, nil
	}
	d := Decide(v)
	err = c.apply(ctx, v, revs, d)
	if err != nil {
		c.logger().Warn("jobs: reconcile", "job", job, "err", err)
	}
	return d.RequeueAfter, err
}

func (c *Controller) putRun(ctx context.Context, r *Run, revs map[int64]int64, create bool) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("put run %s: %w", r.ID, err)
	}
	exp := revs[r.Seq]
	if create {
		exp = 0
	}
	// A run copies its spec: with a secretEnv the record is secret too.
	res, err := c.Kernel.StatePut(ctx, &pb.StatePutRequest{Key: RunKey(r.Job, r.Seq), Value: b, ExpectedRevision: &exp, Secret: r.Spec.HasSecrets()})
	if err != nil {
		return fmt.Errorf("put run %s: %w", r.ID, err)
	}
	revs[r.Seq] = res.GetRevision()
	return nil
}

// apply carries out a decision (see Decision for the order).
func (c *Controller) apply(ctx context.Context, v View, revs map[int64]int64, d Decision) error {
	log := c.logger().With("job", v.Job)
	runs := map[string]*Run{}
	for _, r := range v.Runs {
		runs[r.ID] = r
	}
	for _, r := range d.Create {
		if err := c.putRun(ctx, r, revs, true); err != nil {
			return err
		}
		runs[r.ID] = r
		log.Info("run started", "run", r.ID, "cause", r.Cause, "scheduled", r.Scheduled)
	}
	for _, r := range d.Put {
		if err := c.putRun(ctx, r, revs, false); err != nil {
			return err
		}
		runs[r.ID] = r
		if r.Ended() {
			log.Info("run ended", "run", r.ID, "state", r.State, "reason", r.Reason)
		}
	}
	if d.Meta != nil {
		if err := putJSON(ctx, c.Kernel, MetaKey(v.Job), d.Meta); err != nil {
			return err
		}
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	// Revokes and launches go out concurrently, at most maxInFlight at
	// once: the kernel commits calls that arrive together in one store
	// transaction, so a large gang starts in a few round trips.
	var g errgroup.Group
	g.SetLimit(maxInFlight)
	for _, k := range d.Revoke {
		g.Go(func() error {
			if _, err := c.Kernel.Revoke(ctx, &pb.RevokeRequest{Id: k.ID, Reason: k.Reason}); err != nil && connect.CodeOf(err) != connect.CodeNotFound {
				fail(fmt.Errorf("revoke %s: %w", k.ID, err))
			}
			return nil
		})
	}
	g.Wait()
	touched := map[string]bool{}
	type launchJob struct {
		r             *Run
		slot, attempt int
		part          string
		req           *pb.LaunchRequest
	}
	var launches []launchJob
	for _, op := range d.Allocate {
		r := runs[op.Run]
		res, err := c.Kernel.Allocate(ctx, op.Req)
		if code := connect.CodeOf(err); code == connect.CodeInvalidArgument || code == connect.CodePermissionDenied {
			// The kernel will never take this request (a role the jobs
			// principal may not use, resources beyond every limit): the
			// run fails, saying why, rather than retrying for ever.
			r.State, r.Reason, r.Finished = RunFailed, "allocate: "+err.Error(), v.Now.UTC()
			touched[r.ID] = true
			continue
		}
		if err != nil {
			fail(fmt.Errorf("allocate %s: %w", op.Run, err))
			continue
		}
		r.Allocated = true
		touched[r.ID] = true
		for i, a := range res.GetAllocations() {
			if i >= len(op.Slots) {
				break
			}
			if a.GetLabels() == nil {
				a.Labels = op.Req.GetLabels()
			}
			c.remember(v.Job, a.GetId(), &made{alloc: a, rev: res.GetRevision()})
			s := r.record(op.MPI, op.Slots[i])
			s.Allocation, s.Agent = a.GetId(), a.GetAgentId()
			if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
				// Launch at once rather than on the next event.
				att := s.Attempts + 1
				launches = append(launches, launchJob{r, op.Slots[i], att, op.MPI, r.launchRequest(op.MPI, op.Slots[i], a.GetId(), att)})
			}
		}
		if op.MPI == MPIHost {
			r.MPI.Allocated = true
		}
		log.Info("allocated", "run", r.ID, "count", len(res.GetAllocations()), "revision", res.GetRevision(), "pending", res.GetPendingReason())
	}
	for _, op := range d.Launch {
		r := runs[op.Run]
		if !touched[r.ID] {
			r = cloneRun(r)
			runs[r.ID] = r
			touched[r.ID] = true
		}
		launches = append(launches, launchJob{r, op.Slot, op.Attempt, op.MPI, op.Req})
	}
	launched := func(l launchJob, t *pb.Task, rev int64) {
		if t.GetCreated() == nil {
			t.Created = timestamppb.New(v.Now)
		}
		c.remember(v.Job, t.GetId(), &made{task: t, rev: rev})
		// Each launch has its own slot: no two goroutines write one.
		s := l.r.record(l.part, l.slot)
		s.Task, s.Attempts, s.TaskEnded = t.GetId(), l.attempt, false
	}
	launchOne := func(l launchJob) {
		res, err := c.Kernel.Launch(ctx, l.req)
		if err != nil {
			fail(fmt.Errorf("launch %s task %d: %w", l.r.ID, l.slot, err))
			return
		}
		launched(l, res.GetTask(), res.GetRevision())
	}
	for _, l := range launches {
		if l.part == MPILauncher {
			c.kernelEnv(l.req)
		}
	}
	bl, batch := c.Kernel.(BatchLauncher)
	if batch && len(launches) > 1 && !c.noBatch.Load() {
		for chunk := range slices.Chunk(launches, MaxLaunchBatch) {
			g.Go(func() error {
				req := &pb.LaunchBatchRequest{Launches: make([]*pb.LaunchRequest, len(chunk))}
				for i, l := range chunk {
					req.Launches[i] = l.req
				}
				res, err := bl.LaunchBatch(ctx, req)
				if connect.CodeOf(err) == connect.CodeUnimplemented {
					c.noBatch.Store(true)
					log.Info("the kernel has no LaunchBatch; launching one call per task")
					for _, l := range chunk {
						launchOne(l)
					}
					return nil
				}
				if err == nil && len(res.GetResults()) != len(chunk) {
					err = fmt.Errorf("the kernel answered %d results for %d launches", len(res.GetResults()), len(chunk))
				}
				if err != nil {
					fail(fmt.Errorf("launch %s: %d tasks: %w", chunk[0].r.ID, len(chunk), err))
					return nil
				}
				for i, r := range res.GetResults() {
					l := chunk[i]
					if r.GetCode() != "ok" {
						fail(fmt.Errorf("launch %s task %d: %s: %s", l.r.ID, l.slot, r.GetCode(), r.GetMessage()))
						continue
					}
					launched(l, r.GetTask(), res.GetRevision())
				}
				return nil
			})
		}
	} else {
		for _, l := range launches {
			g.Go(func() error { launchOne(l); return nil })
		}
	}
	g.Wait()
	for id := range touched {
		if err := c.putRun(ctx, runs[id], revs, false); err != nil {
			errs = append(errs, err)
		}
	}
	for _, seq := range d.Delete {
		if _, err := c.Kernel.StateDelete(ctx, &pb.StateDeleteRequest{Key: RunKey(v.Job, seq)}); err != nil && connect.CodeOf(err) != connect.CodeNotFound {
			errs = append(errs, fmt.Errorf("delete run %d: %w", seq, err))
		}
	}
	if d.DeleteMeta {
		if _, err := c.Kernel.StateDelete(ctx, &pb.StateDeleteRequest{Key: MetaKey(v.Job)}); err != nil && connect.CodeOf(err) != connect.CodeNotFound {
			errs = append(errs, fmt.Errorf("delete meta: %w", err))
		}
	}
	return errors.Join(errs...)
}

// kernelEnv gives an MPI launcher's request the kernel's URL and the jobs
// principal's token, unless the spec's env or secretEnv set them.
func (c *Controller) kernelEnv(req *pb.LaunchRequest) {
	if req.Env == nil {
		req.Env = map[string]string{}
	}
	for k, v := range map[string]string{EnvKernel: c.KernelURL, EnvToken: c.Token} {
		_, secret := req.SecretEnv[k]
		if _, set := req.Env[k]; !set && !secret && v != "" {
			req.Env[k] = v
		}
	}
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
