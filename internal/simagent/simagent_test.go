package simagent_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/internal/simagent"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// start runs a kernel behind the production server on 127.0.0.1:0 and
// n simulated agents, each with an agent token of its own (kerneltest's
// kernel has no token store for AgentJoin; e2e's TestSimAgents_Gang joins).
func start(t testing.TB, n int) (syscallsv1connect.KernelClient, *simagent.Cluster) {
	t.Helper()
	return startWith(t, n, nil)
}

// startWith is start with the agents' config adjusted by tune.
func startWith(t testing.TB, n int, tune func(*simagent.Config)) (syscallsv1connect.KernelClient, *simagent.Cluster) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	toks := kerneltest.DefaultTokens()
	var agentToks []string
	for i := range n {
		tok := fmt.Sprintf("sim-agent-token-%04d-0123456789", i)
		toks = append(toks, api.TokenEntry{Token: tok, Name: fmt.Sprintf("sim-%d", i), Role: "agent"})
		agentToks = append(agentToks, tok)
	}
	s := kerneltest.Start(t, kerneltest.Options{Tokens: toks, Listener: ln})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := simagent.Config{KernelURL: s.URL, Agents: n, AgentTokens: agentToks,
		Resources: &pb.Resources{Cpus: 16, MemBytes: 64 << 30}}
	if tune != nil {
		tune(&cfg)
	}
	c, err := simagent.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return kclient.New(s.URL, kerneltest.OperatorToken), c
}

func TestStart_BadConfig(t *testing.T) {
	for name, cfg := range map[string]simagent.Config{
		"no url":        {Agents: 1, JoinToken: "x"},
		"no agents":     {KernelURL: "http://127.0.0.1:1", JoinToken: "x"},
		"no token":      {KernelURL: "http://127.0.0.1:1", Agents: 1},
		"tokens count":  {KernelURL: "http://127.0.0.1:1", Agents: 2, AgentTokens: []string{"a"}},
		"workers < 0":   {KernelURL: "http://127.0.0.1:1", Agents: 1, JoinToken: "x", ReportWorkers: -1},
		"malformed url": {KernelURL: "http://a,", Agents: 1, JoinToken: "x"},
	} {
		t.Run(name, func(t *testing.T) {
			if c, err := simagent.Start(context.Background(), cfg); err == nil {
				c.Close()
				t.Fatalf("Start(%+v) succeeded, want an error", cfg)
			}
		})
	}
}

// TestCluster_Gang: a 100-task gang on 10 simulated agents is granted at
// one revision, its tasks all go RUNNING, and after a revoke every task
// ends KILLED and nothing is left.
func TestCluster_Gang(t *testing.T) {
	op, sim := start(t, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	agents, err := op.ListAgents(ctx, connect.NewRequest(&pb.ListAgentsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(agents.Msg.GetAgents()); n != 10 {
		t.Fatalf("ListAgents: %d agents, want 10", n)
	}
	w := watchTasks(t, op, agents.Msg.GetRevision())
	res, err := op.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{
		Resources: &pb.Resources{Cpus: 0.5, MemBytes: 64 << 20}, Count: 100, Gang: &pb.Gang{}}))
	if err != nil {
		t.Fatal(err)
	}
	revs, placed := map[int64]bool{}, map[string]int{}
	for _, a := range res.Msg.GetAllocations() {
		if a.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
			t.Fatalf("allocation %s is %v, want GRANTED", a.GetId(), a.GetState())
		}
		revs[res.Msg.GetRevision()] = true
		placed[a.GetAgentId()]++
	}
	if len(res.Msg.GetAllocations()) != 100 || len(revs) != 1 {
		t.Fatalf("gang: %d allocations at revisions %v, want 100 at one", len(res.Msg.GetAllocations()), revs)
	}
	t.Logf("placement over agents: %v", placed)
	// One LaunchBatch for the gang, as frameworks/jobs launches it.
	var batch pb.LaunchBatchRequest
	for _, a := range res.Msg.GetAllocations() {
		batch.Launches = append(batch.Launches, &pb.LaunchRequest{AllocationId: a.GetId(), Command: "sleep", Args: []string{"600"}})
	}
	lb, err := op.LaunchBatch(ctx, connect.NewRequest(&batch))
	if err != nil {
		t.Fatal(err)
	}
	var tasks []string
	for i, r := range lb.Msg.GetResults() {
		if r.GetCode() != "ok" {
			t.Fatalf("launches[%d]: %s %s", i, r.GetCode(), r.GetMessage())
		}
		tasks = append(tasks, r.GetTask().GetId())
	}
	w.waitAll(t, tasks, pb.TaskState_TASK_STATE_RUNNING)
	// 200 reports (STARTING, RUNNING) from 10 agents: batched, so far
	// fewer calls.
	eventually(t, "the agents' answers to 200 reports", func() bool { return sim.Stats().Reports == 200 })
	if st := sim.Stats(); st.ReportCalls*2 > st.Reports {
		t.Errorf("stats %+v: %d report calls for %d reports, want batches", st, st.ReportCalls, st.Reports)
	}
	if _, err := op.Revoke(ctx, connect.NewRequest(&pb.RevokeRequest{All: true})); err != nil {
		t.Fatal(err)
	}
	w.waitAll(t, tasks, pb.TaskState_TASK_STATE_KILLED)
	waitEmpty(t, op)
	eventually(t, "the agents to report every task KILLED", func() bool { return sim.Stats().Killed == 100 })
	if st := sim.Stats(); st.Launched != 100 || st.Finished != 0 {
		t.Fatalf("stats %+v: want 100 launched, none finished", st)
	}
}

// TestCluster_ShortTasks: a burst of `true` tasks, each in an allocation
// of its own, 32 in flight: every task ends FINISHED exactly once (one
// FINISHED event each, no other end), exit code 0, its states seen in
// order; with the agents' reports batched (far fewer calls than
// reports) and one call per report (Config.SingleReports).
func TestCluster_ShortTasks(t *testing.T) {
	for _, single := range []bool{false, true} {
		t.Run(fmt.Sprintf("single=%v", single), func(t *testing.T) {
			op, sim := startWith(t, 4, func(c *simagent.Config) { c.SingleReports = single })
			testShortTasks(t, op, sim)
			eventually(t, "the agents' answers to every report", func() bool { return sim.Stats().Reports == 900 })
			st := sim.Stats()
			switch {
			case single && st.ReportCalls != st.Reports+st.ReportRetries:
				t.Errorf("stats %+v: want one call per report", st)
			case !single && st.ReportCalls*2 > st.Reports:
				t.Errorf("stats %+v: %d calls for %d reports, want batches (at most one call per 2 reports)", st, st.ReportCalls, st.Reports)
			}
			t.Logf("stats %+v", st)
		})
	}
}

func testShortTasks(t *testing.T, op syscallsv1connect.KernelClient, sim *simagent.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	agents, err := op.ListAgents(ctx, connect.NewRequest(&pb.ListAgentsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	w := watchTasks(t, op, agents.Msg.GetRevision())
	const n = 300
	var mu sync.Mutex
	var tasks []string
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			a, err := op.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 << 20}}))
			if err != nil {
				t.Error(err)
				return
			}
			id := a.Msg.GetAllocations()[0].GetId()
			l, err := op.Launch(ctx, connect.NewRequest(&pb.LaunchRequest{AllocationId: id, Command: "true"}))
			if err != nil {
				t.Error(err)
				return
			}
			tid := l.Msg.GetTask().GetId()
			w.wait(t, tid, pb.TaskState_TASK_STATE_FINISHED)
			if _, err := op.Revoke(ctx, connect.NewRequest(&pb.RevokeRequest{Id: id})); err != nil {
				t.Error(err)
			}
			mu.Lock()
			tasks = append(tasks, tid)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	waitEmpty(t, op)
	ends := w.ends()
	for _, id := range tasks {
		if e := ends[id]; len(e) != 1 || e[0].GetState() != pb.TaskState_TASK_STATE_FINISHED || e[0].GetExitCode() != 0 {
			t.Errorf("task %s ended %v, want FINISHED once with exit code 0", id, e)
		}
		if got := w.seen(id); !slices.Equal(got, []pb.TaskState{pb.TaskState_TASK_STATE_PENDING, pb.TaskState_TASK_STATE_STARTING, pb.TaskState_TASK_STATE_RUNNING, pb.TaskState_TASK_STATE_FINISHED}) {
			t.Errorf("task %s went through %v, want PENDING, STARTING, RUNNING, FINISHED", id, got)
		}
	}
	if st := sim.Stats(); st.Finished != n || st.Killed != 0 {
		t.Errorf("stats %+v: want %d finished, none killed", st, n)
	}
}

// taskWatch collects task events of one Watch.
type taskWatch struct {
	mu     sync.Mutex
	states map[string][]*pb.Task // by task id, in order
	more   chan struct{}         // closed and replaced on each event
	err    error
}

func watchTasks(t testing.TB, c syscallsv1connect.KernelClient, after int64) *taskWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &taskWatch{states: map[string][]*pb.Task{}, more: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A stream ended because this watcher fell behind (one revision of
		// a 1,000-task LaunchBatch is 1,000 events) resumes after the
		// revision before the one being received, skipping the events of
		// it already seen (a revision's events come whole and in order).
		cur, n := int64(0), 0
		var err error
		for {
			var st *connect.ServerStreamForClient[pb.Event]
			st, err = c.Watch(ctx, connect.NewRequest(&pb.WatchRequest{AfterRevision: after,
				Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_TASK_STATE}}))
			if err != nil {
				break
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
				k := e.GetTask()
				w.mu.Lock()
				w.states[k.GetId()] = append(w.states[k.GetId()], k)
				close(w.more)
				w.more = make(chan struct{})
				w.mu.Unlock()
			}
			err = st.Err()
			st.Close()
			var ce *connect.Error
			if ctx.Err() != nil || !errors.As(err, &ce) || ce.Code() != connect.CodeFailedPrecondition || !strings.Contains(ce.Message(), "fell behind") {
				break
			}
			after = max(after, cur-1)
		}
		w.mu.Lock()
		w.err = err
		close(w.more)
		w.more = make(chan struct{})
		w.mu.Unlock()
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// wait waits for task id to reach state s.
func (w *taskWatch) wait(t testing.TB, id string, s pb.TaskState) {
	deadline := time.After(20 * time.Second)
	for {
		w.mu.Lock()
		for _, k := range w.states[id] {
			if k.GetState() == s {
				w.mu.Unlock()
				return
			}
		}
		more, err := w.more, w.err
		w.mu.Unlock()
		if err != nil {
			t.Errorf("watch ended (%v) before task %s was %v", err, id, s)
			return
		}
		select {
		case <-more:
		case <-deadline:
			t.Errorf("task %s not %v within 20s", id, s)
			return
		}
	}
}

func (w *taskWatch) waitAll(t testing.TB, ids []string, s pb.TaskState) {
	t.Helper()
	for _, id := range ids {
		w.wait(t, id, s)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// seen returns the states task id's events carried, in order.
func (w *taskWatch) seen(id string) []pb.TaskState {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []pb.TaskState
	for _, k := range w.states[id] {
		out = append(out, k.GetState())
	}
	return out
}

// ends returns each task's terminal events.
func (w *taskWatch) ends() map[string][]*pb.Task {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]*pb.Task{}
	for id, ks := range w.states {
		for _, k := range ks {
			switch k.GetState() {
			case pb.TaskState_TASK_STATE_FINISHED, pb.TaskState_TASK_STATE_FAILED, pb.TaskState_TASK_STATE_KILLED, pb.TaskState_TASK_STATE_LOST:
				out[id] = append(out[id], k)
			}
		}
	}
	return out
}

// waitEmpty waits until the kernel lists no allocation and no live task.
func waitEmpty(t testing.TB, op syscallsv1connect.KernelClient) {
	t.Helper()
	eventually(t, "no allocation and no live task", func() bool {
		a, err := op.ListAllocations(context.Background(), connect.NewRequest(&pb.ListAllocationsRequest{}))
		if err != nil || len(a.Msg.GetAllocations()) > 0 {
			return false
		}
		k, err := op.ListTasks(context.Background(), connect.NewRequest(&pb.ListTasksRequest{}))
		if err != nil {
			return false
		}
		for _, tk := range k.Msg.GetTasks() {
			if s := tk.GetState(); s < pb.TaskState_TASK_STATE_FINISHED {
				return false
			}
		}
		return true
	})
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
