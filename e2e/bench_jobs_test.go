package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	procfs "github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/internal/simagent"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// Issue 18's performance goals: a 1,000-task gang on 100 agents placed
// and RUNNING (p50 ≤ 1 s), and short tasks sustained through the kernel
// and its agents (≥ 2,000/s with simulated agents). docs/benchmarks.md,
// "Jobs and gangs (issue 18)", has the figures.

// launchParallelism is how many Launch calls a framework has in flight,
// as frameworks/jobs (32).
const launchParallelism = 32

// simBench is a `dcosd kernel` (embedded etcd) with simulated agents
// (internal/simagent) and a framework client "bench" that the kernel does
// not rate-limit (as dcosd dev exempts its init and jobs frameworks).
type simBench struct {
	e   *env
	k   *proc
	fw  syscallsv1connect.KernelClient
	sim *simagent.Cluster
	f   *taskFollower
}

// startSimBench starts the kernel with extra flags, n simulated agents of
// cpus=16, mem=64Gi joined with an agent-join token, and a follower of
// the framework's task events.
func startSimBench(t testing.TB, n int, extra ...string) *simBench {
	t.Helper()
	return startSimBenchWith(t, n, false, extra...)
}

// startSimBenchWith is startSimBench; singleReports makes the agents send
// one ReportTaskStatus call per report (simagent.Config.SingleReports),
// the path before ReportTaskStatusBatch.
func startSimBenchWith(t testing.TB, n int, singleReports bool, extra ...string) *simBench {
	t.Helper()
	e := newEnv(t)
	opTok, fwTok, joinTok := newToken(), newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: fwTok, Name: "bench", Role: "framework"},
		tokenEntry{Token: joinTok, Name: "join", Role: "agent-join"},
	)
	k := e.startKernel(tokens, opTok, append([]string{"--rate-limit", "framework:bench=unlimited"}, extra...)...)
	c, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ca, err := os.ReadFile(e.caFile)
	if err != nil {
		t.Fatalf("the kernel's CA: %v", err)
	}
	sim, err := simagent.Start(c, simagent.Config{KernelURL: e.url, Agents: n, JoinToken: joinTok, CACert: ca,
		Resources: &pb.Resources{Cpus: 16, MemBytes: 64 << 30, DiskBytes: 100 << 30}, SingleReports: singleReports})
	if err != nil {
		t.Fatalf("simulated agents: %v; kernel stderr:\n%s", err, tail(k.stderr.String(), 50))
	}
	t.Cleanup(sim.Close) // before the env's cleanup stops the kernel
	fw := e.client(fwTok)
	up := 0
	for _, a := range listAgents(t, e.op()).GetAgents() {
		if a.GetState() == pb.AgentState_AGENT_STATE_UP {
			up++
		}
	}
	if up != n {
		t.Fatalf("%d agents UP, want %d", up, n)
	}
	return &simBench{e: e, k: k, fw: fw, sim: sim, f: followTasks(t, fw, listAgents(t, e.op()).GetRevision())}
}

// taskFollower follows one principal's task events on a Watch and lets
// callers wait for a task to reach a state.
type taskFollower struct {
	mu     sync.Mutex
	states map[string][]pb.TaskState // each task's states, in event order
	waits  map[string][]followWait
	err    error
}

type followWait struct {
	s  pb.TaskState
	ch chan struct{}
}

// followTasks watches c's task events after rev until cleanup.
func followTasks(t testing.TB, c syscallsv1connect.KernelClient, rev int64) *taskFollower {
	f := &taskFollower{states: map[string][]pb.TaskState{}, waits: map[string][]followWait{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := resumingWatch(ctx, c, rev, func(e *pb.Event) { f.add(e.GetTask()) })
		f.mu.Lock()
		f.err = fmt.Errorf("watch ended: %v", err)
		for _, ws := range f.waits {
			for _, w := range ws {
				close(w.ch)
			}
		}
		f.waits = nil
		f.mu.Unlock()
	}()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

// resumingWatch follows c's task events after rev until ctx ends or the
// watch fails, calling fn for each. A stream the kernel ended because
// the watcher fell behind (a revision of a 1,000-task LaunchBatch is
// 1,000 events at once, near the kernel's --watch-buffer) is resumed
// after the revision before the one being received, skipping that
// revision's events already seen (a revision's events come whole and in
// order), as the SDK's Watch resumes; the resumes are counted in
// watchResumes.
func resumingWatch(ctx context.Context, c syscallsv1connect.KernelClient, rev int64, fn func(*pb.Event)) error {
	cur, n := int64(0), 0 // the revision being received and its events so far
	after := rev
	for {
		st, err := c.Watch(ctx, connect.NewRequest(&pb.WatchRequest{AfterRevision: after,
			Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_TASK_STATE}}))
		if err != nil {
			return err
		}
		skipRev, skip := cur, n
		for st.Receive() {
			e := st.Msg()
			if e.GetRevision() == skipRev && skip > 0 {
				skip--
				continue
			}
			if e.GetRevision() != cur {
				cur, n = e.GetRevision(), 0
			}
			n++
			fn(e)
		}
		err = st.Err()
		st.Close()
		var ce *connect.Error
		if ctx.Err() != nil || !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition || !strings.Contains(ce.Message(), "fell behind") {
			return err
		}
		watchResumes.Add(1)
		after = max(rev, cur-1)
	}
}

// watchResumes counts the streams resumingWatch resumed.
var watchResumes atomic.Int64

func (f *taskFollower) add(k *pb.Task) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, s := k.GetId(), k.GetState()
	f.states[id] = append(f.states[id], s)
	ws := f.waits[id][:0]
	for _, w := range f.waits[id] {
		if w.s <= s {
			close(w.ch)
		} else {
			ws = append(ws, w)
		}
	}
	if len(ws) == 0 {
		delete(f.waits, id)
	} else {
		f.waits[id] = ws
	}
}

// until returns a channel closed once task id has reached state s or a
// later one (or the watch ended: see err).
func (f *taskFollower) until(id string, s pb.TaskState) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	if f.err != nil || slices.ContainsFunc(f.states[id], func(x pb.TaskState) bool { return x >= s }) {
		close(ch)
		return ch
	}
	f.waits[id] = append(f.waits[id], followWait{s: s, ch: ch})
	return ch
}

// wait waits until task id reached state s; it fails t when the watch
// ended or waitTimeout passed.
func (f *taskFollower) wait(t testing.TB, id string, s pb.TaskState) {
	select {
	case <-f.until(id, s):
	case <-time.After(waitTimeout):
		t.Errorf("task %s not %v within %v (states %v)", id, s, waitTimeout, f.statesOf(id))
		return
	}
	f.mu.Lock()
	err := f.err
	f.mu.Unlock()
	if err != nil {
		t.Errorf("task %s: %v", id, err)
	}
}

func (f *taskFollower) statesOf(id string) []pb.TaskState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.states[id])
}

// launchGang launches one task per allocation, launchParallelism at a
// time, and returns the task ids.
func launchGang(t testing.TB, c syscallsv1connect.KernelClient, allocs []*pb.Allocation, command string, args ...string) []string {
	ids := make([]string, len(allocs))
	sem := make(chan struct{}, launchParallelism)
	var wg sync.WaitGroup
	for i, a := range allocs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := c.Launch(context.Background(), connect.NewRequest(&pb.LaunchRequest{AllocationId: a.GetId(), Command: command, Args: args}))
			if err != nil {
				t.Errorf("Launch in %s: %v", a.GetId(), err)
				return
			}
			ids[i] = res.Msg.GetTask().GetId()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return ids
}

// launchBatch launches one task per allocation in LaunchBatch calls of
// at most 1,000 (as frameworks/jobs launches a gang) and returns the
// task ids.
func launchBatch(t testing.TB, c syscallsv1connect.KernelClient, allocs []*pb.Allocation, command string, args ...string) []string {
	var ids []string
	for chunk := range slices.Chunk(allocs, 1000) {
		req := &pb.LaunchBatchRequest{}
		for _, a := range chunk {
			req.Launches = append(req.Launches, &pb.LaunchRequest{AllocationId: a.GetId(), Command: command, Args: args})
		}
		res, err := c.LaunchBatch(context.Background(), connect.NewRequest(req))
		if err != nil {
			t.Fatalf("LaunchBatch of %d: %v", len(chunk), err)
		}
		for i, r := range res.Msg.GetResults() {
			if r.GetCode() != "ok" {
				t.Fatalf("LaunchBatch: launches[%d]: %s %s", i, r.GetCode(), r.GetMessage())
			}
			ids = append(ids, r.GetTask().GetId())
		}
	}
	return ids
}

// runGang allocates an n-instance gang (min n) and launches `sleep 600`
// in each instance (in LaunchBatch calls, or with perTask one Launch per
// task, launchParallelism in flight); it returns the allocations, the
// task ids, the time the Allocate call took and the time from before
// Allocate until every task was RUNNING.
func (s *simBench) runGang(t testing.TB, n int, perTask bool) (allocs []*pb.Allocation, tasks []string, alloc, all time.Duration) {
	t.Helper()
	start := time.Now()
	res, err := s.fw.Allocate(context.Background(), connect.NewRequest(&pb.AllocateRequest{
		Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}, Count: int32(n), Gang: &pb.Gang{MinCount: int32(n)}}))
	if err != nil {
		t.Fatalf("Allocate gang of %d: %v", n, err)
	}
	alloc = time.Since(start)
	allocs = res.Msg.GetAllocations()
	for _, a := range allocs {
		if a.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
			t.Fatalf("gang instance %s is %v (%s), want GRANTED", a.GetId(), a.GetState(), res.Msg.GetPendingReason())
		}
	}
	if perTask {
		tasks = launchGang(t, s.fw, allocs, "sleep", "600")
	} else {
		tasks = launchBatch(t, s.fw, allocs, "sleep", "600")
	}
	for _, id := range tasks {
		s.f.wait(t, id, pb.TaskState_TASK_STATE_RUNNING)
	}
	if t.Failed() {
		t.FailNow()
	}
	return allocs, tasks, alloc, time.Since(start)
}

// revokeAll revokes every allocation of the framework at once and waits
// for tasks to be KILLED and for the kernel to list no allocation.
func (s *simBench) revokeAll(t testing.TB, tasks []string) {
	t.Helper()
	if _, err := s.fw.Revoke(context.Background(), connect.NewRequest(&pb.RevokeRequest{All: true, Reason: "bench"})); err != nil {
		t.Fatalf("Revoke all: %v", err)
	}
	for _, id := range tasks {
		s.f.wait(t, id, pb.TaskState_TASK_STATE_KILLED)
	}
	eventually(t, "no allocation left", func() (bool, string) {
		a := listAllocations(t, s.fw).GetAllocations()
		return len(a) == 0, fmt.Sprintf("%d allocations", len(a))
	})
}

// BenchmarkGang1000 measures a 1,000-task gang on 100 simulated agents
// (internal/simagent: real clients of the kernel that speak the agent
// protocol, with tasks that go RUNNING at once): from before the
// Allocate of the gang (count 1,000, min 1,000, 0.1 cpu and 16Mi each)
// through one LaunchBatch of the 1,000 tasks (as frameworks/jobs) until
// the framework's Watch has seen every task RUNNING; the agents batch
// their reports (ReportTaskStatusBatch). Between iterations, outside the
// timing, the framework revokes everything and waits for the cluster to
// be empty. It reports the p50 and p99 of that time and of the Allocate
// call alone, in ms.
//
//	go test ./e2e -run '^$' -bench 'Gang1000$' -benchtime 20x
func BenchmarkGang1000(b *testing.B) { benchGang(b, false) }

// BenchmarkGang1000Unbatched is BenchmarkGang1000 on the path before
// the batched syscalls: 1,000 Launch calls, 32 in flight, and one
// ReportTaskStatus call per report.
//
//	go test ./e2e -run '^$' -bench 'Gang1000Unbatched$' -benchtime 10x
func BenchmarkGang1000Unbatched(b *testing.B) { benchGang(b, true) }

func benchGang(b *testing.B, unbatched bool) {
	s := startSimBenchWith(b, 100, unbatched, benchKernelFlags()...)
	var alls, allocs []time.Duration
	cpu := newCPUMeter(s.k.cmd.Process.Pid)
	b.ResetTimer()
	var startCPU, startOwn time.Duration // CPU of the starts alone (not the revokes)
	for range b.N {
		k0, o0 := groupCPU(s.k.cmd.Process.Pid), selfCPU()
		_, tasks, alloc, all := s.runGang(b, 1000, unbatched)
		b.StopTimer()
		startCPU += groupCPU(s.k.cmd.Process.Pid) - k0
		startOwn += selfCPU() - o0
		alls, allocs = append(alls, all), append(allocs, alloc)
		s.revokeAll(b, tasks)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(alls)
	slices.Sort(allocs)
	b.ReportMetric(ms(percentile(alls, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(alls, 99)), "p99-ms")
	b.ReportMetric(ms(percentile(allocs, 50)), "alloc-p50-ms")
	b.ReportMetric(ms(percentile(allocs, 99)), "alloc-p99-ms")
	cpu.report(b, b.N, "kernel", "gang") // a gang's start and its revoke
	b.ReportMetric(ms(startCPU)/float64(b.N), "kernel-cpu-ms/start")
	b.ReportMetric(ms(startOwn)/float64(b.N), "bench-cpu-ms/start")
	b.Logf("load %s; agents %+v; watch resumes %d", loadavg(), s.sim.Stats(), watchResumes.Load())
	s.logCycles(b)
}

// benchKernelFlags are extra `dcosd kernel` flags from DCOS_BENCH_KERNEL_FLAGS
// (space-separated), e.g. "--default-policy first-fit" to compare policies.
func benchKernelFlags() []string { return strings.Fields(os.Getenv("DCOS_BENCH_KERNEL_FLAGS")) }

// logCycles logs the kernel's allocation-cycle histogram (its /metrics).
func (s *simBench) logCycles(t testing.TB) {
	req, _ := http.NewRequest("GET", s.e.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.e.opToken)
	res, err := kernelHTTP.Do(req)
	if err != nil {
		t.Logf("metrics: %v", err)
		return
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "dcos_kernel_allocation_cycle_duration_seconds") {
			lines = append(lines, l)
		}
	}
	t.Logf("kernel cycles:\n%s", strings.Join(lines, "\n"))
}

// groupCPU returns the CPU time (user + system, with reaped children's)
// of the processes in process group pgid; the daemons the harness starts
// lead their own groups, so this is a daemon with its plugin processes.
func groupCPU(pgid int) time.Duration {
	u, _ := procfs.GroupUsage(pgid)
	return time.Duration(u.UserNanos + u.SystemNanos + u.ReapedNanos)
}

// selfCPU returns this process's CPU time (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures CPU time per unit of work of a daemon's process group
// and of this process (the framework side and the simulated agents).
type cpuMeter struct {
	pgid        int
	daemon, own time.Duration
}

func newCPUMeter(pgid int) *cpuMeter {
	return &cpuMeter{pgid: pgid, daemon: groupCPU(pgid), own: selfCPU()}
}

// report reports the CPU ms per unit (n units done since newCPUMeter) of
// the daemon as name-cpu-ms/unit and of this process as bench-cpu-ms/unit.
func (m *cpuMeter) report(b *testing.B, n int, name, unit string) {
	d, o := groupCPU(m.pgid)-m.daemon, selfCPU()-m.own
	b.ReportMetric(ms(d)/float64(n), name+"-cpu-ms/"+unit)
	b.ReportMetric(ms(o)/float64(n), "bench-cpu-ms/"+unit)
}

// loadavg returns /proc/loadavg's first three fields.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	var l1, l5, l15 string
	fmt.Sscan(string(b), &l1, &l5, &l15)
	return l1 + " " + l5 + " " + l15
}

// shortTasks runs b.N `true` tasks through c, workers at a time, each in
// an allocation of its own: Allocate (one instance), Launch, wait for
// FINISHED on f, Revoke. It returns the tasks per second.
func shortTasks(b *testing.B, c syscallsv1connect.KernelClient, f *taskFollower, workers int, command string) float64 {
	next := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range next {
				res, err := c.Allocate(context.Background(), connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}}))
				if err != nil {
					b.Errorf("Allocate: %v", err)
					return
				}
				a := res.Msg.GetAllocations()[0]
				if a.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
					b.Errorf("allocation %s is %v, want GRANTED", a.GetId(), a.GetState())
					return
				}
				l, err := c.Launch(context.Background(), connect.NewRequest(&pb.LaunchRequest{AllocationId: a.GetId(), Command: command}))
				if err != nil {
					b.Errorf("Launch: %v", err)
					return
				}
				f.wait(b, l.Msg.GetTask().GetId(), pb.TaskState_TASK_STATE_FINISHED)
				if _, err := c.Revoke(context.Background(), connect.NewRequest(&pb.RevokeRequest{Id: a.GetId(), Reason: "done"})); err != nil {
					b.Errorf("Revoke: %v", err)
					return
				}
			}
		})
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if b.Failed() {
			break
		}
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if b.Failed() {
		b.FailNow()
	}
	return float64(b.N) / elapsed.Seconds()
}

// BenchmarkShortTasks measures `true` tasks sustained through a `dcosd
// kernel` and 100 simulated agents: each task is an Allocate of one
// instance, a Launch, the agent's STARTING, RUNNING and FINISHED
// reports (batched with the agent's others: ReportTaskStatusBatch), the
// framework seeing FINISHED on its Watch, and a Revoke of the
// allocation; 256 such cycles are in flight. It reports tasks/s.
//
//	go test ./e2e -run '^$' -bench 'ShortTasks$' -benchtime 8000x
func BenchmarkShortTasks(b *testing.B) {
	s := startSimBench(b, 100, benchKernelFlags()...)
	cpu := newCPUMeter(s.k.cmd.Process.Pid)
	tps := shortTasks(b, s.fw, s.f, 256, "true")
	b.ReportMetric(tps, "tasks/s")
	cpu.report(b, b.N, "kernel", "task")
	b.Logf("load %s; agents %+v; watch resumes %d", loadavg(), s.sim.Stats(), watchResumes.Load())
}

// BenchmarkShortTasksUnbatched is BenchmarkShortTasks on the path before
// the batched syscalls: the agents send one ReportTaskStatus call per
// report.
//
//	go test ./e2e -run '^$' -bench 'ShortTasksUnbatched$' -benchtime 8000x
func BenchmarkShortTasksUnbatched(b *testing.B) {
	s := startSimBenchWith(b, 100, true, benchKernelFlags()...)
	cpu := newCPUMeter(s.k.cmd.Process.Pid)
	tps := shortTasks(b, s.fw, s.f, 256, "true")
	b.ReportMetric(tps, "tasks/s")
	cpu.report(b, b.N, "kernel", "task")
	b.Logf("load %s; agents %+v; watch resumes %d", loadavg(), s.sim.Stats(), watchResumes.Load())
}

// BenchmarkShortTasksReuse measures `true` tasks when the framework
// keeps its allocations: 256 allocations made once (untimed;
// DCOS_BENCH_REUSE_SLOTS=N makes N), and each
// task launched into an allocation whose previous task FINISHED (the
// kernel counts only a live task against its allocation), the launches
// ready together sent in one LaunchBatch (two launchers, so that one
// batch is built while the other is in flight); the agents batch their
// reports. Per task: a share of a LaunchBatch, of the agent's report
// batches, and the FINISHED event; no Allocate, no Revoke. It reports
// tasks/s.
//
//	go test ./e2e -run '^$' -bench 'ShortTasksReuse$' -benchtime 20000x
func BenchmarkShortTasksReuse(b *testing.B) {
	slots := 256 // tasks in flight, as BenchmarkShortTasks
	if n, err := strconv.Atoi(os.Getenv("DCOS_BENCH_REUSE_SLOTS")); err == nil && n > 0 {
		slots = n
	}
	s := startSimBench(b, 100, benchKernelFlags()...)
	res, err := s.fw.Allocate(context.Background(), connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}, Count: int32(slots)}))
	if err != nil {
		b.Fatalf("Allocate: %v", err)
	}
	cpu := newCPUMeter(s.k.cmd.Process.Pid)
	tps := shortTasksReuse(b, s.fw, s.f, res.Msg.GetAllocations(), "true")
	b.ReportMetric(tps, "tasks/s")
	cpu.report(b, b.N, "kernel", "task")
	b.Logf("load %s; agents %+v; watch resumes %d", loadavg(), s.sim.Stats(), watchResumes.Load())
}

// shortTasksReuse runs b.N `true` tasks in allocs, each launched into an
// allocation once its previous task FINISHED, in LaunchBatch calls of
// the allocations free at the time (at most 1,000). It returns the tasks
// per second.
func shortTasksReuse(b *testing.B, c syscallsv1connect.KernelClient, f *taskFollower, allocs []*pb.Allocation, command string) float64 {
	free := make(chan string, len(allocs))
	for _, a := range allocs {
		if a.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
			b.Fatalf("allocation %s is %v, want GRANTED", a.GetId(), a.GetState())
		}
		free <- a.GetId()
	}
	var left atomic.Int64 // tasks not launched yet
	left.Store(int64(b.N))
	var finished sync.WaitGroup
	finished.Add(b.N)
	launcher := func() {
		for {
			first, ok := <-free
			if !ok {
				return
			}
			ids := []string{first}
		more:
			for len(ids) < 1000 {
				select {
				case id, ok := <-free:
					if !ok {
						break more
					}
					ids = append(ids, id)
				default:
					break more
				}
			}
			n := left.Add(-int64(len(ids)))
			if n < 0 { // over the count: give the extra back unused
				keep := max(len(ids)+int(n), 0)
				ids = ids[:keep]
				left.Store(0)
			}
			if len(ids) == 0 {
				return
			}
			req := &pb.LaunchBatchRequest{}
			for _, id := range ids {
				req.Launches = append(req.Launches, &pb.LaunchRequest{AllocationId: id, Command: command})
			}
			res, err := c.LaunchBatch(context.Background(), connect.NewRequest(req))
			if err != nil {
				b.Errorf("LaunchBatch of %d: %v", len(ids), err)
				for range ids {
					finished.Done()
				}
				return
			}
			for i, r := range res.Msg.GetResults() {
				if r.GetCode() != "ok" {
					b.Errorf("LaunchBatch: launches[%d]: %s %s", i, r.GetCode(), r.GetMessage())
					finished.Done()
					continue
				}
				go func() {
					f.wait(b, r.GetTask().GetId(), pb.TaskState_TASK_STATE_FINISHED)
					free <- ids[i] // never blocks: it holds every allocation; closed only after the last Done
					finished.Done()
				}()
			}
		}
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(launcher)
	}
	finished.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(free)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return float64(b.N) / elapsed.Seconds()
}

// BenchmarkShortTasksRealAgent is BenchmarkShortTasks against `dcosd dev`
// and its one real agent: each task is a /bin/true the exec driver
// starts (through its supervisor, under the cgroups isolator), 32 in
// flight; as root, once with task isolation (dev's default: a uid of the
// owner's, namespaces) and once without.
//
//	go test ./e2e -run '^$' -bench 'ShortTasksRealAgent$' -benchtime 500x
func BenchmarkShortTasksRealAgent(b *testing.B) {
	// Short names: the sub-benchmark's name is in its temp dir, which
	// must leave room for the exec driver's unix socket path.
	modes := map[string]string{"iso": "--task-isolation=true", "noiso": "--task-isolation=false"}
	if os.Geteuid() != 0 {
		delete(modes, "iso") // needs root
	}
	for _, name := range []string{"iso", "noiso"} {
		m, ok := modes[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			e := newEnv(b)
			dev := e.startDev("--resources", "cpus=1000,mem=1000Gi", "--init=false", "--jobs=false", m)
			c := e.op()
			f := followTasks(b, c, listAgents(b, c).GetRevision())
			cpu := newCPUMeter(dev.cmd.Process.Pid)
			tps := shortTasks(b, c, f, 32, "/bin/true")
			b.ReportMetric(tps, "tasks/s")
			cpu.report(b, b.N, "dev", "task")
			b.Logf("load %s", loadavg())
		})
	}
}
