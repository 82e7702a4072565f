package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dcos-kernel/dcos/drivers/execdriver"
	"github.com/dcos-kernel/dcos/plugins/contract"

	"github.com/dcos-kernel/dcos/internal/executor/proc"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

const (
	pending  = syscallsv1.TaskState_TASK_STATE_PENDING
	starting = syscallsv1.TaskState_TASK_STATE_STARTING
	running  = syscallsv1.TaskState_TASK_STATE_RUNNING
	finished = syscallsv1.TaskState_TASK_STATE_FINISHED
	failed   = syscallsv1.TaskState_TASK_STATE_FAILED
	killed   = syscallsv1.TaskState_TASK_STATE_KILLED
	lost     = syscallsv1.TaskState_TASK_STATE_LOST
)

// supervisorArg makes the test binary run the exec driver's supervisor
// (os.Args[2] is its state dir): the driver starts it as a separate
// process, as dcosd's hidden "supervisor" command does.
const supervisorArg = "__agent_test_supervisor"

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == supervisorArg {
		os.Exit(execdriver.SupervisorMain(os.Args[2], slog.New(slog.NewTextHandler(os.Stderr, nil))))
	}
	os.Exit(m.Run())
}

// testPlugins is the agent's plugin host in these tests: the real exec
// driver, in process (the plugin host and its go-plugin processes are
// tested in plugins/host and end to end in e2e).
type testPlugins struct {
	exec *execdriver.Driver
}

func newTestPlugins(t *testing.T, dataDir string) *testPlugins {
	t.Helper()
	dir := filepath.Join(dataDir, "plugins", "driver-exec")
	d, err := execdriver.New(execdriver.Config{
		StateDir: dir, SupervisorCmd: []string{os.Args[0], supervisorArg, dir},
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})).With("component", "exec"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testPlugins{exec: d}
}

func (p *testPlugins) Driver(name string) (contract.Driver, error) {
	if name != DefaultDriver {
		return nil, fmt.Errorf("no driver %q (have exec)", name)
	}
	return p.exec, nil
}

func (p *testPlugins) Isolator(name string) (contract.Isolator, error) {
	return nil, fmt.Errorf("no isolator %q", name)
}

func (p *testPlugins) Net(name string) (contract.NetDriver, error) {
	return nil, fmt.Errorf("no net driver %q", name)
}

func (p *testPlugins) Info() []*syscallsv1.PluginInfo {
	return []*syscallsv1.PluginInfo{{Name: "exec", Kind: "driver", Builtin: true, Protocol: 1, Health: "healthy"}}
}

// runningAgent is an Agent whose Run runs in a goroutine.
type runningAgent struct {
	*Agent
	dataDir string
	plugins *testPlugins
	cancel  context.CancelFunc
	done    chan error
}

// stop cancels Run and waits for it to return; it is idempotent.
func (r *runningAgent) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after cancel")
	}
	r.plugins.exec.Close()
}

// startAgent creates an agent on dataDir (a new temp dir if empty) talking
// to the kernel at url, starts Run and waits for its first registration.
func startAgent(t *testing.T, k *fakeKernel, url, dataDir string) *runningAgent {
	t.Helper()
	return startAgentWith(t, k, url, dataDir, nil)
}

// startAgentWith is startAgent with the config changed by edit (nil: as
// startAgent).
func startAgentWith(t *testing.T, k *fakeKernel, url, dataDir string, edit func(*Config)) *runningAgent {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	plugins := newTestPlugins(t, dataDir)
	cfg := Config{
		KernelURL: url,
		Token:     "agent-token",
		DataDir:   dataDir,
		KillGrace: 2 * time.Second,
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Plugins:   plugins,
		HostPorts: "31000-31009",
	}
	if edit != nil {
		edit(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	k.mu.Lock()
	n := len(k.registrations)
	k.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAgent{Agent: a, dataDir: dataDir, plugins: plugins, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx); close(r.done) }()
	t.Cleanup(func() { r.stop(t) })
	select {
	case <-a.Registered():
	case <-time.After(30 * time.Second):
		t.Fatal("Registered() not closed 30s after start")
	}
	if a.ID() == "" {
		t.Fatal("Registered() closed before the agent has an id")
	}
	if reg := k.waitRegistrations(t, n+1); reg.GetHostPorts() != "31000-31009" {
		t.Fatalf("registered host ports %q, want the configured 31000-31009", reg.GetHostPorts())
	}
	return r
}

func newTask(id, agentID string, state syscallsv1.TaskState, command string, args ...string) *syscallsv1.Task {
	return &syscallsv1.Task{
		Id: id, AllocationId: "a-" + id, AgentId: agentID, State: state,
		Command: command, Args: args,
	}
}

// processGone reports whether process pid is gone (reaped) and no live
// process is left in its process group. Zombies of the group (reparented
// grandchildren waiting for init) do not count.
func processGone(pid int) bool {
	if !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pid) && f[0] != "Z" {
			return false
		}
	}
	return true
}

// groupGone fails t unless the process group pgid (a task killed with its
// group) is gone soon after the task was reported KILLED: the report
// follows the leader's exit, and the group's other members, SIGKILLed at
// the same time, may still be exiting for a moment.
func groupGone(t *testing.T, pgid int) {
	t.Helper()
	eventually(t, fmt.Sprintf("process group %d gone after KILLED", pgid), func() bool { return processGone(pgid) })
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestAgent_Launch(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")

	k.pushTask(newTask("t-hi", a.ID(), pending, "sh", "-c", "echo hi; sleep 300"))
	run := k.waitReport(t, "t-hi", running)
	if got, want := k.states("t-hi"), []syscallsv1.TaskState{starting, running}; !slices.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
	pid := int(run.GetPid())
	if pid <= 0 {
		t.Fatalf("RUNNING pid = %d", pid)
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Errorf("Getpgid(%d) = %d, %v; want its own group", pid, pgid, err)
	}
	sandbox := filepath.Join(a.dataDir, "sandboxes", "t-hi")
	if run.GetSandbox() != sandbox {
		t.Errorf("sandbox = %q, want %q", run.GetSandbox(), sandbox)
	}
	if run.GetAgentId() != a.ID() {
		t.Errorf("report agent id = %q, want %q", run.GetAgentId(), a.ID())
	}
	eventually(t, "stdout to say hi", func() bool {
		b, _ := os.ReadFile(filepath.Join(sandbox, "stdout"))
		return string(b) == "hi\n"
	})
	if _, err := os.Stat(filepath.Join(a.dataDir, "tasks", "t-hi.json")); err != nil {
		t.Errorf("checkpoint: %v", err)
	}

	k.pushTask(newTask("t-hi", a.ID(), killed, "sh"))
	rep := k.waitReport(t, "t-hi", killed)
	groupGone(t, pid)
	if rep.GetReason() == "" {
		t.Error("KILLED report has no reason")
	}
	eventually(t, "checkpoint removal", func() bool {
		_, err := os.Stat(filepath.Join(a.dataDir, "tasks", "t-hi.json"))
		return errors.Is(err, os.ErrNotExist)
	})
	// A stale PENDING for a task that ran must not start it again.
	k.pushTask(newTask("t-hi", a.ID(), pending, "sh", "-c", "echo again"))
	k.pushTask(newTask("t-marker", a.ID(), pending, "true"))
	k.waitReport(t, "t-marker", finished)
	if got, want := k.states("t-hi"), []syscallsv1.TaskState{starting, running, killed}; !slices.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
}

func TestAgent_TaskEnd(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	tests := []struct {
		name       string
		task       *syscallsv1.Task
		state      syscallsv1.TaskState
		reason     string // substring
		code       int32
		wantStates []syscallsv1.TaskState
	}{
		{name: "exit 0", task: newTask("t-exit0", a.ID(), pending, "sh", "-c", "exit 0"),
			state: finished, reason: "exit code 0", code: 0},
		{name: "exit 3", task: newTask("t-exit3", a.ID(), pending, "sh", "-c", "exit 3"),
			state: failed, reason: "exit code 3", code: 3},
		{name: "signal", task: newTask("t-signal", a.ID(), pending, "sh", "-c", "kill -KILL $$"),
			state: failed, reason: "killed by signal SIGKILL", code: -1},
		{name: "not found", task: newTask("t-notfound", a.ID(), pending, "dcos-no-such-command"),
			state: failed, reason: "not found", code: -1, wantStates: []syscallsv1.TaskState{starting, failed}},
		{name: "absolute path", task: newTask("t-abs", a.ID(), pending, "/bin/sh", "-c", "exit 0"),
			state: finished, reason: "exit code 0"},
		{name: "working dir escapes", task: &syscallsv1.Task{Id: "t-escape", AgentId: a.ID(), State: pending, Command: "true", WorkingDir: "../x"},
			state: failed, reason: "escapes the sandbox", code: -1, wantStates: []syscallsv1.TaskState{starting, failed}},
		{name: "bad task id", task: newTask("../t-bad", a.ID(), pending, "true"),
			state: failed, reason: "cannot name a sandbox", code: -1, wantStates: []syscallsv1.TaskState{starting, failed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k.pushTask(tt.task)
			rep := k.waitReport(t, tt.task.GetId(), tt.state)
			if !strings.Contains(rep.GetReason(), tt.reason) {
				t.Errorf("reason = %q, want it to contain %q", rep.GetReason(), tt.reason)
			}
			if rep.GetExitCode() != tt.code {
				t.Errorf("exit code = %d, want %d", rep.GetExitCode(), tt.code)
			}
			want := tt.wantStates
			if want == nil {
				want = []syscallsv1.TaskState{starting, running, tt.state}
			}
			if got := k.states(tt.task.GetId()); !slices.Equal(got, want) {
				t.Errorf("states = %v, want %v", got, want)
			}
		})
	}
}

func TestAgent_TaskEnv(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	task := newTask("t-env", a.ID(), pending, "sh", "-c", `printf '%s|%s|%s|%s|%s|%s' "$DCOS_TASK_ID" "$DCOS_ALLOCATION_ID" "$DCOS_SANDBOX" "$HOME" "$FOO" "$PWD"`)
	task.Env = map[string]string{"FOO": "bar"}
	task.WorkingDir = "work/dir"
	k.pushTask(task)
	k.waitReport(t, "t-env", finished)
	sandbox := filepath.Join(a.dataDir, "sandboxes", "t-env")
	b, err := os.ReadFile(filepath.Join(sandbox, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{"t-env", "a-t-env", sandbox, sandbox, "bar", filepath.Join(sandbox, "work/dir")}, "|")
	if string(b) != want {
		t.Errorf("stdout = %q, want %q", b, want)
	}
}

func TestAgent_KillGrace(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	// The task ignores SIGTERM: only the SIGKILL after the grace period
	// ends it. The child sleep is in the same group and must die too.
	k.pushTask(newTask("t-stubborn", a.ID(), pending, "sh", "-c", "trap '' TERM; echo ready; sleep 300 & wait"))
	run := k.waitReport(t, "t-stubborn", running)
	eventually(t, "trap installed", func() bool {
		b, _ := os.ReadFile(filepath.Join(a.dataDir, "sandboxes", "t-stubborn", "stdout"))
		return string(b) == "ready\n"
	})
	k.pushTask(newTask("t-stubborn", a.ID(), killed, "sh"))
	k.waitReport(t, "t-stubborn", killed)
	groupGone(t, int(run.GetPid()))
}

// A task's own kill_grace_period replaces the agent's KillGrace: with the
// agent's an hour, a task that survives SIGTERM is still SIGKILLed, after
// its 300ms, also when an agent restart recovered it.
func TestAgent_TaskKillGrace(t *testing.T) {
	t.Parallel()
	const grace = 300 * time.Millisecond
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			t.Parallel()
			k, url := startFakeKernel(t)
			dataDir := t.TempDir()
			hour := func(c *Config) { c.KillGrace = time.Hour }
			a := startAgentWith(t, k, url, dataDir, hour)
			id := "t-grace"
			// The shell survives SIGTERM: its trap notes it in stdout, its
			// sleep dies of it and the loop goes on, noting "tick".
			task := newTask(id, a.ID(), pending, "sh", "-c", "trap 'echo term' TERM; echo ready; while :; do sleep 0.05; echo tick; done")
			task.KillGracePeriod = durationpb.New(grace)
			k.pushTask(task)
			pid := int(k.waitReport(t, id, running).GetPid())
			// The agent's hour would outlive the test: a failed test kills.
			t.Cleanup(func() { _ = proc.SignalGroup(pid, syscall.SIGKILL) })
			stdout := filepath.Join(dataDir, "sandboxes", id, "stdout")
			eventually(t, "trap installed", func() bool {
				b, _ := os.ReadFile(stdout)
				return strings.HasPrefix(string(b), "ready\n")
			})
			if restart {
				a.stop(t)
				running := proto.Clone(task).(*syscallsv1.Task)
				running.State = syscallsv1.TaskState_TASK_STATE_RUNNING
				k.setExpected(running)
				a = startAgentWith(t, k, url, dataDir, hour)
			}
			killed := proto.Clone(task).(*syscallsv1.Task)
			killed.State = syscallsv1.TaskState_TASK_STATE_KILLED
			asked := time.Now()
			k.pushTask(killed)
			k.waitReport(t, id, syscallsv1.TaskState_TASK_STATE_KILLED)
			if took := time.Since(asked); took < grace {
				t.Errorf("killed %v after the kill was asked, before its %v grace period", took, grace)
			}
			groupGone(t, pid)
			// It got SIGTERM and lived on after it: only the SIGKILL ended it.
			b, _ := os.ReadFile(stdout)
			out := string(b)
			if i := strings.Index(out, "term\n"); i < 0 || !strings.Contains(out[i:], "tick") {
				t.Errorf("stdout %q: want a tick after the SIGTERM trap's term", out)
			}
		})
	}
}

func TestAgent_Restart(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	dataDir := t.TempDir()
	a1 := startAgent(t, k, url, dataDir)
	id := a1.ID()
	pids := map[string]int{}
	for _, task := range []string{"t-keep", "t-orphan", "t-gone"} {
		k.pushTask(newTask(task, id, pending, "sleep", "300"))
		pids[task] = int(k.waitReport(t, task, running).GetPid())
	}
	a1.stop(t)
	for task, pid := range pids {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("%s (pid %d) did not survive the agent: %v", task, pid, err)
		}
	}
	// t-gone ends while no agent (and no driver) runs: the exec driver's
	// supervisor records its exit for the next agent.
	proc.SignalGroup(pids["t-gone"], syscall.SIGKILL)
	eventually(t, "t-gone reaped", func() bool { return processGone(pids["t-gone"]) })
	k.setExpected(
		newTask("t-keep", id, running, "sleep", "300"),
		newTask("t-gone", id, running, "sleep", "300"),
		newTask("t-ghost", id, running, "sleep", "300"),
		newTask("t-new", id, pending, "sleep", "300"),
	)

	a2 := startAgent(t, k, url, dataDir)
	reg := k.waitRegistrations(t, 2)
	if reg.GetAgentId() != id || a2.ID() != id {
		t.Errorf("re-registered as %q (ID() %q), want %q", reg.GetAgentId(), a2.ID(), id)
	}
	slices.Sort(reg.RunningTaskIds)
	if want := []string{"t-keep", "t-orphan"}; !slices.Equal(reg.RunningTaskIds, want) {
		t.Errorf("running_task_ids = %v, want %v", reg.RunningTaskIds, want)
	}
	// Not expected by the kernel: killed.
	k.waitReport(t, "t-orphan", killed)
	if !processGone(pids["t-orphan"]) {
		t.Error("t-orphan still runs")
	}
	// Ended while the agent was away: the supervisor kept its status.
	gone := k.waitReport(t, "t-gone", failed)
	if gone.GetReason() != "killed by signal SIGKILL" || gone.GetExitCode() != -1 {
		t.Errorf("t-gone reported %q exit %d, want %q exit -1", gone.GetReason(), gone.GetExitCode(), "killed by signal SIGKILL")
	}
	// Expected but unknown: lost.
	if r := k.waitReport(t, "t-ghost", lost); r.GetReason() != "task not found on agent after restart" {
		t.Errorf("t-ghost reason = %q", r.GetReason())
	}
	// Pending at registration: launched.
	k.waitReport(t, "t-new", running)
	// The re-adopted task can still be killed.
	if err := syscall.Kill(pids["t-keep"], 0); err != nil {
		t.Fatalf("t-keep died: %v", err)
	}
	k.pushTask(newTask("t-keep", id, killed, "sleep"))
	k.waitReport(t, "t-keep", killed)
	if !processGone(pids["t-keep"]) {
		t.Error("t-keep still runs after KILLED")
	}
}

func TestAgent_FinalStatusSurvivesRestart(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	dataDir := t.TempDir()
	a1 := startAgent(t, k, url, dataDir)
	k.pushTask(newTask("t-done", a1.ID(), pending, "sh", "-c", "while [ ! -e go ]; do sleep 0.05; done; exit 7"))
	k.waitReport(t, "t-done", running)
	// The kernel stops taking reports, the task ends, and the agent stops
	// before it could report the end.
	unavailable := connect.NewError(connect.CodeUnavailable, errors.New("kernel down"))
	k.script(&k.reportErrs, slices.Repeat([]error{unavailable}, 1000)...)
	sandbox := filepath.Join(dataDir, "sandboxes", "t-done")
	if err := os.WriteFile(filepath.Join(sandbox, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "final status in the checkpoint", func() bool {
		b, _ := os.ReadFile(filepath.Join(dataDir, "tasks", "t-done.json"))
		return strings.Contains(string(b), "TASK_STATE_FAILED")
	})
	a1.stop(t)
	k.mu.Lock()
	k.reportErrs = nil
	k.mu.Unlock()

	startAgent(t, k, url, dataDir)
	rep := k.waitReport(t, "t-done", failed)
	if rep.GetExitCode() != 7 || rep.GetReason() != "exit code 7" {
		t.Errorf("t-done reported %q exit %d, want \"exit code 7\" exit 7", rep.GetReason(), rep.GetExitCode())
	}
	eventually(t, "checkpoint removal", func() bool {
		_, err := os.Stat(filepath.Join(dataDir, "tasks", "t-done.json"))
		return errors.Is(err, os.ErrNotExist)
	})
}

func TestAgent_ReportRetry(t *testing.T) {
	t.Parallel()
	unavailable := connect.NewError(connect.CodeUnavailable, errors.New("kernel down"))
	tests := []struct {
		name string
		errs []error
		want []syscallsv1.TaskState
	}{
		{name: "unavailable thrice", errs: []error{unavailable, unavailable, unavailable},
			want: []syscallsv1.TaskState{starting, running, finished}},
		{name: "not found drops", errs: []error{connect.NewError(connect.CodeNotFound, errors.New("no such task"))},
			want: []syscallsv1.TaskState{running, finished}},
		{name: "invalid argument drops", errs: []error{connect.NewError(connect.CodeInvalidArgument, errors.New("bad"))},
			want: []syscallsv1.TaskState{running, finished}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, url := startFakeKernel(t)
			a := startAgent(t, k, url, "")
			k.script(&k.reportErrs, tt.errs...)
			k.pushTask(newTask("t-r", a.ID(), pending, "sh", "-c", "exit 0"))
			k.waitReport(t, "t-r", finished)
			if got := k.states("t-r"); !slices.Equal(got, tt.want) {
				t.Errorf("states = %v, want %v", got, tt.want)
			}
			k.mu.Lock()
			defer k.mu.Unlock()
			// Each refused call is one; the reports taken go one call
			// each or several in a batch (those queued meanwhile).
			if most, least := len(tt.want)+len(tt.errs), len(tt.errs)+1; k.reportCalls > most || k.reportCalls < least {
				t.Errorf("report calls = %d, want %d to %d", k.reportCalls, least, most)
			}
		})
	}
}

func TestAgent_Reregister(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		heartbeat error
	}{
		{name: "not found", heartbeat: connect.NewError(connect.CodeNotFound, errors.New("unknown agent"))},
		{name: "failed precondition", heartbeat: connect.NewError(connect.CodeFailedPrecondition, errors.New("agent lost"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, url := startFakeKernel(t)
			a := startAgent(t, k, url, "")
			k.pushTask(newTask("t-run", a.ID(), pending, "sleep", "300"))
			k.waitReport(t, "t-run", running)
			k.setExpected(newTask("t-run", a.ID(), running, "sleep", "300"))
			k.script(&k.heartbeatErrs, tt.heartbeat)
			reg := k.waitRegistrations(t, 2)
			if reg.GetAgentId() != a.ID() {
				t.Errorf("re-registered as %q, want %q", reg.GetAgentId(), a.ID())
			}
			if !slices.Equal(reg.GetRunningTaskIds(), []string{"t-run"}) {
				t.Errorf("running_task_ids = %v, want [t-run]", reg.GetRunningTaskIds())
			}
			// The task the kernel still expects keeps running and is
			// reported no further.
			k.pushTask(newTask("t-marker", a.ID(), pending, "true"))
			k.waitReport(t, "t-marker", finished)
			if got := k.states("t-run"); !slices.Equal(got, []syscallsv1.TaskState{starting, running}) {
				t.Errorf("t-run states = %v", got)
			}
		})
	}
}

func TestAgent_HeartbeatErrorKeepsRegistration(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	startAgent(t, k, url, "")
	k.script(&k.heartbeatErrs, connect.NewError(connect.CodeUnavailable, errors.New("blip")))
	k.mu.Lock()
	n := k.heartbeats
	k.mu.Unlock()
	k.waitFor(t, "three more heartbeats", func() bool { return k.heartbeats >= n+3 })
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.registrations) != 1 {
		t.Errorf("registrations = %d, want 1", len(k.registrations))
	}
}

func TestAgent_RegisterRetry(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	k.script(&k.registerErrs,
		connect.NewError(connect.CodeUnavailable, errors.New("starting")),
		connect.NewError(connect.CodeUnavailable, errors.New("starting")))
	a := startAgent(t, k, url, "")
	id, err := os.ReadFile(filepath.Join(a.dataDir, "agent-id"))
	if err != nil || strings.TrimSpace(string(id)) != a.ID() {
		t.Errorf("agent-id file = %q, %v; want %q", id, err, a.ID())
	}
}

// TestAgent_RegisterUnknownID: an agent whose saved id the kernel never
// issued (NotFound: the kernel's state is not the one it joined) joins as
// a new agent, with an empty id, and saves the id it gets.
func TestAgent_RegisterUnknownID(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "agent-id"), []byte("agent-77\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k.script(&k.registerErrs, connect.NewError(connect.CodeNotFound, errors.New(`agent_id: no agent "agent-77": the kernel never issued that id`)))
	a := startAgent(t, k, url, dir)
	k.mu.Lock()
	got := k.registrations[0].GetAgentId()
	k.mu.Unlock()
	if got != "" || a.ID() != "ag-1" {
		t.Errorf("registered with id %q as %s, want an empty id and the kernel's new ag-1", got, a.ID())
	}
	if id, err := os.ReadFile(filepath.Join(dir, "agent-id")); err != nil || strings.TrimSpace(string(id)) != "ag-1" {
		t.Errorf("agent-id file = %q, %v; want ag-1", id, err)
	}
}

func TestAgent_WatchResync(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	rev := k.pushTask(newTask("t-a", a.ID(), pending, "true"))
	k.waitReport(t, "t-a", finished)
	k.waitFor(t, "a watch", func() bool { return len(k.watchCalls) >= 1 })

	// A broken stream resumes after the last revision the agent saw.
	k.breakWatches()
	k.waitFor(t, "a second watch", func() bool { return len(k.watchCalls) >= 2 })
	k.mu.Lock()
	if got := k.watchCalls[1].GetAfterRevision(); got != rev {
		t.Errorf("resumed after revision %d, want %d", got, rev)
	}
	if got := k.watchCalls[1].GetAgentId(); got != a.ID() {
		t.Errorf("watch agent_id = %q, want %q", got, a.ID())
	}
	// Meanwhile the kernel compacted past it.
	k.revision = 41
	k.mu.Unlock()
	k.script(&k.watchErrs, resyncError(t, 41))
	k.breakWatches()
	k.waitRegistrations(t, 2)
	k.waitFor(t, "a watch after the resync", func() bool { return len(k.watchCalls) >= 4 })
	k.mu.Lock()
	if got := k.watchCalls[3].GetAfterRevision(); got != 41 {
		t.Errorf("watch after resync from revision %d, want 41", got)
	}
	k.mu.Unlock()
	// And it still launches.
	k.pushTask(newTask("t-b", a.ID(), pending, "true"))
	k.waitReport(t, "t-b", finished)
}

// TestAgent_WatchFellBehind: a stream the kernel ended because the agent
// fell behind (a resync error without a compact revision) resumes after
// the last revision seen, without registering again.
func TestAgent_WatchFellBehind(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	rev := k.pushTask(newTask("t-a", a.ID(), pending, "true"))
	k.waitReport(t, "t-a", finished)
	k.waitFor(t, "a watch", func() bool { return len(k.watchCalls) >= 1 })
	err := connect.NewError(connect.CodeFailedPrecondition, errors.New("watch: fell behind: 1024 events buffered; resume after revision 1"))
	d, derr := connect.NewErrorDetail(&syscallsv1.ResyncInfo{CurrentRevision: rev + 5})
	if derr != nil {
		t.Fatal(derr)
	}
	err.AddDetail(d)
	k.script(&k.watchErrs, err)
	k.breakWatches()
	k.waitFor(t, "two more watches", func() bool { return len(k.watchCalls) >= 3 })
	k.mu.Lock()
	if got := k.watchCalls[2].GetAfterRevision(); got != rev {
		t.Errorf("watch after falling behind from revision %d, want %d (the last seen)", got, rev)
	}
	if n := len(k.registrations); n != 1 {
		t.Errorf("%d registrations, want 1 (falling behind is not a resync)", n)
	}
	k.mu.Unlock()
	k.pushTask(newTask("t-b", a.ID(), pending, "true"))
	k.waitReport(t, "t-b", finished)
}

func TestAgent_Run(t *testing.T) {
	// Not parallel: it counts the package's goroutines.
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	k.pushTask(newTask("t-leak", a.ID(), pending, "sleep", "300"))
	run := k.waitReport(t, "t-leak", running)
	a.stop(t)
	if err := syscall.Kill(int(run.GetPid()), 0); err != nil {
		t.Errorf("task did not survive Run: %v", err)
	}
	eventually(t, "no agent goroutines", func() bool {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "agent.(*Agent)") && !strings.Contains(stacks, "agent.(*reportQueue)")
	})
	if err := a.Run(context.Background()); err == nil {
		t.Error("second Run returned nil, want an error")
	}
}

// TestAgent_BridgeWithoutNetDriver: a task asking for its own network on an
// agent without a net driver fails to start, saying why, and leaves
// nothing behind.
func TestAgent_BridgeWithoutNetDriver(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	task := newTask("t-net", a.ID(), pending, "sleep", "300")
	task.Network = "bridge"
	k.pushTask(task)
	r := k.waitReport(t, "t-net", failed)
	if !strings.Contains(r.GetReason(), "no network driver") {
		t.Errorf("reason = %q, want one saying the agent has no network driver", r.GetReason())
	}
}
