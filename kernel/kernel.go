package kernel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Store makes the table durable and keeps the event log. Implementations
// live outside the kernel (internal/store: etcd).
type Store interface {
	// Load returns the durable state and the store revision it reflects.
	Load(ctx context.Context) (*State, error)
	// Commit writes c in one transaction and returns its revision. On error
	// nothing was written, unless the error wraps ErrCommitUnknown (it may
	// have been: only a Load tells). It must serialise c's objects before
	// returning.
	Commit(ctx context.Context, c *Changes) (int64, error)
	// Events calls fn, in order, with the events of every revision after
	// after, then with new ones as they are committed, until ctx ends or fn
	// fails. History the store has compacted away is a *ResyncError.
	Events(ctx context.Context, after int64, fn func(rev int64, evs []*pb.Event) error) error
	// PutBlob stores b under its sha256 (hex); idempotent. GetBlob reads
	// it back. Policy modules are blobs.
	PutBlob(ctx context.Context, sha string, b []byte) error
	GetBlob(ctx context.Context, sha string) ([]byte, error)
}

// Config configures a Kernel. Zero values get the documented defaults.
type Config struct {
	Store Store
	// Loader compiles WebAssembly policies; nil means only native
	// first-fit is available.
	Loader PolicyLoader
	// Builtins are policy modules shipped with the binary, by name.
	Builtins map[string][]byte
	// DefaultPolicy runs until an operator chooses another (default
	// native first-fit).
	DefaultPolicy string
	// Roles are the operator's DRF weights and quotas, by role name.
	Roles map[string]RoleConfig
	// RoleUsers are the users other than the default a role's tasks may
	// run as (LaunchRequest.user), by role name; AnyUser ("*") allows
	// every user. A role not listed runs only as the default unprivileged
	// user; a Launch asking for another is PermissionDenied, whoever asks.
	RoleUsers map[string][]string
	// ClusterCIDR is the IPv4 range agents' /24 subnets come from (default
	// DefaultClusterCIDR); it must pass CheckClusterCIDR.
	ClusterCIDR netip.Prefix
	// Clock is the kernel's only source of time (default time.Now).
	Clock func() time.Time
	// HeartbeatInterval is what agents are told to use (default 1s).
	HeartbeatInterval time.Duration
	// HeartbeatTimeout marks an agent lost after this much silence
	// (default 10s).
	HeartbeatTimeout time.Duration
	// Tick is how often leases and heartbeats are checked (default 100ms).
	Tick time.Duration
	// MaxPending caps the pending allocations one framework may hold in one
	// role (default DefaultMaxPending; negative: no cap); RoleMaxPending
	// overrides it per role ("" is the default role). Operators are not
	// capped.
	MaxPending     int
	RoleMaxPending map[string]int
	// MaxBatch bounds the syscalls committed in one transaction (default 512).
	MaxBatch int
	// UsageEventInterval is how often TASK_USAGE events are emitted, one
	// per task with a new sample, in one transaction (default 10s).
	UsageEventInterval time.Duration
	// DefaultDisk is the disk of allocations that ask for none (default
	// 0: none). Where agents size sandboxes by it, it bounds every task.
	DefaultDisk int64
	// WatchBuffer is how many events may be queued for one Watch before
	// it is ended as fallen behind (default DefaultWatchBuffer).
	WatchBuffer int
	// WatchBufferBytes bounds the same queue in bytes of events
	// (protobuf size; default DefaultWatchBufferBytes).
	WatchBufferBytes int
	// WatchReplays bounds the Watch history replays from the store that
	// run at once (default DefaultWatchReplays).
	WatchReplays int
	Logger       *slog.Logger
	// Sealer seals tasks' secret environment (kernel/secrets.go); nil
	// means none: a Launch with secret_env is FailedPrecondition.
	Sealer Sealer
	// NoAudit turns the audit trail off (audit.go): no records are
	// written and AuditList answers what earlier kernels wrote.
	NoAudit bool
	// AuditRetention deletes audit records older than this (0: never).
	AuditRetention time.Duration
	// AuditKernel names this kernel in its audit records (its advertised
	// URL).
	AuditKernel string
	// AuditPruneInterval is how often expired records are looked for
	// (default DefaultAuditPruneInterval).
	AuditPruneInterval time.Duration
}

// Kernel serves syscalls over a Table: it serialises every mutation
// through one loop that batches queued calls, runs the allocation cycle,
// and commits the batch in one store transaction (group commit). Reads
// are served from a committed read view (view.go) that the loop updates
// after each commit: they never wait for the policy or the store. A
// Kernel's methods are safe for concurrent use; they return *Error
// values.
type Kernel struct {
	cfg Config
	log *slog.Logger
	ops chan *op
	// mu guards the loop's working table: the loop holds it for a whole
	// iteration; only the policy calls that run a policy on the live
	// snapshot (dry runs) and compile take it besides.
	mu    sync.RWMutex
	table *Table
	// view is what reads see: committed state only (view.go).
	view  *view
	stale bool // the table may disagree with the store; reload before serving
	done  chan struct{}
	hub   *hub // Watch fan-out; runs while Run does
	// streams relays log and exec streams (streams.go).
	streams *streams

	usageSent time.Time // when TASK_USAGE events were last emitted (loop only)
	// fenced is set (loop only) once a commit was refused with ErrFenced:
	// Run returns it.
	fenced error

	// Loop only: since when the store refuses writes (zero: it does not),
	// and until when nothing expires after a refusal (see gate).
	refusedSince, expireAfter time.Time

	// Policies: compiled modules by name, the last one that completed a
	// cycle, and a forced fallback when the active one could not be
	// loaded at start; and the cycles' statistics. Written under mu and
	// pmu both, so the loop reads them under mu alone and the read calls
	// (PolicyList, Metrics) under pmu alone.
	pmu      sync.Mutex
	compiled map[string]*compiled
	lastGood string
	forced   string
	cycles   cycleStats // for Metrics

	// The audit trail (audit.go): the queue of Audit, its drop counters,
	// and, loop only, the committed head of the chain and the queued
	// records a failed commit gave back.
	auditq                          chan *pb.AuditRecord
	auditDropped, auditTotalDropped atomic.Uint64
	auditSeq                        uint64
	auditHash                       []byte
	auditRetry                      []*pb.AuditRecord
}

type op struct {
	fn   func(t *Table, c *Changes, now time.Time) error
	post func(t *Table) // after a successful commit, under the lock
	err  error
	rev  int64
	done chan struct{}
	// audit is the call's audit description (nil: not audited), and
	// auditPrev its state before this op's batch (audit.go).
	audit     *AuditCall
	auditPrev int32
}

// New loads the durable state and returns a kernel; call Run to serve.
func New(ctx context.Context, cfg Config) (*Kernel, error) {
	if cfg.Store == nil {
		return nil, errors.New("kernel: no store")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 10 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 100 * time.Millisecond
	}
	if cfg.UsageEventInterval <= 0 {
		cfg.UsageEventInterval = 10 * time.Second
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 512
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.WatchBuffer <= 0 {
		cfg.WatchBuffer = DefaultWatchBuffer
	}
	if cfg.WatchBufferBytes <= 0 {
		cfg.WatchBufferBytes = DefaultWatchBufferBytes
	}
	if cfg.WatchReplays <= 0 {
		cfg.WatchReplays = DefaultWatchReplays
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if !cfg.ClusterCIDR.IsValid() {
		cfg.ClusterCIDR = DefaultClusterCIDR
	}
	if err := CheckClusterCIDR(cfg.ClusterCIDR); err != nil {
		return nil, fmt.Errorf("kernel: %w", err)
	}
	if err := ValidateRoleUsers(cfg.RoleUsers); err != nil {
		return nil, fmt.Errorf("kernel: role users: %w", err)
	}
	st, err := cfg.Store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("kernel: load state: %w", err)
	}
	k := &Kernel{cfg: cfg, log: cfg.Logger, ops: make(chan *op, 4096), table: Restore(st, cfg.Clock()), done: make(chan struct{}),
		hub: newHub(cfg.Store, cfg.Logger, cfg.WatchBuffer, cfg.WatchBufferBytes, cfg.WatchReplays), streams: newStreams(),
		auditq: make(chan *pb.AuditRecord, AuditQueue)}
	if err := k.auditLoad(ctx); err != nil {
		return nil, fmt.Errorf("kernel: load state: %w", err)
	}
	k.configure(k.table)
	k.view = &view{}
	k.view.reset(k.table)
	k.hub.applied = func(ctx context.Context, rev int64) bool { return k.view.waitFor(ctx, rev, viewWait) }
	k.initPolicies(ctx)
	a, al, ts := k.table.Counts()
	k.log.Info("kernel state loaded", "revision", st.Revision, "agents", a, "allocations", al, "tasks", ts, "policy", k.activeName())
	return k, nil
}

// Run serves until ctx ends. Calls made after Run returns fail
// Unavailable. It runs the watch hub (the kernel's one store watch, fanned
// out to every Watch) alongside the loop; Watch calls wait for it.
func (k *Kernel) Run(ctx context.Context) error {
	defer close(k.done)
	hubDone := make(chan struct{})
	defer func() { <-hubDone }()
	go func() {
		defer close(hubDone)
		k.hub.run(ctx, k.Revision())
	}()
	go k.auditPruneLoop(ctx)
	tick := time.NewTicker(k.cfg.Tick)
	defer tick.Stop()
	for {
		var batch []*op
		select {
		case <-ctx.Done():
			k.drain()
			return nil
		case o := <-k.ops:
			batch = append(batch, o)
		more:
			for len(batch) < k.cfg.MaxBatch {
				select {
				case o := <-k.ops:
					batch = append(batch, o)
				default:
					break more
				}
			}
		case r := <-k.auditq:
			k.auditKeep(r) // written by this iteration
		case <-tick.C:
		}
		k.iterate(ctx, batch)
		if k.fenced != nil {
			k.drain()
			return k.fenced
		}
	}
}

func (k *Kernel) drain() {
	msg := "kernel is shutting down"
	if k.fenced != nil {
		msg = "this kernel no longer leads; retry (another kernel took over)"
	}
	for {
		select {
		case o := <-k.ops:
			o.err = errorf(Unavailable, "%s", msg)
			close(o.done)
		default:
			return
		}
	}
}

// iterate applies a batch, expires leases and agents, runs a cycle if
// anything may have freed room, and commits it all in one transaction.
func (k *Kernel) iterate(ctx context.Context, batch []*op) {
	now := k.cfg.Clock()
	if err := k.gate(now); err != nil {
		for _, o := range batch {
			o.err = err
			close(o.done)
		}
		return
	}
	k.mu.Lock()
	defer func() {
		rev := k.table.Revision()
		k.mu.Unlock()
		for _, o := range batch {
			o.rev = rev
			close(o.done)
		}
	}()
	if k.stale && !k.reload(ctx, now) {
		for _, o := range batch {
			o.err = errorf(Unavailable, "kernel store is unavailable; retry")
		}
		return
	}
	saved := k.savePolicies()
	c := newChanges()
	k.table.AssignSubnets(c)
	k.auditQueued(c, now)
	for _, o := range batch {
		evs := len(c.Events)
		o.err = o.fn(k.table, c, now)
		k.auditOp(o, c, c.Events[evs:], now)
	}
	if !now.Before(k.expireAfter) {
		k.table.Expire(now, k.cfg.HeartbeatTimeout, c)
	}
	usage := now.Sub(k.usageSent) >= k.cfg.UsageEventInterval
	if usage {
		k.table.UsageEvents(now, c)
	}
	if c.cycle {
		k.runCycle(now, c)
	}
	if c.Empty() {
		if len(c.renewed) > 0 {
			k.view.apply(c, 0) // memory only: nothing to persist first
		}
		if usage {
			k.usageSent = now
		}
		return
	}
	k.auditChain(c)
	// Once sent, a commit is waited for (the store bounds it by its own
	// timeout) even if ctx ends meanwhile: its callers then learn its
	// outcome, and a late commit of a deposed leader is answered — refused
	// by the fence — rather than abandoned in flight.
	rev, err := k.cfg.Store.Commit(context.WithoutCancel(ctx), c)
	if err != nil {
		// Nothing of the batch is kept: the policy runtime goes back to
		// what it was with the table (a module loaded by the batch is
		// closed), and the table is rebuilt below.
		k.restorePolicies(saved)
	}
	switch {
	case errors.Is(err, ErrFenced):
		// Another kernel leads: nothing of this batch was written, and
		// this kernel stops (its table is dropped with it).
		k.log.Warn("commit refused by the leader fence; this kernel no longer leads", "err", err)
		k.fenced = fmt.Errorf("kernel: %w", err)
		k.auditFailed(c, batch, fateLost)
		for _, o := range batch {
			o.err = errorf(Unavailable, "this kernel no longer leads; retry (another kernel took over)")
		}
		return
	case errors.Is(err, ErrCommitUnknown):
		// etcd may still apply the batch: only the store knows, so the
		// table is reloaded from it (now, or at the next iteration).
		k.log.Error("commit outcome unknown; reloading state from the store", "err", err)
		k.stale = true
		// The chain's head is reloaded with the table: the batch's
		// records are in the store or not, and the queued ones are
		// written again only if they are not.
		fate := fateLost
		if k.reload(ctx, now) {
			fate = fateRetry
			if len(c.Audit) > 0 && k.auditSeq >= c.Audit[0].Seq {
				fate = fateWritten
			}
		}
		k.auditFailed(c, batch, fate)
		for _, o := range batch {
			o.err = errorf(Unavailable, "kernel store commit failed: %v (the call may still take effect: etcd may apply it later)", err)
		}
		return
	case err != nil:
		// Nothing was written: the committed state is the read view's,
		// and the working table is rebuilt from it, without a store read.
		k.log.Error("commit failed; nothing was written", "err", err)
		k.rollback(now)
		k.auditFailed(c, batch, fateRetry)
		for _, o := range batch {
			o.err = errorf(Unavailable, "kernel store commit failed: %v (nothing was written; retry)", err)
		}
		return
	}
	if usage {
		k.usageSent = now
	}
	k.table.Committed(c, rev)
	k.auditCommitted(c, batch)
	// Persist, then apply: readers see the batch once it is durable, and
	// before any of its callers is answered.
	k.view.apply(c, rev)
	for _, o := range batch {
		if o.err == nil && o.post != nil {
			o.post(k.table)
		}
	}
}

// rollback replaces the working table, which a batch whose commit
// failed has changed, with one rebuilt from the committed read view:
// persist, then apply, without reading the store back. The memory-only
// maps (heartbeats, plugins, images, usage) and the leases' expiries are
// kept as they are. The loop only, under mu.
func (k *Kernel) rollback(now time.Time) {
	old := k.table
	var (
		st        *State
		elections map[ElectionKey]*pb.Leadership
		completed []*pb.Task
		nextDone  int
	)
	k.view.read(func(v *Table) {
		st = v.durable()
		completed, nextDone = make([]*pb.Task, len(v.completed), MaxCompleted), v.nextDone
		for i, t := range v.completed {
			completed[i] = proto.Clone(t).(*pb.Task)
		}
	})
	// The leases keep their expiries: Restore would give held ones a
	// fresh ttl, so the elections go in after it.
	elections = make(map[ElectionKey]*pb.Leadership, len(st.Elections))
	for _, l := range st.Elections {
		elections[ElectionKey{l.GetOwner(), l.GetElection()}] = l
	}
	st.Elections = nil
	t := Restore(st, now)
	t.memMu = old.memMu
	t.heartbeat, t.plugins, t.images, t.removals, t.usage, t.usageNew = old.heartbeat, old.plugins, old.images, old.removals, old.usage, old.usageNew
	t.elections = elections
	t.completed, t.nextDone = completed, nextDone
	k.table = t
	k.configure(t)
}

// reloadTimeout bounds one reload of the table from the store.
const reloadTimeout = 10 * time.Second

// reload replaces the table with the store's state; it reports success.
func (k *Kernel) reload(ctx context.Context, now time.Time) bool {
	// Bounded: a store without quorum does not answer, and the loop must
	// go on failing calls rather than hang (the next iteration retries).
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	st, err := k.cfg.Store.Load(ctx)
	if err != nil {
		k.log.Error("reload state", "err", err)
		return false
	}
	if err := k.auditLoad(ctx); err != nil {
		k.log.Error("reload state", "err", err)
		return false
	}
	k.table, k.stale = Restore(st, now), false
	k.configure(k.table)
	k.view.reset(k.table)
	k.syncCompiled()
	return true
}

// configure gives a restored table the operator's settings, which are
// not part of the durable state.
func (k *Kernel) configure(t *Table) {
	t.SetRoles(k.cfg.Roles)
	t.SetRoleUsers(k.cfg.RoleUsers)
	t.SetClusterCIDR(k.cfg.ClusterCIDR)
	t.SetPendingLimits(k.cfg.MaxPending, k.cfg.RoleMaxPending)
	t.SetSealer(k.cfg.Sealer)
}

// do queues fn for the loop and waits for its commit.
func (k *Kernel) do(ctx context.Context, fn func(*Table, *Changes, time.Time) error, post func(*Table)) (int64, error) {
	o := &op{fn: fn, post: post, done: make(chan struct{}), audit: auditFrom(ctx)}
	select {
	case k.ops <- o:
	case <-k.done:
		return 0, errorf(Unavailable, "kernel is not running")
	case <-ctx.Done():
		return 0, errorf(Unavailable, "%v", ctx.Err())
	}
	select {
	case <-o.done:
		return o.rev, o.err
	case <-k.done:
		// Run ended (this kernel stopped leading, or is stopping): an op
		// queued after its last drain is never run.
		select {
		case <-o.done:
			return o.rev, o.err
		default:
		}
		return 0, errorf(Unavailable, "kernel stopped (it no longer leads, or is shutting down) before the call ran; retry")
	case <-ctx.Done():
		// The op may still commit; the caller sees the outcome in Watch.
		return 0, errorf(Unavailable, "%v (the call may still take effect)", ctx.Err())
	}
}

// Revision is the revision of the last commit.
func (k *Kernel) Revision() int64 {
	var rev int64
	k.view.read(func(t *Table) { rev = t.Revision() })
	return rev
}

// Allocate places req's instances now if they fit, and leaves the rest
// pending with a reason. Frameworks and operators only.
func (k *Kernel) Allocate(ctx context.Context, p Principal, req *pb.AllocateRequest) (*pb.AllocateResponse, error) {
	if err := ValidateAllocate(req); err != nil {
		return nil, err
	}
	if d := k.cfg.DefaultDisk; d > 0 && req.GetResources().GetDiskBytes() == 0 && req.GetResources() != nil {
		req = proto.Clone(req).(*pb.AllocateRequest)
		req.Resources.DiskBytes = d
	}
	var live []*pb.Allocation
	resp := &pb.AllocateResponse{}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		if err := t.checkFence(p.Name, req.GetFence()); err != nil {
			return err
		}
		if _, err := t.checkVolumeClaims(p, req); err != nil {
			return err
		}
		if err := t.checkPending(p, req.GetRole(), max(int(req.GetCount()), 1)); err != nil {
			return err
		}
		live = t.Allocate(p, req, now, c)
		auditFrom(ctx).noteAllocations(live) // pending ones have no event yet
		return nil
	}, func(*Table) {
		for _, a := range live {
			cl := proto.Clone(a).(*pb.Allocation)
			resp.Allocations = append(resp.Allocations, cl)
			if cl.GetPendingReason() != "" {
				resp.PendingReason = cl.GetPendingReason()
			}
		}
	})
	if err != nil {
		return nil, err
	}
	resp.Revision = rev
	return resp, nil
}

// Launch starts a task in a granted allocation p owns.
func (k *Kernel) Launch(ctx context.Context, p Principal, req *pb.LaunchRequest) (*pb.LaunchResponse, error) {
	if err := k.checkLaunch(req); err != nil {
		return nil, err
	}
	resp := &pb.LaunchResponse{}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) (err error) {
		resp.Task, err = launchOne(t, p, req, now, c)
		return err
	}, nil)
	if err != nil {
		return nil, err
	}
	resp.Revision = rev
	return resp, nil
}

// Revoke takes back an allocation or a task; see Table.Revoke. With
// req.All it takes back every live allocation p may act on that matches
// req's role, owner and pending, in transactions of at most RevokeChunk
// (see Table.RevokeAll); the response lists them.
func (k *Kernel) Revoke(ctx context.Context, p Principal, req *pb.RevokeRequest) (*pb.RevokeResponse, error) {
	if len(req.GetReason()) > MaxStringLen {
		return nil, fieldError("reason", "longer than %d", MaxStringLen)
	}
	if err := validateFence(req.GetFence()); err != nil {
		return nil, err
	}
	if req.GetAll() {
		return k.revokeAll(ctx, p, req)
	}
	if req.GetRole() != "" || req.GetOwner() != "" || req.GetPending() {
		return nil, fieldError("all", "role, owner and pending select allocations for a bulk revoke only (all: true)")
	}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		if err := t.checkFence(p.Name, req.GetFence()); err != nil {
			return err
		}
		return t.Revoke(p, req.GetId(), req.GetReason(), now, c)
	}, nil)
	if err != nil {
		return nil, err
	}
	return &pb.RevokeResponse{Revision: rev}, nil
}

func (k *Kernel) revokeAll(ctx context.Context, p Principal, req *pb.RevokeRequest) (*pb.RevokeResponse, error) {
	if req.GetId() != "" {
		return nil, fieldError("id", "give an id or all, not both")
	}
	if err := validateName("role", req.GetRole(), false); err != nil {
		return nil, err
	}
	if err := validateName("owner", req.GetOwner(), false); err != nil {
		return nil, err
	}
	f := RevokeFilter{Role: req.GetRole(), Owner: req.GetOwner(), Pending: req.GetPending()}
	resp := &pb.RevokeResponse{}
	// Chunks are separate transactions, so allocations made meanwhile may
	// be taken too; the loop ends when a chunk comes back short, or after
	// as many chunks as there were allocations to begin with.
	var rounds int
	k.view.read(func(t *Table) { rounds = len(t.allocs)/RevokeChunk + 1 })
	for range rounds {
		var ids []string
		rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) (err error) {
			if err := t.checkFence(p.Name, req.GetFence()); err != nil {
				return err
			}
			ids, err = t.RevokeAll(p, f, RevokeChunk, req.GetReason(), now, c)
			return err
		}, nil)
		if err != nil {
			if len(resp.RevokedIds) > 0 {
				return nil, errorf(CodeOf(err), "%v (after revoking %d allocations)", err, len(resp.RevokedIds))
			}
			return nil, err
		}
		resp.RevokedIds = append(resp.RevokedIds, ids...)
		if rev > 0 {
			resp.Revision = rev
		}
		if len(ids) < RevokeChunk {
			break
		}
	}
	if resp.Revision == 0 {
		resp.Revision = k.Revision()
	}
	return resp, nil
}

// KeepAlive renews leases.
func (k *Kernel) KeepAlive(ctx context.Context, p Principal, req *pb.KeepAliveRequest) (*pb.KeepAliveResponse, error) {
	if n := len(req.GetAllocationIds()); n == 0 || n > MaxIDs {
		return nil, fieldError("allocation_ids", "want 1 to %d ids, got %d", MaxIDs, n)
	}
	resp := &pb.KeepAliveResponse{}
	_, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		as, err := t.KeepAlive(p, req.GetAllocationIds(), now, c)
		for _, a := range as {
			resp.Allocations = append(resp.Allocations, proto.Clone(a).(*pb.Allocation))
		}
		return err
	}, nil)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// RegisterAgent admits an agent for p and answers its subnet; a new agent
// when the cluster CIDR has no free subnet is ResourceExhausted. An agent
// token registers only the agent it is bound to (see Table.Register).
func (k *Kernel) RegisterAgent(ctx context.Context, p Principal, req *pb.RegisterAgentRequest) (*pb.RegisterAgentResponse, error) {
	if err := ValidateRegister(req); err != nil {
		return nil, err
	}
	var resp *pb.RegisterAgentResponse
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) (err error) {
		resp, err = t.Register(p, req, now, c)
		return err
	}, nil)
	if err != nil {
		return nil, err
	}
	resp.Revision = rev
	resp.HeartbeatInterval = durationpb.New(k.cfg.HeartbeatInterval)
	for _, task := range resp.Tasks {
		stripSecrets(task) // its agent reads them with TaskSecrets
	}
	return resp, nil
}

// Heartbeat records an agent's liveness, for p (see Table.Heartbeat), and
// answers the image removals queued for the agent (Table.RemoveImage),
// each once. It does not touch the store, and does not wait for the
// loop: it is checked against the read view and recorded in the
// memory-only maps (view.go). The agent's last heartbeat is what
// ListAgents shows; the Agent objects in the store and in events do not
// carry it.
func (k *Kernel) Heartbeat(_ context.Context, p Principal, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	if err := ValidateHeartbeat(req); err != nil {
		return nil, err
	}
	var rm []string
	var err error
	k.view.read(func(t *Table) { rm, err = t.viewHeartbeat(p, req, k.cfg.Clock()) })
	if err != nil {
		return nil, err
	}
	return &pb.HeartbeatResponse{RemoveImages: rm}, nil
}

// ReportTaskStatus applies an agent's report, made by p (see Table.Report).
func (k *Kernel) ReportTaskStatus(ctx context.Context, p Principal, req *pb.ReportTaskStatusRequest) (*pb.ReportTaskStatusResponse, error) {
	if err := ValidateReport(req); err != nil {
		return nil, err
	}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		return reportOne(t, p, req, now, c)
	}, nil)
	if err != nil {
		return nil, err
	}
	return &pb.ReportTaskStatusResponse{Revision: rev}, nil
}

// ListAgents lists every agent, for every principal (agents need their
// peers' addresses for the overlay; an Agent carries no task specs). The
// agents are the read view's own, never changed once made (a change makes
// a new one): callers may read and marshal them but must not change them
// (proto.Clone first).
func (k *Kernel) ListAgents(context.Context, Principal) *pb.ListAgentsResponse {
	var resp *pb.ListAgentsResponse
	k.view.read(func(t *Table) { resp = &pb.ListAgentsResponse{Agents: t.agentsShared(), Revision: t.Revision()} })
	return resp
}

// ListAllocations lists the live allocations p may see (an agent token:
// its own agent's).
func (k *Kernel) ListAllocations(_ context.Context, p Principal, req *pb.ListAllocationsRequest) *pb.ListAllocationsResponse {
	var resp *pb.ListAllocationsResponse
	k.view.read(func(t *Table) {
		resp = &pb.ListAllocationsResponse{Allocations: t.Allocations(p, req.GetAgentId()), Revision: t.Revision()}
	})
	return resp
}

// ListTasks lists the tasks p may see (an agent token: its own agent's).
func (k *Kernel) ListTasks(_ context.Context, p Principal, req *pb.ListTasksRequest) *pb.ListTasksResponse {
	var resp *pb.ListTasksResponse
	k.view.read(func(t *Table) {
		resp = &pb.ListTasksResponse{Tasks: t.Tasks(p, req.GetAllocationId(), req.GetAgentId()), Revision: t.Revision()}
	})
	k.revealOrStrip(p, resp.Tasks, req.GetRevealSecrets())
	return resp
}

// ListVolumes lists the volumes p may see.
func (k *Kernel) ListVolumes(_ context.Context, p Principal, req *pb.ListVolumesRequest) *pb.ListVolumesResponse {
	var resp *pb.ListVolumesResponse
	k.view.read(func(t *Table) { resp = &pb.ListVolumesResponse{Volumes: t.Volumes(p, req.GetAgentId())} })
	return resp
}

// DestroyVolume destroys a volume; see Table.DestroyVolume.
func (k *Kernel) DestroyVolume(ctx context.Context, p Principal, req *pb.DestroyVolumeRequest) (*pb.DestroyVolumeResponse, error) {
	if !volumeNameRE.MatchString(req.GetName()) {
		return nil, fieldError("name", "want [a-z0-9][a-z0-9._-]*, at most 63 bytes, got %q", clip(req.GetName()))
	}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		return t.DestroyVolume(p, req.GetName(), now, c)
	}, nil)
	if err != nil {
		return nil, err
	}
	return &pb.DestroyVolumeResponse{Revision: rev}, nil
}

// Watch streams the events p may see after req.AfterRevision (0: from
// now), filtered by req, until ctx ends or send fails; send is called
// from this goroutine only, one event at a time, and revisions arrive
// whole and in order. It is a FailedPrecondition *Error carrying a
// ResyncError when the revision is compacted (ResyncError.Compacted > 0)
// or when the caller fell behind: Config.WatchBuffer events (or
// WatchBufferBytes) were queued for it (ResyncError.Compacted == 0; the
// message names the revision to resume after, the last one sent whole).
// Watch returns nil when ctx ends, and Unavailable when the kernel stops.
// An agent token sees the events of its own agent's allocations, tasks and
// volumes (the agent it is bound to when the watch starts) and every
// agent's AGENT_REGISTERED and AGENT_LOST.
func (k *Kernel) Watch(ctx context.Context, p Principal, req *pb.WatchRequest, send func(*pb.Event) error) error {
	var cur int64
	var mine string
	k.view.read(func(t *Table) { cur, mine = t.Revision(), t.boundAgent(p) })
	send = func(send func(*pb.Event) error) func(*pb.Event) error {
		return func(e *pb.Event) error { return send(strippedEvent(e)) } // secrets.go
	}(send)
	after := req.GetAfterRevision()
	switch {
	case after < 0:
		return fieldError("after_revision", "must be >= 0, got %d", after)
	case after > cur:
		return fieldError("after_revision", "%d is in the future (current revision %d)", after, cur)
	case after == 0:
		after = cur
	}
	s := &subscriber{p: p, mine: mine, req: req, kinds: map[pb.EventKind]bool{}, after: after}
	for _, kd := range req.GetKinds() {
		s.kinds[kd] = true
	}
	last, err := k.hub.subscribe(ctx, s, k.done)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer k.hub.unsubscribe(s)
	sent := after // the last revision sent whole
	if after < last {
		if err := k.replay(ctx, s, after, last, send, &sent); err != nil {
			return watchEnd(ctx, err)
		}
	}
	for {
		b, err := s.next(ctx)
		if errors.Is(err, errFellBehind) {
			s.mu.Lock()
			n := s.behind
			s.mu.Unlock()
			return &Error{Code: FailedPrecondition,
				Msg:    fmt.Sprintf("watch: fell behind: %d events buffered; resume after revision %d", n, sent),
				Resync: &ResyncError{Current: k.hub.revision()}}
		}
		if err != nil {
			return watchEnd(ctx, err)
		}
		for _, e := range b.evs {
			if err := send(e); err != nil {
				return err
			}
		}
		sent = b.rev
	}
}

// visible reports whether p (an agent token bound to agent mine) sees e
// through a watch of req.
func visible(p Principal, mine string, req *pb.WatchRequest, kinds map[pb.EventKind]bool, e *pb.Event) bool {
	if len(kinds) > 0 && !kinds[e.GetKind()] {
		return false
	}
	owner, agent := "", ""
	switch {
	case e.GetTask() != nil:
		owner, agent = e.GetTask().GetOwner(), e.GetTask().GetAgentId()
	case e.GetAllocation() != nil:
		owner, agent = e.GetAllocation().GetOwner(), e.GetAllocation().GetAgentId()
	case e.GetAgent() != nil:
		agent = e.GetAgent().GetId()
	case e.GetVolume() != nil:
		owner, agent = e.GetVolume().GetOwner(), e.GetVolume().GetAgentId()
	case e.GetState() != nil: // the owner's and operators' only
		owner = e.GetState().GetOwner()
	case e.GetLeader() != nil:
		owner = e.GetLeader().GetOwner()
	}
	if owner != "" && p.Role == RoleFramework && owner != p.Name {
		return false
	}
	if p.Role == RoleAgent && e.GetAgent() == nil && (owner != "" || agent != "") && (mine == "" || agent != mine) {
		return false // another agent's allocation, task or volume
	}
	if req.GetOwner() != "" && owner != req.GetOwner() {
		return false
	}
	return req.GetAgentId() == "" || agent == req.GetAgentId()
}
