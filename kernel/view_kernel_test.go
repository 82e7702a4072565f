package kernel_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/internal/store"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// heldCommit is the real etcd store whose next Commit, once held, waits for
// release: the loop is then stuck in the store, holding its table.
type heldCommit struct {
	*store.Etcd
	hold    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *heldCommit) Commit(ctx context.Context, c *kernel.Changes) (int64, error) {
	if g.hold.CompareAndSwap(true, false) {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Etcd.Commit(ctx, c)
}

// blocker is first-fit that, once armed, waits for release in its next
// cycle with requests: the loop is then stuck in the policy.
type blocker struct {
	kernel.FirstFit
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (b *blocker) Place(s *kernel.Snapshot) (*kernel.Decision, error) {
	if len(s.Requests) > 0 && b.armed.CompareAndSwap(true, false) {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.FirstFit.Place(s)
}

func (b *blocker) Load(context.Context, string, []byte) (kernel.LoadedPolicy, error) { return b, nil }
func (b *blocker) Close(context.Context) error                                       { return nil }

// runKernel runs a kernel with cfg until the test ends.
func runKernel(t *testing.T, cfg kernel.Config) *kernel.Kernel {
	t.Helper()
	cfg.HeartbeatTimeout = time.Hour
	k, err := kernel.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return k
}

// readsAnswer runs every read call while the loop is stuck (in the store
// or the policy) and fails t if they do not all answer; it checks they
// show the committed state of revision rev, without the allocation being
// committed.
func readsAnswer(t *testing.T, k *kernel.Kernel, agent string, rev int64) {
	t.Helper()
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if got := k.Revision(); got != rev {
			t.Errorf("Revision = %d, want %d (the last commit)", got, rev)
		}
		if r := k.ListAgents(ctx, ops); len(r.GetAgents()) != 1 || r.GetRevision() != rev {
			t.Errorf("ListAgents = %d agents at %d", len(r.GetAgents()), r.GetRevision())
		}
		if r := k.ListAllocations(ctx, fwA, &pb.ListAllocationsRequest{}); len(r.GetAllocations()) != 0 || r.GetRevision() != rev {
			t.Errorf("ListAllocations = %v at %d; want none: the allocation is not committed yet", r.GetAllocations(), r.GetRevision())
		}
		k.ListTasks(ctx, fwA, &pb.ListTasksRequest{})
		k.ListVolumes(ctx, fwA, &pb.ListVolumesRequest{})
		if r := k.RoleList(ctx, ops); len(r.GetRoles()) != 0 {
			t.Errorf("RoleList = %v; want none: the allocation is not committed yet", r.GetRoles())
		}
		if len(k.PolicyList(ctx, ops).GetPolicies()) == 0 {
			t.Error("PolicyList: no policies")
		}
		if m := k.Metrics(); m.Revision != rev {
			t.Errorf("Metrics revision %d, want %d", m.Revision, rev)
		}
		if _, err := k.StateList(ctx, fwA, &pb.StateListRequest{}); err != nil {
			t.Error(err)
		}
		if _, err := k.Leader(ctx, fwA, &pb.LeaderRequest{Election: "e"}); err != nil {
			t.Error(err)
		}
		if _, err := k.Heartbeat(ctx, ops, &pb.HeartbeatRequest{AgentId: agent}); err != nil {
			t.Errorf("Heartbeat: %v", err)
		}
		err := k.Watch(ctx, ops, &pb.WatchRequest{AfterRevision: rev + 1}, func(*pb.Event) error { return nil })
		if kernel.CodeOf(err) != kernel.InvalidArgument {
			t.Errorf("Watch after the next revision: %v, want InvalidArgument (it is not committed)", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute): // a bound on a hang, not a timing assertion
		t.Fatal("reads waited for the loop")
	}
}

func TestKernel_ReadsDoNotWaitForTheCommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	g := &heldCommit{Etcd: e.store.Etcd, entered: make(chan struct{}, 1), release: make(chan struct{})}
	k := runKernel(t, kernel.Config{Store: g})
	agent := register(t, k, 4, 1<<30)
	rev := k.Revision()
	g.hold.Store(true)
	res := make(chan *pb.AllocateResponse, 1)
	go func() {
		r, err := k.Allocate(context.Background(), fwA, alloc(1, 1<<20))
		if err != nil {
			t.Error(err)
		}
		res <- r
	}()
	<-g.entered
	readsAnswer(t, k, agent, rev)
	close(g.release)
	r := <-res
	l := k.ListAllocations(context.Background(), fwA, &pb.ListAllocationsRequest{})
	if len(l.GetAllocations()) != 1 || l.GetRevision() != r.GetRevision() || l.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("after the commit: ListAllocations = %v at %d, want the granted allocation at %d", l.GetAllocations(), l.GetRevision(), r.GetRevision())
	}
}

func TestKernel_ReadsDoNotWaitForThePolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := &blocker{entered: make(chan struct{}, 1), release: make(chan struct{})}
	k := runKernel(t, kernel.Config{Store: e.store, Loader: b, Builtins: map[string][]byte{"blocker": []byte("-")}, DefaultPolicy: "blocker"})
	agent := register(t, k, 4, 1<<30)
	rev := k.Revision()
	b.armed.Store(true)
	res := make(chan error, 1)
	go func() {
		_, err := k.Allocate(context.Background(), fwA, alloc(1, 1<<20))
		res <- err
	}()
	<-b.entered
	readsAnswer(t, k, agent, rev)
	close(b.release)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if n := len(k.ListAllocations(context.Background(), fwA, &pb.ListAllocationsRequest{}).GetAllocations()); n != 1 {
		t.Fatalf("after the cycle: %d allocations listed, want 1", n)
	}
}

func TestKernel_FailedCommitLeavesTheViewAlone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	register(t, k, 4, 1<<30)
	before := k.ListAgents(context.Background(), ops)
	e.store.fail.Store(true)
	if _, err := k.Allocate(context.Background(), fwA, alloc(1, 1<<20)); kernel.CodeOf(err) != kernel.Unavailable {
		t.Fatalf("Allocate with a failing commit: %v, want Unavailable", err)
	}
	if l := k.ListAllocations(context.Background(), fwA, &pb.ListAllocationsRequest{}); len(l.GetAllocations()) != 0 || l.GetRevision() != before.GetRevision() {
		t.Fatalf("after a failed commit: ListAllocations = %v at %d, want none at %d", l.GetAllocations(), l.GetRevision(), before.GetRevision())
	}
	if a := k.ListAgents(context.Background(), ops).GetAgents(); len(a) != 1 || a[0].GetAllocated().GetCpus() != 0 {
		t.Fatalf("after a failed commit: agents %v, want one with nothing allocated", a)
	}
}

// TestKernel_ReadsWithWrites runs reads, heartbeats (with plugins, images
// and usage) and the whole allocation lifecycle at once, for the race
// detector, and checks that what was read last is what was committed.
func TestKernel_ReadsWithWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	ctx := context.Background()
	agent := register(t, k, 64, 64<<30)
	const rounds = 40
	var tasks atomic.Value // []string: the live tasks, for the heartbeats' usage
	tasks.Store([]string(nil))
	done := make(chan struct{})
	var readers, writers sync.WaitGroup
	readers.Go(func() { // heartbeats
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			hb := &pb.HeartbeatRequest{AgentId: agent, Plugins: []*pb.PluginInfo{{Name: "p"}},
				Images: &pb.ImageList{Images: []*pb.ImageInfo{{Ref: fmt.Sprintf("img:%d", i%3)}}}}
			for _, id := range tasks.Load().([]string) {
				hb.Usage = append(hb.Usage, &pb.TaskUsage{TaskId: id, CpuNs: uint64(i), MemBytes: 1})
			}
			if _, err := k.Heartbeat(ctx, ops, hb); err != nil {
				t.Error(err)
				return
			}
		}
	})
	readers.Go(func() { // reads
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, g := range k.ListAgents(ctx, ops).GetAgents() {
				proto.Marshal(g)
			}
			k.ListAllocations(ctx, fwA, &pb.ListAllocationsRequest{})
			k.ListTasks(ctx, fwA, &pb.ListTasksRequest{})
			k.RoleList(ctx, ops)
			k.PolicyList(ctx, ops)
			k.Metrics()
		}
	})
	writers.Go(func() { // the lifecycle
		for range rounds {
			r, err := k.Allocate(ctx, fwA, alloc(1, 1<<20))
			if err != nil {
				t.Error(err)
				return
			}
			id := r.GetAllocations()[0].GetId()
			l, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: id, Command: "x"})
			if err != nil {
				t.Error(err)
				return
			}
			tasks.Store([]string{l.GetTask().GetId()})
			if _, err := k.ReportTaskStatus(ctx, ops, &pb.ReportTaskStatusRequest{TaskId: l.GetTask().GetId(), AgentId: agent,
				State: pb.TaskState_TASK_STATE_RUNNING, Pid: 1}); err != nil {
				t.Error(err)
				return
			}
			if _, err := k.Revoke(ctx, fwA, &pb.RevokeRequest{Id: id}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	writers.Wait()
	close(done)
	readers.Wait()
	if n := len(k.ListAllocations(ctx, fwA, &pb.ListAllocationsRequest{}).GetAllocations()); n != 0 {
		t.Errorf("%d allocations listed after every one was revoked", n)
	}
	ts := k.ListTasks(ctx, fwA, &pb.ListTasksRequest{}).GetTasks()
	if len(ts) != rounds {
		t.Fatalf("%d tasks listed, want the %d completed", len(ts), rounds)
	}
	for _, tk := range ts {
		if tk.GetState() != pb.TaskState_TASK_STATE_KILLED {
			t.Errorf("task %s: %v, want KILLED", tk.GetId(), tk.GetState())
		}
	}
	if g := k.ListAgents(ctx, ops).GetAgents(); len(g) != 1 || len(g[0].GetPlugins()) != 1 || len(g[0].GetImages()) != 1 {
		t.Errorf("agents %v, want one with its plugin and image", g)
	}
}
