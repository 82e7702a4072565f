package kernel_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/internal/store"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var (
	ops = kernel.Principal{Name: "ops", Role: kernel.RoleOperator}
	fwA = kernel.Principal{Name: "fw-a", Role: kernel.RoleFramework}
	fwB = kernel.Principal{Name: "fw-b", Role: kernel.RoleFramework}
)

// flaky wraps the real etcd store and fails the next Commit on demand:
// fail refuses it (nothing written); unknown writes it and then reports
// an unknown outcome (as a lost answer does). failLoad fails every Load;
// loads counts them.
type flaky struct {
	*store.Etcd
	fail, unknown, failLoad atomic.Bool
	loads                   atomic.Int64
}

func (f *flaky) Commit(ctx context.Context, c *kernel.Changes) (int64, error) {
	if f.fail.CompareAndSwap(true, false) {
		return 0, errors.New("injected commit failure")
	}
	if f.unknown.CompareAndSwap(true, false) {
		if _, err := f.Etcd.Commit(ctx, c); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("injected: the answer was lost: %w", kernel.ErrCommitUnknown)
	}
	return f.Etcd.Commit(ctx, c)
}

func (f *flaky) Load(ctx context.Context) (*kernel.State, error) {
	f.loads.Add(1)
	if f.failLoad.Load() {
		return nil, errors.New("injected load failure")
	}
	return f.Etcd.Load(ctx)
}

type env struct {
	etcd  *store.Embedded
	store *flaky
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e, err := store.StartEmbedded(store.EmbeddedConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return &env{etcd: e, store: &flaky{Etcd: store.New(e.Client(), "")}}
}

// start runs a kernel on the env's store until the test ends or stop is called.
func (e *env) start(t *testing.T) (k *kernel.Kernel, stop func()) {
	t.Helper()
	return e.startWith(t, kernel.Config{})
}

// startWith is start with cfg (its store and heartbeat timeout are set).
func (e *env) startWith(t *testing.T, cfg kernel.Config) (k *kernel.Kernel, stop func()) {
	t.Helper()
	cfg.Store, cfg.HeartbeatTimeout = e.store, time.Hour
	k, err := kernel.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return k, stop
}

func register(t *testing.T, k *kernel.Kernel, cpus float64, mem int64) string {
	t.Helper()
	r, err := k.RegisterAgent(context.Background(), ops, &pb.RegisterAgentRequest{Hostname: "h", Resources: &pb.Resources{Cpus: cpus, MemBytes: mem}})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetAgentId()
}

func alloc(cpus float64, mem int64) *pb.AllocateRequest {
	return &pb.AllocateRequest{Resources: &pb.Resources{Cpus: cpus, MemBytes: mem}}
}

// collect watches from after until n events arrived.
func collect(t *testing.T, k *kernel.Kernel, p kernel.Principal, req *pb.WatchRequest, n int) []*pb.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*pb.Event
	errDone := errors.New("done")
	err := k.Watch(ctx, p, req, func(e *pb.Event) error {
		out = append(out, e)
		if len(out) == n {
			return errDone
		}
		return nil
	})
	if !errors.Is(err, errDone) {
		t.Fatalf("watch: %v after %d of %d events", err, len(out), n)
	}
	return out
}

func TestKernel_ConcurrentAllocateGroupCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	register(t, k, 64, 64<<30)
	const n = 64
	var wg sync.WaitGroup
	revs := make([]int64, n)
	for i := range n {
		wg.Go(func() {
			resp, err := k.Allocate(context.Background(), fwA, alloc(0.5, 1<<20))
			if err != nil {
				t.Error(err)
				return
			}
			if resp.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
				t.Errorf("allocation %d: %v", i, resp.GetAllocations()[0].GetState())
			}
			revs[i] = resp.GetRevision()
		})
	}
	wg.Wait()
	distinct := map[int64]bool{}
	for _, r := range revs {
		distinct[r] = true
	}
	t.Logf("%d concurrent allocates committed in %d transactions", n, len(distinct))
	if got := len(k.ListAllocations(context.Background(), ops, &pb.ListAllocationsRequest{}).GetAllocations()); got != n {
		t.Fatalf("%d allocations listed, want %d", got, n)
	}
}

func TestKernel_WatchResumesAcrossRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, stop := e.start(t)
	register(t, k, 4, 1<<30)
	start := k.Revision()
	a, err := k.Allocate(context.Background(), fwA, alloc(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Launch(context.Background(), fwA, &pb.LaunchRequest{AllocationId: a.GetAllocations()[0].GetId(), Command: "true"}); err != nil {
		t.Fatal(err)
	}
	before := k.Revision()
	stop()

	k2, _ := e.start(t)
	if k2.Revision() != before {
		t.Fatalf("restarted at revision %d, want %d", k2.Revision(), before)
	}
	if _, err := k2.Revoke(context.Background(), fwA, &pb.RevokeRequest{Id: a.GetAllocations()[0].GetId()}); err != nil {
		t.Fatal(err)
	}
	// From before the restart: granted, task launched, then (new) task killed + revoked.
	evs := collect(t, k2, ops, &pb.WatchRequest{AfterRevision: start}, 4)
	want := []pb.EventKind{pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED, pb.EventKind_EVENT_KIND_TASK_STATE,
		pb.EventKind_EVENT_KIND_TASK_STATE, pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED}
	for i, ev := range evs {
		if ev.GetKind() != want[i] || ev.GetRevision() <= start {
			t.Fatalf("event %d: %v at %d, want %v after %d", i, ev.GetKind(), ev.GetRevision(), want[i], start)
		}
		if i > 0 && ev.GetRevision() < evs[i-1].GetRevision() {
			t.Fatalf("revisions out of order: %d after %d", ev.GetRevision(), evs[i-1].GetRevision())
		}
	}
	if s := evs[2].GetTask().GetState(); s != pb.TaskState_TASK_STATE_KILLED {
		t.Fatalf("task after revoke: %v", s)
	}
}

func TestKernel_WatchVisibility(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	start := k.Revision()
	agent := register(t, k, 4, 1<<30)
	if _, err := k.Allocate(context.Background(), fwA, alloc(1, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Allocate(context.Background(), fwB, alloc(1, 1<<20)); err != nil {
		t.Fatal(err)
	}
	// fw-b sees the agent registration and its own grant, not fw-a's.
	evs := collect(t, k, fwB, &pb.WatchRequest{AfterRevision: start}, 2)
	if evs[0].GetKind() != pb.EventKind_EVENT_KIND_AGENT_REGISTERED || evs[1].GetAllocation().GetOwner() != "fw-b" {
		t.Fatalf("fw-b saw %v then %v (owner %q)", evs[0].GetKind(), evs[1].GetKind(), evs[1].GetAllocation().GetOwner())
	}
	// Kind and agent filters.
	evs = collect(t, k, ops, &pb.WatchRequest{AfterRevision: start, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED}, AgentId: agent}, 2)
	if evs[0].GetAllocation().GetOwner() != "fw-a" || evs[1].GetAllocation().GetOwner() != "fw-b" {
		t.Fatalf("operator grants: %v", evs)
	}
	ctx := context.Background()
	if err := k.Watch(ctx, ops, &pb.WatchRequest{AfterRevision: k.Revision() + 10}, nil); kernel.CodeOf(err) != kernel.InvalidArgument {
		t.Fatalf("watch from the future: %v", err)
	}
}

func TestKernel_WatchCompacted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	register(t, k, 4, 1<<30)
	for range 3 {
		if _, err := k.Allocate(context.Background(), fwA, alloc(0.1, 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.Compact(context.Background(), k.Revision()); err != nil {
		t.Fatal(err)
	}
	err := k.Watch(context.Background(), ops, &pb.WatchRequest{AfterRevision: 1}, func(*pb.Event) error { return nil })
	var ke *kernel.Error
	if !errors.As(err, &ke) || ke.Code != kernel.FailedPrecondition || ke.Resync == nil || ke.Resync.Current < k.Revision() {
		t.Fatalf("watch from a compacted revision: %v", err)
	}
}

func TestKernel_CommitFailureLosesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	register(t, k, 4, 1<<30)
	ctx := context.Background()
	good, err := k.Allocate(ctx, fwA, alloc(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	rev := k.Revision()
	e.store.fail.Store(true)
	if _, err := k.Allocate(ctx, fwA, alloc(1, 1<<20)); kernel.CodeOf(err) != kernel.Unavailable {
		t.Fatalf("allocate during a store failure: %v, want Unavailable", err)
	}
	list := k.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{})
	if len(list.GetAllocations()) != 1 || list.GetAllocations()[0].GetId() != good.GetAllocations()[0].GetId() || list.GetRevision() != rev {
		t.Fatalf("after a failed commit: %d allocations at revision %d (want 1 at %d)", len(list.GetAllocations()), list.GetRevision(), rev)
	}
	agents := k.ListAgents(ctx, ops).GetAgents()
	if got := agents[0].GetAllocated().GetCpus(); got != 1 {
		t.Fatalf("agent allocated cpus %v after a failed commit, want 1", got)
	}
	// And the kernel keeps serving.
	if _, err := k.Allocate(ctx, fwA, alloc(1, 1<<20)); err != nil {
		t.Fatalf("allocate after recovery: %v", err)
	}
}

// TestKernel_FailedCommitNeedsNoStoreRead: a commit that wrote nothing
// is undone from the kernel's committed state in memory — persist, then
// apply — so the kernel serves on at once even when the store cannot be
// read, and nothing of the failed batch (its allocation, the resources
// it took, its id) remains.
func TestKernel_FailedCommitNeedsNoStoreRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	agent := register(t, k, 4, 1<<30)
	ctx := context.Background()
	good, err := k.Allocate(ctx, fwA, alloc(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	loads := e.store.loads.Load()
	e.store.failLoad.Store(true)
	e.store.fail.Store(true)
	_, err = k.Allocate(ctx, fwA, alloc(2, 1<<20))
	if kernel.CodeOf(err) != kernel.Unavailable || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("allocate with a refused commit: %v, want Unavailable saying nothing was written", err)
	}
	next, err := k.Allocate(ctx, fwA, alloc(1, 1<<20))
	if err != nil {
		t.Fatalf("allocate right after a refused commit, with the store unreadable: %v", err)
	}
	if n := e.store.loads.Load() - loads; n != 0 {
		t.Errorf("the kernel read the store back %d times after a commit that wrote nothing", n)
	}
	e.store.failLoad.Store(false)
	// The kernel's table is the store's: a kernel loaded afresh agrees.
	k2, err := kernel.New(ctx, kernel.Config{Store: e.store, HeartbeatTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, kk := range []*kernel.Kernel{k, k2} {
		var ids []string
		for _, a := range kk.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations() {
			ids = append(ids, a.GetId()+"@"+a.GetAgentId())
		}
		slices.Sort(ids)
		want := []string{good.GetAllocations()[0].GetId() + "@" + agent, next.GetAllocations()[0].GetId() + "@" + agent}
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Errorf("allocations %v, want %v", ids, want)
		}
		if got := kk.ListAgents(ctx, ops).GetAgents()[0].GetAllocated().GetCpus(); got != 2 {
			t.Errorf("agent allocated cpus %v, want 2 (the refused batch's 2 cpus released)", got)
		}
	}
}

// TestKernel_CommitUnknownReloads: when the store cannot tell whether a
// commit was applied (its answer was lost), the kernel reads the store
// back rather than guess: here the batch was applied, so the kernel knows
// the allocation and never hands its id out again.
func TestKernel_CommitUnknownReloads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	register(t, k, 4, 1<<30)
	ctx := context.Background()
	e.store.unknown.Store(true)
	_, err := k.Allocate(ctx, fwA, alloc(1, 1<<20))
	if kernel.CodeOf(err) != kernel.Unavailable || !strings.Contains(err.Error(), "may still take effect") {
		t.Fatalf("allocate whose commit outcome is unknown: %v, want Unavailable saying it may take effect", err)
	}
	list := k.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations()
	if len(list) != 1 {
		t.Fatalf("after the reload: %d allocations, want the 1 etcd applied", len(list))
	}
	next, err := k.Allocate(ctx, fwA, alloc(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if id := next.GetAllocations()[0].GetId(); id == list[0].GetId() {
		t.Fatalf("id %s handed out twice", id)
	}
	if n := len(k.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations()); n != 2 {
		t.Fatalf("%d allocations, want 2", n)
	}
}

// TestKernel_UsageEvents: agents' usage samples reach Watch as TASK_USAGE
// events, one per task with a new sample per interval, with rates, and
// only to those who may see the task.
func TestKernel_UsageEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, err := kernel.New(context.Background(), kernel.Config{Store: e.store, HeartbeatTimeout: time.Hour, UsageEventInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	agent := register(t, k, 4, 1<<30)
	res, err := k.Allocate(context.Background(), fwA, alloc(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	lr, err := k.Launch(context.Background(), fwA, &pb.LaunchRequest{AllocationId: res.GetAllocations()[0].GetId(), Command: "x"})
	if err != nil {
		t.Fatal(err)
	}
	id := lr.GetTask().GetId()
	start := k.Revision()
	t0 := time.Now()
	for i, cpu := range []uint64{1e9, 3e9} {
		if _, err := k.Heartbeat(context.Background(), ops, &pb.HeartbeatRequest{AgentId: agent, Usage: []*pb.TaskUsage{
			{TaskId: id, CpuNs: cpu, MemBytes: 4096, Sampled: timestamppb.New(t0.Add(time.Duration(i) * time.Second))}}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // past the interval: one event per sample
	}
	usage := []pb.EventKind{pb.EventKind_EVENT_KIND_TASK_USAGE}
	evs := collect(t, k, fwA, &pb.WatchRequest{AfterRevision: start, Kinds: usage}, 2)
	if evs[0].GetTask().GetId() != id || evs[0].GetTask().GetUsage().GetMemBytes() != 4096 || evs[0].GetTask().GetOwner() != "fw-a" {
		t.Errorf("first usage event = %v", evs[0])
	}
	if got := evs[1].GetTask().GetUsage().GetCpuCores(); got != 2 {
		t.Errorf("second usage event cpu = %v cores, want 2 (2 cpu-seconds in 1 s)", got)
	}
	// fw-b does not see fw-a's usage: its watch ends on the deadline with
	// nothing, while an operator's sees both.
	wctx, wcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer wcancel()
	var seen int
	k.Watch(wctx, fwB, &pb.WatchRequest{AfterRevision: start, Kinds: usage}, func(*pb.Event) error { seen++; return nil })
	if seen != 0 {
		t.Errorf("fw-b saw %d of fw-a's usage events", seen)
	}
	collect(t, k, ops, &pb.WatchRequest{AfterRevision: start, Kinds: usage}, 2)
}

// TestKernel_SubnetsPersist: agents' subnets and underlay addresses
// survive a kernel restart (the real store), a known agent keeps its
// subnet when it registers again, and new ones get the next free /24.
func TestKernel_SubnetsPersist(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, stop := e.start(t)
	ctx := context.Background()
	reg := func(k *kernel.Kernel, id, underlay string) *pb.RegisterAgentResponse {
		t.Helper()
		r, err := k.RegisterAgent(ctx, ops, &pb.RegisterAgentRequest{AgentId: id, Hostname: "h", UnderlayIp: underlay, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first, second := reg(k, "", "192.0.2.1"), reg(k, "", "192.0.2.2")
	if first.GetSubnet() != "10.88.0.0/24" || second.GetSubnet() != "10.88.1.0/24" || first.GetClusterCidr() != "10.88.0.0/16" {
		t.Fatalf("subnets %s, %s in %s; want 10.88.0.0/24, 10.88.1.0/24 in the default 10.88.0.0/16", first.GetSubnet(), second.GetSubnet(), first.GetClusterCidr())
	}
	stop()

	k2, _ := e.start(t)
	got := map[string]string{}
	for _, g := range k2.ListAgents(ctx, ops).GetAgents() {
		got[g.GetId()] = g.GetSubnet() + " " + g.GetUnderlayIp()
	}
	want := map[string]string{first.GetAgentId(): "10.88.0.0/24 192.0.2.1", second.GetAgentId(): "10.88.1.0/24 192.0.2.2"}
	if len(got) != 2 || got[first.GetAgentId()] != want[first.GetAgentId()] || got[second.GetAgentId()] != want[second.GetAgentId()] {
		t.Fatalf("after a restart ListAgents shows %v, want %v", got, want)
	}
	if r := reg(k2, second.GetAgentId(), "192.0.2.22"); r.GetSubnet() != "10.88.1.0/24" {
		t.Errorf("%s registered again with its saved id: subnet %s, want 10.88.1.0/24", second.GetAgentId(), r.GetSubnet())
	}
	if r := reg(k2, "", ""); r.GetSubnet() != "10.88.2.0/24" {
		t.Errorf("a new agent after the restart: subnet %s, want 10.88.2.0/24", r.GetSubnet())
	}
}

// TestKernel_SubnetsExhausted: a /23 holds two agents; the third is
// refused with ResourceExhausted and leaves nothing behind, before and
// after a restart, while the known agents still register.
func TestKernel_SubnetsExhausted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := kernel.Config{ClusterCIDR: netip.MustParsePrefix("10.77.0.0/23")}
	k, stop := e.startWith(t, cfg)
	ctx := context.Background()
	a1, a2 := register(t, k, 1, 1<<30), register(t, k, 1, 1<<30)
	check := func(k *kernel.Kernel) {
		t.Helper()
		rev := k.Revision()
		_, err := k.RegisterAgent(ctx, ops, &pb.RegisterAgentRequest{Hostname: "third", Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}})
		if kernel.CodeOf(err) != kernel.ResourceExhausted || !strings.Contains(err.Error(), `cluster CIDR 10.77.0.0/23 has no free /24 for a new agent (hostname "third")`) {
			t.Fatalf("third agent in a /23: %v (code %v), want ResourceExhausted naming the CIDR", err, kernel.CodeOf(err))
		}
		if n := len(k.ListAgents(ctx, ops).GetAgents()); n != 2 || k.Revision() != rev {
			t.Fatalf("after a refused registration: %d agents, revision %d -> %d", n, rev, k.Revision())
		}
		for id, want := range map[string]string{a1: "10.77.0.0/24", a2: "10.77.1.0/24"} {
			r, err := k.RegisterAgent(ctx, ops, &pb.RegisterAgentRequest{AgentId: id, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}})
			if err != nil || r.GetSubnet() != want {
				t.Fatalf("%s registering again in a full CIDR: %v, subnet %s (want %s)", id, err, r.GetSubnet(), want)
			}
		}
	}
	check(k)
	stop()
	k2, _ := e.startWith(t, cfg)
	check(k2)
	// The ids issued stay dense: the refused registration took none.
	if a2 != "agent-2" {
		t.Errorf("second agent id %s", a2)
	}
	if _, err := k2.Allocate(ctx, fwA, alloc(0.5, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if id := k2.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations()[0].GetId(); id != "a-4" {
		t.Errorf("next allocation id %s, want a-4 (r-3 then a-4: no id lost to the refusal)", id)
	}
}

// TestKernel_TaskNetwork: a bridge task's ports, with the host port the
// kernel assigned from its allocation, reach the agent in the TASK_STATE
// event, and the address and ports its agent reports are
// shown by ListTasks and the events, and persist.
func TestKernel_TaskNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, stop := e.start(t)
	ctx := context.Background()
	r, err := k.RegisterAgent(ctx, ops, &pb.RegisterAgentRequest{Hostname: "h", Resources: &pb.Resources{Cpus: 4, MemBytes: 1 << 30}, HostPorts: "31000-31009"})
	if err != nil {
		t.Fatal(err)
	}
	agent := r.GetAgentId()
	a, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20, Ports: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if hp := a.GetAllocations()[0].GetHostPorts(); len(hp) != 1 || hp[0] != 31000 {
		t.Fatalf("allocation's host ports %v, want [31000]", hp)
	}
	start := k.Revision()
	lr, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: a.GetAllocations()[0].GetId(), Command: "x", Network: "bridge",
		Ports: []*pb.PortRequest{{Name: "http", ContainerPort: 8080}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: a.GetAllocations()[0].GetId(), Command: "x", Network: "vxlan"}); kernel.CodeOf(err) != kernel.InvalidArgument || !strings.HasPrefix(err.Error(), "network:") {
		t.Fatalf("launch with network vxlan: %v", err)
	}
	id := lr.GetTask().GetId()
	set := []*pb.PortMapping{{Name: "http", ContainerPort: 8080, HostPort: 31000, Protocol: "tcp"}}
	if _, err := k.ReportTaskStatus(ctx, ops, &pb.ReportTaskStatusRequest{TaskId: id, AgentId: agent, State: pb.TaskState_TASK_STATE_RUNNING, Pid: 9, Ip: "10.88.0.2", Ports: set}); err != nil {
		t.Fatal(err)
	}
	evs := collect(t, k, fwA, &pb.WatchRequest{AfterRevision: start, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_TASK_STATE}}, 2)
	if p := evs[0].GetTask().GetPorts(); evs[0].GetTask().GetNetwork() != "bridge" || len(p) != 1 || p[0].GetHostPort() != 31000 || p[0].GetProtocol() != "tcp" {
		t.Errorf("launch event: %v", evs[0].GetTask())
	}
	if k := evs[1].GetTask(); k.GetIp() != "10.88.0.2" || !proto.Equal(k.GetPorts()[0], set[0]) {
		t.Errorf("RUNNING event: %v", k)
	}
	stop()
	k2, _ := e.start(t)
	ts := k2.ListTasks(ctx, fwA, &pb.ListTasksRequest{}).GetTasks()
	if len(ts) != 1 || ts[0].GetIp() != "10.88.0.2" || ts[0].GetNetwork() != "bridge" || len(ts[0].GetPorts()) != 1 || !proto.Equal(ts[0].GetPorts()[0], set[0]) {
		t.Errorf("ListTasks after a restart: %v", ts)
	}
	// The allocation's host port is persisted and still held: the agent has
	// 9 of 10 left, and a new allocation gets another port.
	as := k2.ListAllocations(ctx, fwA, &pb.ListAllocationsRequest{}).GetAllocations()
	if len(as) != 1 || len(as[0].GetHostPorts()) != 1 || as[0].GetHostPorts()[0] != 31000 {
		t.Errorf("allocations after a restart: %v", as)
	}
	if g := k2.ListAgents(ctx, ops).GetAgents()[0]; g.GetHostPorts() != "31000-31009" || g.GetTotal().GetPorts() != 10 || g.GetAllocated().GetPorts() != 1 {
		t.Errorf("agent after a restart: %v", g)
	}
	if _, err := k2.RegisterAgent(ctx, ops, &pb.RegisterAgentRequest{AgentId: agent, Resources: &pb.Resources{Cpus: 4, MemBytes: 1 << 30}, HostPorts: "31000-31009"}); err != nil {
		t.Fatal(err)
	}
	b, err := k2.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20, Ports: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if hp := b.GetAllocations()[0].GetHostPorts(); len(hp) != 1 || hp[0] == 31000 {
		t.Errorf("a new allocation after the restart got host ports %v, want one other than the held 31000", hp)
	}
}

// TestKernel_ClusterCIDRChecked: the kernel refuses a CIDR it cannot
// carve /24s from.
func TestKernel_ClusterCIDRChecked(t *testing.T) {
	for _, s := range []string{"10.88.0.0/25", "10.88.1.0/16", "fd00::/64"} {
		if _, err := kernel.New(context.Background(), kernel.Config{Store: &flaky{}, ClusterCIDR: netip.MustParsePrefix(s)}); err == nil {
			t.Errorf("kernel.New accepted cluster CIDR %s", s)
		}
	}
}

// TestKernel_AgentWatchSeesOwnAgent: an agent token's watch shows its own
// agent's allocations and tasks and every agent's registrations, never
// another agent's tasks (whose env it must not read).
func TestKernel_AgentWatchSeesOwnAgent(t *testing.T) {
	k, _ := newEnv(t).start(t)
	ctx := context.Background()
	agA, agB := kernel.Principal{Name: "agents-a", Role: kernel.RoleAgent}, kernel.Principal{Name: "agents-b", Role: kernel.RoleAgent}
	reg := func(p kernel.Principal, id string) string {
		r, err := k.RegisterAgent(ctx, p, &pb.RegisterAgentRequest{AgentId: id, Hostname: p.Name, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}})
		if err != nil {
			t.Fatal(err)
		}
		return r.GetAgentId()
	}
	a1, a2 := reg(agA, ""), reg(agB, "")
	rev := k.Revision()
	res, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20},
		Constraints: []*pb.Constraint{{Label: kernel.AgentLabel, Op: pb.Constraint_OP_EQUALS, Values: []string{a1}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: res.GetAllocations()[0].GetId(), Command: "x", Env: map[string]string{"SECRET": "s"}}); err != nil {
		t.Fatal(err)
	}
	reg(agB, a2)
	evs := collect(t, k, agB, &pb.WatchRequest{AfterRevision: rev}, 1)
	if evs[0].GetKind() != pb.EventKind_EVENT_KIND_AGENT_REGISTERED || evs[0].GetAgent().GetId() != a2 {
		t.Errorf("agent-2's watch: first event %v, want its own AGENT_REGISTERED (nothing of %s's allocation or task)", evs[0], a1)
	}
	evs = collect(t, k, agA, &pb.WatchRequest{AfterRevision: rev}, 3)
	if evs[0].GetAllocation().GetAgentId() != a1 || evs[1].GetTask().GetEnv()["SECRET"] != "s" || evs[2].GetAgent().GetId() != a2 {
		t.Errorf("agent-1's watch = %v, want its allocation, its task (with env), agent-2's registration", evs)
	}
}

// TestKernel_AgentBindingSurvivesRestart: the binding of an agent token
// to its agent is stored with the agent: after a kernel restart another
// token still may not register, heartbeat or report for it, and its own
// still may.
func TestKernel_AgentBindingSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	k, stop := e.start(t)
	ctx := context.Background()
	agA, agB := kernel.Principal{Name: "agents-a", Role: kernel.RoleAgent}, kernel.Principal{Name: "agents-b", Role: kernel.RoleAgent}
	req := func(id string) *pb.RegisterAgentRequest {
		return &pb.RegisterAgentRequest{AgentId: id, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}}
	}
	r, err := k.RegisterAgent(ctx, agA, req(""))
	if err != nil {
		t.Fatal(err)
	}
	id := r.GetAgentId()
	stop()

	k2, _ := e.start(t)
	if g := k2.ListAgents(ctx, ops).GetAgents()[0]; g.GetPrincipal() != "agents-a" {
		t.Fatalf("agent after a restart: principal %q, want agents-a", g.GetPrincipal())
	}
	if _, err := k2.RegisterAgent(ctx, agB, req(id)); kernel.CodeOf(err) != kernel.PermissionDenied {
		t.Errorf("another token registers %s after a restart: %v, want PermissionDenied", id, err)
	}
	if _, err := k2.Heartbeat(ctx, agB, &pb.HeartbeatRequest{AgentId: id}); kernel.CodeOf(err) != kernel.PermissionDenied {
		t.Errorf("another token heartbeats %s after a restart: %v, want PermissionDenied", id, err)
	}
	if _, err := k2.RegisterAgent(ctx, agA, req(id)); err != nil {
		t.Errorf("its own token registers %s after a restart: %v", id, err)
	}
	if r, err := k2.RegisterAgent(ctx, agA, req("")); err != nil || r.GetAgentId() != id || len(k2.ListAgents(ctx, ops).GetAgents()) != 1 {
		t.Errorf("its token registers with an empty id after a restart: %v, %v; want %s again, not a second agent", r, err, id)
	}
}
