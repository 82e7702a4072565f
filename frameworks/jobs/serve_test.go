package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/framework"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

const (
	jobsToken = "jobs-token-0123456789abcdef"
	opToken   = "operator-token-0123456789ab"
)

func agentToken(i int) string { return fmt.Sprintf("agent-token-%d-0123456789abcd", i) }

// cluster is a real kernel on an embedded etcd behind the API door, with
// agents faked through the agent syscalls (the real agent needs root;
// e2e/jobs_test.go runs real ones).
type cluster struct {
	t   testing.TB
	url string
	op  *framework.Client
	// srv is the kernel, its store and etcd's directory.
	srv *kerneltest.Server
	// released ends the fake agents' "hold" tasks.
	released atomic.Bool
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	entries := []api.TokenEntry{
		{Token: jobsToken, Name: "jobs", Role: "framework"},
		{Token: opToken, Name: "ops", Role: "operator"},
	}
	for i := range 4 {
		entries = append(entries, api.TokenEntry{Token: agentToken(i), Name: fmt.Sprintf("agent-%d", i), Role: "agent"})
	}
	srv := kerneltest.Start(t, kerneltest.Options{
		Tokens: entries,
		Kernel: func(c *kernel.Config) {
			c.Tick = 20 * time.Millisecond
			c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		},
		API: func(c *api.Config) {
			c.PrincipalRateLimits = map[kernel.Principal]api.RateLimit{{Name: "jobs", Role: kernel.RoleFramework}: {}}
		},
	})
	c := &cluster{t: t, url: srv.URL, srv: srv}
	c.op = c.client(opToken)
	return c
}

func (c *cluster) client(token string) *framework.Client {
	c.t.Helper()
	cl, err := framework.New(framework.Config{Endpoints: []string{c.url}, Token: token, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// addAgent registers an agent of 8 cpus that runs the tasks launched on
// it as their first argument says: "ok" exits 0, "fail" exits 3, "hold"
// runs until c.released, then exits 0; anything else ("sleep") runs
// until killed. It stops with ctx.
func (c *cluster) addAgent(ctx context.Context, i int) {
	c.t.Helper()
	cl := c.client(agentToken(i))
	r, err := cl.RegisterAgent(ctx, &pb.RegisterAgentRequest{Hostname: fmt.Sprintf("node-%d", i),
		Resources: &pb.Resources{Cpus: 8, MemBytes: 8 << 30, DiskBytes: 1 << 40}})
	if err != nil {
		c.t.Fatal(err)
	}
	id := r.GetAgentId()
	var wg sync.WaitGroup
	wg.Add(1)
	c.t.Cleanup(wg.Wait)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			cl.Heartbeat(ctx, &pb.HeartbeatRequest{AgentId: id})
			l, err := cl.ListTasks(ctx, &pb.ListTasksRequest{AgentId: id})
			if err == nil {
				for _, tk := range l.GetTasks() {
					hold := tk.GetArgs()[0] == "hold"
					if tk.GetState() > pb.TaskState_TASK_STATE_RUNNING || tk.GetState() == pb.TaskState_TASK_STATE_RUNNING && !(hold && c.released.Load()) {
						continue
					}
					rep := &pb.ReportTaskStatusRequest{TaskId: tk.GetId(), AgentId: id, State: pb.TaskState_TASK_STATE_RUNNING, Pid: 100}
					switch tk.GetArgs()[0] {
					case "hold":
						if c.released.Load() {
							rep.State, rep.Reason = pb.TaskState_TASK_STATE_FINISHED, "exit code 0"
						}
					case "ok":
						rep.State, rep.Reason = pb.TaskState_TASK_STATE_FINISHED, "exit code 0"
					case "fail":
						rep.State, rep.ExitCode, rep.Reason = pb.TaskState_TASK_STATE_FAILED, 3, "exit code 3"
					}
					cl.ReportTaskStatus(ctx, rep)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
}

// clock is a settable clock for the replicas.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// serve starts a replica; the returned func stops it and waits.
func (c *cluster) serve(ctx context.Context, now func() time.Time) (stop func()) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, Config{Client: c.client(jobsToken), Candidate: "test", TTL: 2 * time.Second, Now: now,
			Resync: 50 * time.Millisecond, Logger: testLogger(), KernelURL: c.url, Token: jobsToken})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				c.t.Errorf("Serve: %v", err)
			}
		})
	}
	c.t.Cleanup(stop)
	return stop
}

func (c *cluster) operator() Operator { return Operator{Store: c.op, Owner: "jobs"} }

func (c *cluster) apply(ctx context.Context, yaml string, now time.Time) *Job {
	c.t.Helper()
	j, err := ParseSpec([]byte(yaml))
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.operator().Apply(ctx, j, now); err != nil {
		c.t.Fatal(err)
	}
	return j
}

// waitRun waits until run id satisfies ok and returns it.
func (c *cluster) waitRun(ctx context.Context, job, id string, ok func(*Run) bool) *Run {
	c.t.Helper()
	var last *Run
	for ctx.Err() == nil {
		r, err := c.operator().Run(ctx, job, id)
		if err == nil && ok(r) {
			return r
		}
		last = r
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("run %s: never reached the state wanted; last %+v", id, last)
	return nil
}

func ended(r *Run) bool { return r.Ended() }

// TestServe_GangRun: a 20-task gang run recorded while no replica runs is
// allocated once one starts, granted in one revision, and completes.
func TestServe_GangRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startCluster(t)
	for i := range 3 {
		c.addAgent(ctx, i)
	}
	c.apply(ctx, "name: gang\ncommand: fake\nargs: [ok]\nresources: {cpus: 1}\nparallelism: 20\ngang: true\n", time.Now())
	run, err := c.operator().StartRun(ctx, "gang", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	granted, launched := map[int64]int{}, map[int64]int{}
	var mu sync.Mutex
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		c.op.Watch(wctx, &pb.WatchRequest{Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED, pb.EventKind_EVENT_KIND_TASK_STATE}}, func(ev *pb.Event) error {
			mu.Lock()
			defer mu.Unlock()
			if ev.GetAllocation().GetLabels()[LabelRun] == run.ID {
				granted[ev.GetRevision()]++
			}
			if k := ev.GetTask(); k.GetLabels()[LabelRun] == run.ID && k.GetState() == pb.TaskState_TASK_STATE_PENDING {
				launched[ev.GetRevision()]++
			}
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond) // the watch is pinned
	c.serve(ctx, nil)
	r := c.waitRun(ctx, "gang", run.ID, ended)
	wcancel()
	<-wdone
	if r.State != RunSucceeded || r.Succeeded != 20 {
		t.Fatalf("run %s: %s (%s), %d succeeded", r.ID, r.State, r.Reason, r.Succeeded)
	}
	if len(granted) != 1 {
		t.Fatalf("gang granted at revisions %v, want one", granted)
	}
	for rev, n := range granted {
		if n != 20 {
			t.Fatalf("%d granted at revision %d, want 20", n, rev)
		}
	}
	// The gang's tasks go out in one LaunchBatch: one commit.
	if len(launched) != 1 {
		t.Fatalf("gang launched at revisions %v, want one", launched)
	}
	runs, _ := c.operator().Runs(ctx, "gang")
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
}

// TestServe_RetryThenFail: a task that exits 3 is retried backoffLimit
// times, across a restart of the replica, then the run fails naming the
// last exit.
func TestServe_RetryThenFail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startCluster(t)
	c.addAgent(ctx, 0)
	c.apply(ctx, "name: bad\ncommand: fake\nargs: [fail]\nresources: {cpus: 1}\nbackoffLimit: 4\nbackoff: {initial: 50ms, max: 200ms}\n", time.Now())
	stop := c.serve(ctx, nil)
	run, err := c.operator().StartRun(ctx, "bad", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.waitRun(ctx, "bad", run.ID, func(r *Run) bool { return len(r.Tasks) > 0 && r.Tasks[0].Failures >= 2 })
	stop()
	c.serve(ctx, nil)
	r := c.waitRun(ctx, "bad", run.ID, ended)
	if r.State != RunFailed || r.Reason != "task 0 exited 3 after 5 attempts" {
		t.Fatalf("run: %s %q, want failed after 5 attempts", r.State, r.Reason)
	}
	if r.Tasks[0].LastExit != 3 {
		t.Fatalf("last exit %d, want 3", r.Tasks[0].LastExit)
	}
}

// TestServe_Cron: scheduled fires on an injected clock (Config.Now), with
// Forbid and Replace.
func TestServe_Cron(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := startCluster(t)
	c.addAgent(ctx, 0)
	clk := &clock{t: time.Date(2026, 3, 8, 6, 30, 30, 0, time.UTC)} // New York: 01:30 EST, DST starts at 07:00Z
	// 02:30 New York does not exist on 2026-03-08: the fire is at 03:00 EDT.
	c.apply(ctx, "name: forbid\ncommand: fake\nargs: [sleep]\nresources: {cpus: 1}\nschedule: '30 2 * * *'\ntimeZone: America/New_York\nconcurrencyPolicy: Forbid\n", clk.Now())
	c.apply(ctx, "name: replace\ncommand: fake\nargs: [sleep]\nresources: {cpus: 1}\nschedule: '*/10 * * * *'\nconcurrencyPolicy: Replace\n", clk.Now())
	c.serve(ctx, clk.Now)
	time.Sleep(300 * time.Millisecond)
	if runs, _ := c.operator().Runs(ctx, "forbid"); len(runs) != 0 {
		t.Fatalf("forbid fired early: %+v", runs[0])
	}
	clk.Set(time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC))
	r1 := c.waitRun(ctx, "forbid", RunID("forbid", 1), func(r *Run) bool { return r.State == RunRunning && r.Tasks[0].Task != "" })
	if want := time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC); !r1.Scheduled.Equal(want) || r1.Cause != CauseSchedule {
		t.Fatalf("run 1 scheduled %s (%s), want %s", r1.Scheduled, r1.Cause, want)
	}
	// replace fired at 07:00 too.
	c.waitRun(ctx, "replace", RunID("replace", 1), func(r *Run) bool { return r.State == RunRunning && r.Tasks[0].Task != "" })
	// A day later: forbid's run still runs, so the fire is skipped;
	// replace's next fire stops its old run.
	clk.Set(time.Date(2026, 3, 9, 6, 30, 0, 0, time.UTC))
	c.waitRun(ctx, "replace", RunID("replace", 1), func(r *Run) bool {
		return r.State == RunFailed && strings.Contains(r.Reason, "replaced by replace-2")
	})
	c.waitRun(ctx, "replace", RunID("replace", 2), func(r *Run) bool { return r.State == RunRunning })
	var meta Meta
	for ctx.Err() == nil {
		if _, err := c.operator().get(ctx, MetaKey("forbid"), &meta); err == nil && meta.LastFire.Equal(time.Date(2026, 3, 9, 6, 30, 0, 0, time.UTC)) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if meta.Missed != 1 {
		t.Fatalf("forbid meta %+v, want one missed fire", meta)
	}
	if runs, _ := c.operator().Runs(ctx, "forbid"); len(runs) != 1 {
		t.Fatalf("forbid has %d runs, want 1 (Forbid)", len(runs))
	}
	// rm stops the run and removes the job's records.
	if err := c.operator().Remove(ctx, "forbid"); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		runs, _ := c.operator().Runs(ctx, "forbid")
		al, _ := c.op.ListAllocations(ctx, &pb.ListAllocationsRequest{})
		live := 0
		for _, a := range al.GetAllocations() {
			if a.GetLabels()[LabelJob] == "forbid" && a.GetState() != pb.AllocationState_ALLOCATION_STATE_REVOKED {
				live++
			}
		}
		if len(runs) == 0 && live == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("rm: runs or allocations left")
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
