package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cg "github.com/dcos-kernel/dcos/internal/cgroups"
	"github.com/dcos-kernel/dcos/isolators/cgroups"
	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// noJoinDriver is the real exec driver seen as a driver that cannot start
// a task inside its cgroups (Capabilities.JoinCgroups = false), so that
// the agent moves the task's pid in with Isolator.Isolate after StartTask.
// A task whose driver_config is "wait-exit" is started, then StartTask
// waits for it to exit before it answers: its pid is gone by the time the
// agent isolates it (a slow driver and a task that exits at once).
type noJoinDriver struct{ contract.Driver }

func (d noJoinDriver) Capabilities(ctx context.Context) (*contract.Capabilities, error) {
	c, err := d.Driver.Capabilities(ctx)
	if err != nil {
		return nil, err
	}
	cc := *c
	cc.JoinCgroups = false
	return &cc, nil
}

func (d noJoinDriver) StartTask(ctx context.Context, cfg *contract.TaskConfig) (*contract.TaskHandle, error) {
	if len(cfg.Cgroups) > 0 {
		return nil, errors.New("noJoinDriver: the agent handed cgroups to a driver that cannot join them")
	}
	h, err := d.Driver.StartTask(ctx, cfg)
	if err == nil && string(cfg.DriverConfig) == "wait-exit" {
		_, err = d.Driver.WaitTask(ctx, cfg.ID)
	}
	return h, err
}

// isoPlugins is testPlugins with driver as "exec" and the real cgroups
// isolator as "cgroups".
type isoPlugins struct {
	*testPlugins
	driver contract.Driver
	iso    contract.Isolator
}

func (p *isoPlugins) Driver(name string) (contract.Driver, error) {
	if name != DefaultDriver {
		return nil, fmt.Errorf("no driver %q (have exec)", name)
	}
	return p.driver, nil
}

func (p *isoPlugins) Isolator(name string) (contract.Isolator, error) {
	if name != "cgroups" || p.iso == nil {
		return nil, fmt.Errorf("no isolator %q", name)
	}
	return p.iso, nil
}

var isoSeq atomic.Int64

// newCgroupsIsolator returns the real cgroups isolator with a parent of
// the test's own beneath the test process's cgroups, and its parent's
// directories. At the end of the test it fails if a task cgroup is left
// and removes the parent. It skips when the kernel lacks a cgroup
// hierarchy or controller the isolator needs, or when not root.
func newCgroupsIsolator(t *testing.T) (*cgroups.Isolator, map[string]string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: the cgroups isolator creates cgroups")
	}
	l, err := cg.Detect()
	if err == nil {
		err = l.Check()
	}
	var nse *cg.NotSupportedError
	if errors.As(err, &nse) {
		t.Skipf("cgroups: %s missing: %v", nse.Controller, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	parent := fmt.Sprintf("dcos-agent-test-%d-%d", os.Getpid(), isoSeq.Add(1))
	iso, err := cgroups.New(cgroups.Config{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	dirs, err := l.ParentDirs(parent)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, d := range dirs {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				if e.IsDir() {
					t.Errorf("task cgroup %s left behind", filepath.Join(d, e.Name()))
					syscall.Rmdir(filepath.Join(d, e.Name()))
				}
			}
			if err := syscall.Rmdir(d); err != nil && err != syscall.ENOENT {
				t.Errorf("remove cgroup parent %s: %v", d, err)
			}
		}
	})
	return iso, dirs
}

// TestAgent_IsolateAfterStart: with a driver that does not join cgroups
// itself, the agent isolates the task's pid after StartTask. A task that
// exited before that is reported with its real exit, not as a failed
// isolation; a task that runs is moved into its cgroups; neither leaves a
// cgroup behind.
func TestAgent_IsolateAfterStart(t *testing.T) {
	iso, dirs := newCgroupsIsolator(t)
	k, url := startFakeKernel(t)
	var plugins *testPlugins
	a := startAgentWith(t, k, url, "", func(c *Config) {
		plugins = c.Plugins.(*testPlugins)
		c.Plugins = &isoPlugins{testPlugins: plugins, driver: noJoinDriver{plugins.exec}, iso: iso}
		c.Isolator = "cgroups"
	})
	for _, tc := range []struct {
		name    string
		command []string
		state   syscallsv1.TaskState
		reason  string
		code    int32
	}{
		{"true", []string{"true"}, finished, "exit code 0", 0},
		{"exit3", []string{"sh", "-c", "exit 3"}, failed, "exit code 3", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "t-fast-" + tc.name
			task := newTask(id, a.ID(), pending, tc.command[0], tc.command[1:]...)
			task.DriverConfig = "wait-exit"
			k.pushTask(task)
			r := k.waitReport(t, id, tc.state)
			if r.GetReason() != tc.reason || r.GetExitCode() != tc.code {
				t.Errorf("%s reported %s %q (exit code %d), want %q (exit code %d)", id, r.GetState(), r.GetReason(), r.GetExitCode(), tc.reason, tc.code)
			}
			if got := k.states(id); slices.Contains(got, failed) && tc.state != failed {
				t.Errorf("%s states %v: a FAILED report besides its real exit", id, got)
			}
		})
	}

	// A task that runs is isolated: its pid is in the container's cgroups.
	task := newTask("t-run", a.ID(), pending, "sleep", "300")
	k.pushTask(task)
	pid := int(k.waitReport(t, "t-run", running).GetPid())
	for ctrl, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "t-run", "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(strings.Fields(string(b)), strconv.Itoa(pid)) {
			t.Errorf("task pid %d is not in its %s cgroup %s after Isolate: cgroup.procs = %q", pid, ctrl, d, b)
		}
	}
	k.pushTask(newTask("t-run", a.ID(), killed, "sleep"))
	k.waitReport(t, "t-run", killed)
	groupGone(t, pid)
	a.stop(t)
}

// stuckDriver is the real exec driver whose StartTask starts the task and
// then hangs until its context is cancelled, answering ctx.Err() without
// undoing the start (a slow driver mid-start, e.g. pulling an image, when
// the agent stops). It sends each started pid on started and records the
// tasks DestroyTask was called for.
type stuckDriver struct {
	contract.Driver
	started chan int

	mu        sync.Mutex
	destroyed []string
}

func (d *stuckDriver) StartTask(ctx context.Context, cfg *contract.TaskConfig) (*contract.TaskHandle, error) {
	h, err := d.Driver.StartTask(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d.started <- h.PID
	<-ctx.Done()
	return nil, ctx.Err()
}

func (d *stuckDriver) DestroyTask(ctx context.Context, id string, force bool) error {
	d.mu.Lock()
	d.destroyed = append(d.destroyed, id)
	d.mu.Unlock()
	return d.Driver.DestroyTask(ctx, id, force)
}

// stuckPlugins is netPlugins with the stuck exec driver.
type stuckPlugins struct {
	*netPlugins
	driver *stuckDriver
}

func (p *stuckPlugins) Driver(name string) (contract.Driver, error) {
	if name != DefaultDriver {
		return nil, fmt.Errorf("no driver %q (have exec)", name)
	}
	return p.driver, nil
}

// TestAgent_StopDuringStart: a start still in flight when the agent stops
// is torn down with a context of its own (the driver's DestroyTask kills
// what it started, the task's network is removed) and not reported
// FAILED: it is simply not running, and the next agent's registration
// reconciles it (LOST, as the kernel still has it STARTING).
func TestAgent_StopDuringStart(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	dataDir := t.TempDir()
	plugins := newTestPlugins(t, dataDir)
	nd := newNodeNet()
	drv := &stuckDriver{Driver: plugins.exec, started: make(chan int, 1)}
	a, err := New(Config{
		KernelURL: url, Token: "agent-token", DataDir: dataDir, KillGrace: 2 * time.Second,
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Plugins: &stuckPlugins{netPlugins: &netPlugins{testPlugins: plugins, net: nd}, driver: drv},
		Network: "test-net",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAgent{Agent: a, dataDir: dataDir, plugins: plugins, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx); close(r.done) }()
	t.Cleanup(func() { r.stop(t) })
	<-a.Registered()

	task := newTask("t-stuck", a.ID(), pending, "sleep", "300")
	task.Network = netBridge
	k.pushTask(task)
	var pid int
	select {
	case pid = <-drv.started:
	case <-time.After(waitTimeout):
		t.Fatal("the driver never started the task")
	}
	if _, err := nd.Status(context.Background(), "t-stuck"); err != nil {
		t.Fatalf("the task's network is not set up before the stop: %v", err)
	}
	r.stop(t)

	if !processGone(pid) {
		t.Errorf("the interrupted start's process %d still runs after the agent stopped", pid)
		syscall.Kill(-pid, syscall.SIGKILL)
	}
	drv.mu.Lock()
	destroyed := slices.Clone(drv.destroyed)
	drv.mu.Unlock()
	if !slices.Contains(destroyed, "t-stuck") {
		t.Errorf("DestroyTask called for %v, want t-stuck", destroyed)
	}
	if _, err := nd.Status(context.Background(), "t-stuck"); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("the interrupted start's network is left: %v", err)
	}
	if got := k.states("t-stuck"); slices.ContainsFunc(got, func(s syscallsv1.TaskState) bool { return s != starting }) {
		t.Errorf("states reported for the interrupted start: %v, want STARTING only", got)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "tasks", "t-stuck.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a checkpoint of the interrupted start is left: %v", err)
	}

	// The next agent does not know the task the kernel has STARTING.
	k.setExpected(newTask("t-stuck", a.ID(), starting, "sleep", "300"))
	startAgent(t, k, url, dataDir)
	rep := k.waitReport(t, "t-stuck", lost)
	if want := "task not found on agent after restart"; rep.GetReason() != want {
		t.Errorf("reconciled as LOST %q, want %q", rep.GetReason(), want)
	}
}
