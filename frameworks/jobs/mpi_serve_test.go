package jobs

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// grants watches the ALLOCATION_GRANTED events of a run; the returned
// func stops the watch and returns the ids granted, in order.
func (c *cluster) grants(ctx context.Context, run string) func() []string {
	c.t.Helper()
	var (
		mu  sync.Mutex
		ids []string
	)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.op.Watch(wctx, &pb.WatchRequest{Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED}}, func(ev *pb.Event) error {
			if ev.GetAllocation().GetLabels()[LabelRun] == run {
				mu.Lock()
				ids = append(ids, ev.GetAllocation().GetId())
				mu.Unlock()
			}
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond) // the watch is pinned
	return func() []string {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ids)
	}
}

// liveAllocs counts the job's allocations not revoked.
func (c *cluster) liveAllocs(ctx context.Context, job string) int {
	al, _ := c.op.ListAllocations(ctx, &pb.ListAllocationsRequest{})
	n := 0
	for _, a := range al.GetAllocations() {
		if a.GetLabels()[LabelJob] == job && a.GetState() != pb.AllocationState_ALLOCATION_STATE_REVOKED {
			n++
		}
	}
	return n
}

// TestServe_MPIRun: an MPI run of 8 ranks, 2 per rank host, across a
// restart of the replica while its launcher runs: the 4 rank hosts are
// one gang, the launcher gets them (Open MPI's --host syntax), the
// kernel's URL and the jobs principal's token, the run succeeds when the
// launcher exits 0, nothing was allocated or launched twice, and no
// allocation of the job remains.
func TestServe_MPIRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startCluster(t)
	for i := range 3 {
		c.addAgent(ctx, i)
	}
	c.apply(ctx, "name: mpi\nresources: {cpus: 3}\nmpi: {ranks: 8, slotsPerTask: 2, command: fake, args: [hold], resources: {cpus: 0.5}}\n", time.Now())
	stop := c.serve(ctx, nil)
	granted := c.grants(ctx, RunID("mpi", 1))
	run, err := c.operator().StartRun(ctx, "mpi", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := c.waitRun(ctx, "mpi", run.ID, func(r *Run) bool { return r.MPI != nil && r.MPI.Launcher.Task != "" })
	stop()

	var hosts []string
	for _, s := range r.Tasks {
		hosts = append(hosts, s.Task+":2")
	}
	tl, err := c.op.ListTasks(ctx, &pb.ListTasksRequest{AllocationId: r.MPI.Launcher.Allocation})
	if err != nil || len(tl.GetTasks()) != 1 {
		t.Fatalf("launcher task: %v %v", tl, err)
	}
	env := tl.GetTasks()[0].GetEnv()
	if env[EnvHosts] != strings.Join(hosts, ",") || env[EnvKernel] != c.url || env[EnvToken] != jobsToken || env[EnvRanks] != "8" {
		t.Fatalf("launcher env %v, want hosts %v, the kernel and the jobs token", env, hosts)
	}

	c.serve(ctx, nil)
	time.Sleep(300 * time.Millisecond) // the new replica has looked at the run
	c.released.Store(true)
	r = c.waitRun(ctx, "mpi", run.ID, ended)
	if r.State != RunSucceeded || r.MPI.Attempt != 1 || r.Succeeded != 1 {
		t.Fatalf("run %s: %s (%s), attempt %d", r.ID, r.State, r.Reason, r.MPI.Attempt)
	}
	for ctx.Err() == nil && c.liveAllocs(ctx, "mpi") > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	ids := granted()
	if len(ids) != 5 {
		t.Fatalf("granted %v, want the 4 rank hosts and the launcher once each", ids)
	}
	all, err := c.op.ListTasks(ctx, &pb.ListTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	launched := 0
	for _, tk := range all.GetTasks() {
		if tk.GetLabels()[LabelRun] == run.ID {
			launched++
		}
	}
	if launched != 5 {
		t.Fatalf("%d tasks launched for the run, want 5", launched)
	}
}

// TestServe_MPIRetry: a launcher that exits 3 fails its attempt; the
// whole run is retried on a new gang, and after backoffLimit retries the
// run fails naming the launcher's exit.
func TestServe_MPIRetry(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startCluster(t)
	for i := range 2 {
		c.addAgent(ctx, i)
	}
	c.apply(ctx, "name: mpi\nresources: {cpus: 3}\nbackoffLimit: 1\nbackoff: {initial: 50ms}\nmpi: {ranks: 4, command: fake, args: [fail]}\n", time.Now())
	c.serve(ctx, nil)
	granted := c.grants(ctx, RunID("mpi", 1))
	run, err := c.operator().StartRun(ctx, "mpi", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := c.waitRun(ctx, "mpi", run.ID, ended)
	if r.State != RunFailed || r.Reason != "launcher exited 3 after 2 attempts" || r.MPI.LastExit != 3 {
		t.Fatalf("run %s: %s %q", r.ID, r.State, r.Reason)
	}
	for ctx.Err() == nil && c.liveAllocs(ctx, "mpi") > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if ids := granted(); len(ids) != 2*(4+1) {
		t.Fatalf("granted %d allocations, want two attempts of 4 rank hosts and a launcher", len(ids))
	}
}
