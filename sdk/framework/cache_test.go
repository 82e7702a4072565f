package framework

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// kernelView is what List* shows c, as the cache keeps it: live
// allocations and the tasks of those, without usage.
func kernelView(ctx context.Context, t *testing.T, c *Client) ([]*pb.Allocation, []*pb.Task) {
	t.Helper()
	ar, err := c.ListAllocations(ctx, &pb.ListAllocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.ListTasks(ctx, &pb.ListTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for _, a := range ar.GetAllocations() {
		a.Usage = nil
		live[a.GetId()] = true
	}
	var tasks []*pb.Task
	for _, tk := range tr.GetTasks() {
		if live[tk.GetAllocationId()] {
			tk.Usage = nil
			tasks = append(tasks, tk)
		}
	}
	return ar.GetAllocations(), tasks
}

func sameMessages[M proto.Message](got []M, want map[string]M, id func(M) string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, g := range got {
		if w, ok := want[id(g)]; !ok || !proto.Equal(g, w) {
			return false
		}
	}
	return true
}

// checkCache waits until the cache's view equals the kernel's.
func checkCache(ctx context.Context, t *testing.T, step string, cache *Cache, c *Client) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		allocs, tasks := kernelView(ctx, t, c)
		wa, wt := map[string]*pb.Allocation{}, map[string]*pb.Task{}
		for _, a := range allocs {
			wa[a.GetId()] = a
		}
		for _, tk := range tasks {
			wt[tk.GetId()] = tk
		}
		ga, gt := cache.Allocations(), cache.Tasks()
		if sameMessages(ga, wa, (*pb.Allocation).GetId) && sameMessages(gt, wt, (*pb.Task).GetId) {
			for _, a := range allocs {
				if got, ok := cache.Allocation(a.GetId()); !ok || !proto.Equal(got, a) {
					t.Fatalf("%s: Allocation(%s) = %v, %v", step, a.GetId(), got, ok)
				}
			}
			for _, tk := range tasks {
				if got, ok := cache.Task(tk.GetId()); !ok || !proto.Equal(got, tk) {
					t.Fatalf("%s: Task(%s) = %v, %v", step, tk.GetId(), got, ok)
				}
			}
			// The labeled reads are the same view, filtered.
			la, lt := map[string]*pb.Allocation{}, map[string]*pb.Task{}
			for id, a := range wa {
				if a.GetLabels()["app"] == "web" {
					la[id] = a
				}
			}
			for id, tk := range wt {
				if tk.GetLabels()["app"] == "web" {
					lt[id] = tk
				}
			}
			if ga, gt := cache.AllocationsLabeled("app", "web"), cache.TasksLabeled("app", "web"); !sameMessages(ga, la, (*pb.Allocation).GetId) || !sameMessages(gt, lt, (*pb.Task).GetId) {
				t.Fatalf("%s: labeled app=web: allocations %v tasks %v, want %v and %v", step, ga, gt, la, lt)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: cache\n allocations %v\n tasks %v\nkernel\n allocations %v\n tasks %v", step, ga, gt, allocs, tasks)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCache_MatchesKernel(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	agent, agentID := k.registerAgent(t)
	fw := k.client(t, fwToken) // the framework's other client, which acts

	// Something exists before the cache lists.
	pre, err := fw.Allocate(ctx, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	wc := newWatchControl()
	cc, err := New(Config{Endpoints: []string{k.URL}, Token: fwToken, HTTPClient: wc.client(),
		Retry: Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	cache := NewCache(cc)
	var mu sync.Mutex
	var seen []*pb.Event
	cancelSub := cache.Subscribe(func(ev *pb.Event) { mu.Lock(); seen = append(seen, ev); mu.Unlock() })
	defer cancelSub()
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cache.Run(cctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Cache.Run: %v", err)
		}
	}()
	if err := cache.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	checkCache(ctx, t, "listed", cache, fw)
	if _, ok := cache.Allocation(pre.GetAllocations()[0].GetId()); !ok {
		t.Fatal("the allocation made before the cache started is missing")
	}

	web := map[string]string{"app": "web"}
	r, err := fw.Allocate(ctx, &pb.AllocateRequest{Count: 3, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}, Labels: web})
	if err != nil {
		t.Fatal(err)
	}
	checkCache(ctx, t, "allocated", cache, fw)
	if n := len(cache.AllocationsLabeled("app", "web")); n != 3 {
		t.Fatalf("AllocationsLabeled(app, web) has %d, want the 3 labeled ones", n)
	}
	var taskIDs []string
	for i, a := range r.GetAllocations() {
		req := &pb.LaunchRequest{AllocationId: a.GetId(), Command: "sleep", Args: []string{"1000"}}
		if i > 0 {
			req.Labels = web // the first task is unlabeled: not in TasksLabeled
		}
		l, err := fw.Launch(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		taskIDs = append(taskIDs, l.GetTask().GetId())
	}
	checkCache(ctx, t, "launched", cache, fw)
	for _, id := range taskIDs {
		if _, err := agent.ReportTaskStatus(ctx, &pb.ReportTaskStatusRequest{TaskId: id, AgentId: agentID, State: pb.TaskState_TASK_STATE_RUNNING, Pid: 42}); err != nil {
			t.Fatal(err)
		}
	}
	checkCache(ctx, t, "running", cache, fw)
	if _, err := agent.ReportTaskStatus(ctx, &pb.ReportTaskStatusRequest{TaskId: taskIDs[0], AgentId: agentID, State: pb.TaskState_TASK_STATE_FAILED, ExitCode: 1, Reason: "exit code 1"}); err != nil {
		t.Fatal(err)
	}
	checkCache(ctx, t, "a task failed", cache, fw)
	if _, err := fw.Revoke(ctx, &pb.RevokeRequest{Id: r.GetAllocations()[1].GetId()}); err != nil {
		t.Fatal(err)
	}
	checkCache(ctx, t, "allocation revoked", cache, fw)
	// Another framework's work is not in the cache.
	other := k.client(t, fwBToken)
	if _, err := other.Allocate(ctx, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}}); err != nil {
		t.Fatal(err)
	}
	checkCache(ctx, t, "another framework allocated", cache, fw)

	// Resync: the cache's watch is cut and kept away while its history is
	// compacted; on its return it must re-list and say so.
	wc.blocked.Store(true)
	wc.cutAll()
	if _, err := fw.Revoke(ctx, &pb.RevokeRequest{Id: r.GetAllocations()[2].GetId()}); err != nil {
		t.Fatal(err)
	}
	n, err := fw.Allocate(ctx, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Store.Compact(ctx, n.GetRevision()); err != nil {
		t.Fatal(err)
	}
	wc.blocked.Store(false)
	checkCache(ctx, t, "after resync", cache, fw)
	eventually(t, "a resync notice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range seen {
			if ev.GetKind() == pb.EventKind_EVENT_KIND_UNSPECIFIED && ev.GetReason() == "resync" {
				return true
			}
		}
		return false
	})
	mu.Lock()
	if len(seen) < 5 {
		t.Errorf("subscriber saw %d events", len(seen))
	}
	mu.Unlock()
	if cache.Revision() < n.GetRevision() {
		t.Fatalf("cache revision %d < %d", cache.Revision(), n.GetRevision())
	}
}

// BenchmarkCache_BytesPerTask measures the heap the cache holds per owned
// task (with its allocation), filled from a kernel with N tasks.
func BenchmarkCache_BytesPerTask(b *testing.B) {
	const n = 1000
	k := startKernel(b, map[kernel.Role]api.RateLimit{kernel.RoleFramework: {}})
	ctx := testCtx(b)
	k.registerAgent(b)
	fw := k.client(b, fwToken)
	r, err := fw.Allocate(ctx, &pb.AllocateRequest{Count: n, Resources: &pb.Resources{Cpus: 0.1, MemBytes: 1 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range r.GetAllocations() {
		if _, err := fw.Launch(ctx, &pb.LaunchRequest{AllocationId: a.GetId(), Command: "/usr/bin/sleep", Args: []string{"1000"},
			Env: map[string]string{"APP": "bench"}}); err != nil {
			b.Fatal(err)
		}
	}
	var total float64
	b.ResetTimer()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		cache := NewCache(fw)
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- cache.Run(cctx) }()
		if err := cache.WaitSynced(ctx); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if got := len(cache.Tasks()); got != n {
			b.Fatalf("cache holds %d tasks, want %d", got, n)
		}
		total += float64(after.HeapAlloc) - float64(before.HeapAlloc)
		cancel()
		<-done
		runtime.KeepAlive(cache)
	}
	b.ReportMetric(total/float64(b.N)/n, "bytes/task")
}
