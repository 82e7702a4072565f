package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/sdk/framework"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

const (
	fwToken    = kerneltest.FrameworkToken
	agentToken = kerneltest.AgentToken
)

// fakeAgent registers a node through the agent syscalls and reports every
// task launched on it RUNNING, as a real agent would once it started it.
func fakeAgent(ctx context.Context, t *testing.T, url string) (*framework.Client, string) {
	c, err := framework.New(framework.Config{Endpoints: []string{url}, Token: agentToken})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.RegisterAgent(ctx, &pb.RegisterAgentRequest{Hostname: "node-1", Resources: &pb.Resources{Cpus: 64, MemBytes: 64 << 30, DiskBytes: 1 << 40}})
	if err != nil {
		t.Fatal(err)
	}
	id := r.GetAgentId()
	go func() {
		for ctx.Err() == nil {
			l, err := c.ListTasks(ctx, &pb.ListTasksRequest{AgentId: id})
			for _, tk := range l.GetTasks() {
				if err == nil && tk.GetState() < pb.TaskState_TASK_STATE_RUNNING {
					c.ReportTaskStatus(ctx, &pb.ReportTaskStatusRequest{TaskId: tk.GetId(), AgentId: id, State: pb.TaskState_TASK_STATE_RUNNING, Pid: 100})
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return c, id
}

// syncBuffer is a bytes.Buffer safe for a replica's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type replica struct {
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

func startReplica(ctx context.Context, url string) *replica {
	rctx, cancel := context.WithCancel(ctx)
	r := &replica{out: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		r.done <- run(rctx, []string{"--kernel", url, "--token", fwToken, "--count", "3", "--cmd", "sleep 1000", "--name", "web", "--ttl", "1s"}, r.out, r.out)
	}()
	return r
}

func (r *replica) leading() bool { return strings.Contains(r.out.String(), "msg=leading") }
func (r *replica) launches() int { return strings.Count(r.out.String(), "msg=launched") }

// liveTasks returns the app's RUNNING tasks and its allocations.
func liveTasks(ctx context.Context, t *testing.T, c *framework.Client) (running []*pb.Task, allocs int) {
	l, err := c.ListTasks(ctx, &pb.ListTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range l.GetTasks() {
		if tk.GetState() == pb.TaskState_TASK_STATE_RUNNING && tk.GetLabels()["app"] == "web" {
			running = append(running, tk)
		}
	}
	a, err := c.ListAllocations(ctx, &pb.ListAllocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return running, len(a.GetAllocations())
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestReplicated_LeaderKeepsCountAndFailsOver(t *testing.T) {
	url := kerneltest.Start(t, kerneltest.Options{}).URL
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fw, err := framework.New(framework.Config{Endpoints: []string{url}, Token: fwToken})
	if err != nil {
		t.Fatal(err)
	}
	agent, agentID := fakeAgent(ctx, t, url)

	a, b := startReplica(ctx, url), startReplica(ctx, url)
	defer func() {
		for _, r := range []*replica{a, b} {
			r.cancel()
			if code := <-r.done; code != 0 {
				t.Errorf("replica exited %d:\n%s", code, r.out)
			}
		}
	}()
	eventually(t, "3 running tasks", func() bool { r, n := liveTasks(ctx, t, fw); return len(r) == 3 && n == 3 })
	leader, follower := a, b
	if b.leading() {
		leader, follower = b, a
	}
	if !leader.leading() || follower.leading() || follower.launches() != 0 || leader.launches() != 3 {
		t.Fatalf("want one leader that launched 3 and a follower that launched none\nleader:\n%s\nfollower:\n%s", leader.out, follower.out)
	}

	// A task ends: the leader replaces it.
	running, _ := liveTasks(ctx, t, fw)
	if _, err := agent.ReportTaskStatus(ctx, &pb.ReportTaskStatusRequest{TaskId: running[0].GetId(), AgentId: agentID,
		State: pb.TaskState_TASK_STATE_FAILED, ExitCode: 1, Reason: "exit code 1"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ended task replaced", func() bool {
		r, n := liveTasks(ctx, t, fw)
		return len(r) == 3 && n == 3 && leader.launches() == 4
	})

	// The leader stops: the follower takes over and adopts the running
	// tasks from its cache instead of launching more.
	leader.cancel()
	if code := <-leader.done; code != 0 {
		t.Fatalf("leader exited %d", code)
	}
	leader.done <- 0
	eventually(t, "the follower to lead", follower.leading)
	time.Sleep(500 * time.Millisecond) // a few reconcile passes
	if r, n := liveTasks(ctx, t, fw); len(r) != 3 || n != 3 || follower.launches() != 0 {
		t.Fatalf("after failover: %d running, %d allocations, %d launches by the new leader; want 3, 3, 0\n%s", len(r), n, follower.launches(), follower.out)
	}
}

func TestRun_BadFlags(t *testing.T) {
	for _, args := range [][]string{{}, {"--count", "-1", "--cmd", "x"}, {"--cmd", "x", "extra"}, {"--nope"}} {
		var out bytes.Buffer
		if code := run(context.Background(), args, &out, &out); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (%s)", args, code, out.String())
		}
	}
}
