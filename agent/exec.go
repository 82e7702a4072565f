package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/agent/internal/hostos"
	"github.com/dcos-kernel/dcos/ebpf"
	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// defaultPath is the tasks' PATH when the agent has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultDriver runs tasks that name no driver.
const DefaultDriver = "exec"

// reasonUnknownExit is the reason of a task whose exit status nobody
// knows (it ended while neither the agent nor its driver's supervisor
// watched it).
const reasonUnknownExit = "exit status unknown: task exited while the agent was restarting"

// reasonOOM prefixes the reason of a task the kernel's OOM killer killed.
const reasonOOM = "OOM"

type taskState int

const (
	// taskStarting: known, its process is being started.
	taskStarting taskState = iota
	// taskRunning: its driver runs it and a goroutine waits for its end.
	taskRunning
	// taskExited: it ended; the final report is queued.
	taskExited
)

// task is the agent's record of one task. Its fields are guarded by
// Agent.mu, except the ones set before the task is shared.
type task struct {
	id, allocID, sandbox, driver string
	limits                       contract.Resources

	state      taskState
	pid        int
	handle     []byte // contract.MarshalHandle of the driver's handle
	isolated   bool   // the isolator prepared a container for it
	killReason string // set once a kill is requested
	exited     chan struct{}
	// killGrace is the task's own time between SIGTERM and SIGKILL
	// (Task.kill_grace_period); nil means the agent's.
	killGrace *time.Duration

	// How long the start took, by step (for the log).
	isolateTook, startTook time.Duration

	// Network accounting (netacct.go): the cgroup v2 directory counted and
	// its attachment.
	netDir string
	netAt  *ebpf.Attachment

	// Networking (network.go): the mode the task asked for, the ports it
	// asked for, and what its net driver set up (nil: the node's network).
	network   string
	wantPorts []*syscallsv1.PortMapping
	net       *contract.NetworkStatus

	// Storage (storage.go): the sandbox from the storage driver, or nil.
	storage *contract.Sandbox

	// Health checks (health.go): what the probes need (nil: no check),
	// when the task started (for the grace period), the task's cgroups
	// (for command checks), and the running probes.
	checks      *syscallsv1.Task
	started     time.Time
	cgroups     []string
	probeCancel context.CancelFunc
	probeDone   chan struct{}
}

// statusLocked returns a report of state for t. Agent.mu must be held.
func (t *task) statusLocked(state syscallsv1.TaskState) *syscallsv1.ReportTaskStatusRequest {
	r := &syscallsv1.ReportTaskStatusRequest{
		TaskId: t.id, State: state, Pid: int32(t.pid), Sandbox: t.sandbox,
	}
	if state == syscallsv1.TaskState_TASK_STATE_RUNNING {
		t.netReport(r)
	}
	return r
}

func (t *task) checkpoint() checkpoint {
	return checkpoint{
		TaskID: t.id, AllocationID: t.allocID, PID: t.pid, Sandbox: t.sandbox,
		Driver: t.driver, Handle: t.handle, Isolated: t.isolated, Limits: t.limits, NetCgroup: t.netDir,
		Network: t.network, Net: t.net, Storage: t.storage,
		Checks: marshalChecks(t.checks), Started: t.started, Cgroups: t.cgroups,
		KillGrace: t.killGrace,
	}
}

// graceOf returns tk's kill grace period: its own when set, else the
// agent's.
func (a *Agent) graceOf(tk *task) time.Duration {
	if tk.killGrace != nil {
		return *tk.killGrace
	}
	return a.killGrace
}

// launch starts task t unless the agent already runs it or ran it
// recently. It reports STARTING at once, then (in the background) RUNNING
// with the pid and sandbox, or FAILED when the task cannot start.
func (a *Agent) launch(t *syscallsv1.Task) {
	id := t.GetId()
	a.mu.Lock()
	if _, ok := a.tasks[id]; ok || a.finished.has(id) {
		a.mu.Unlock()
		return
	}
	tk := &task{id: id, allocID: t.GetAllocationId(), driver: t.GetDriver(), exited: make(chan struct{}),
		limits: contract.Resources{CPUs: t.GetResources().GetCpus(), MemBytes: t.GetResources().GetMemBytes(),
			CPUIdle: t.GetCpuClass() == syscallsv1.CpuClass_CPU_CLASS_IDLE, CPUSet: t.GetCpuset()},
		network: t.GetNetwork(), wantPorts: t.GetPorts(), checks: checkSpec(t)}
	if g := t.GetKillGracePeriod(); g != nil {
		d := g.AsDuration()
		tk.killGrace = &d
	}
	if tk.driver == "" {
		tk.driver = DefaultDriver
	}
	if validTaskID(id) == nil && a.storage == "" {
		tk.sandbox = filepath.Join(a.sandboxDir, id) // else the storage driver's
	}
	a.tasks[id] = tk
	a.mu.Unlock()

	a.reports.push(report{req: &syscallsv1.ReportTaskStatusRequest{
		TaskId: id, State: syscallsv1.TaskState_TASK_STATE_STARTING, Sandbox: tk.sandbox,
	}})
	a.wg.Go(func() {
		select {
		case a.launching <- struct{}{}:
		case <-a.stop:
			return // the next agent relaunches it: the kernel still has it PENDING or STARTING
		}
		defer func() { <-a.launching }()
		a.start(tk, t)
	})
}

// start runs tk through the launch pipeline (runner.go) and reports the
// outcome. A start the agent's stop interrupts is torn down and not
// reported: the task is simply not running when the next agent registers
// (see abandon).
func (a *Agent) start(tk *task, t *syscallsv1.Task) {
	r := a.newRun(tk, t)
	err := a.runStart(a.ctx, r)
	if err != nil && a.ctx.Err() != nil {
		a.abandon(tk, err)
		return
	}
	a.metrics.started(err)
	if err != nil {
		a.log.Warn("task failed to start", "task", tk.id, "driver", tk.driver, "err", err)
		close(tk.exited)
		a.finish(tk, syscallsv1.TaskState_TASK_STATE_FAILED, err.Error(), -1)
		return
	}
	a.mu.Lock()
	tk.state, tk.started = taskRunning, time.Now()
	cp, running := tk.checkpoint(), tk.statusLocked(syscallsv1.TaskState_TASK_STATE_RUNNING)
	killReason := tk.killReason
	a.mu.Unlock()
	if err := a.checkpoints.save(cp); err != nil {
		a.log.Error("cannot checkpoint task; it will not be recovered if the agent restarts", "task", tk.id, "err", err)
	}
	a.log.Info("task running", "task", tk.id, "driver", tk.driver, "pid", cp.PID, "sandbox", tk.sandbox,
		"isolate", tk.isolateTook, "start", tk.startTook)
	a.reports.push(report{req: running})
	a.wg.Go(func() { a.wait(tk) })
	a.runRunning(r)
	if killReason != "" {
		a.wg.Go(func() { a.terminate(tk) })
	}
}

// abandon drops tk, whose start the agent's stop interrupted (err) and
// runStart tore down: no report and no checkpoint, as the task does not
// run. The kernel still has it PENDING or STARTING; the next agent's
// registration reconciles it (a PENDING task is launched again, a STARTING
// one the agent does not know is reported LOST).
func (a *Agent) abandon(tk *task, err error) {
	a.log.Info("agent stopping: task start interrupted and torn down", "task", tk.id, "driver", tk.driver, "err", err)
	close(tk.exited)
	a.mu.Lock()
	tk.state = taskExited
	delete(a.tasks, tk.id)
	a.mu.Unlock()
}

// startWith starts cfg with drv; a driver that answers no handle has its
// task destroyed and the start fails.
func startWith(ctx context.Context, drv contract.Driver, cfg *contract.TaskConfig) (*contract.TaskHandle, error) {
	h, err := drv.StartTask(ctx, cfg)
	if err == nil && h == nil {
		drv.DestroyTask(ctx, cfg.ID, true)
		err = errors.New("driver answered StartTask without a handle")
	}
	return h, err
}

// capabilities returns driver name's capabilities, asked once per driver
// process.
func (a *Agent) capabilities(name string, drv contract.Driver) (*contract.Capabilities, error) {
	a.capsMu.Lock()
	c := a.caps[name]
	a.capsMu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := drv.Capabilities(a.ctx)
	if err != nil {
		return nil, err
	}
	a.capsMu.Lock()
	a.caps[name] = c
	a.capsMu.Unlock()
	return c, nil
}

func (a *Agent) setHandle(tk *task, h *contract.TaskHandle) error {
	b, err := contract.MarshalHandle(h)
	if err != nil {
		return err
	}
	a.mu.Lock()
	tk.handle, tk.pid = b, h.PID
	a.mu.Unlock()
	return nil
}

// taskConfig builds the driver's view of t: its sandbox (created), working
// dir, environment and output files.
func (a *Agent) taskConfig(t *syscallsv1.Task, sandbox string) (*contract.TaskConfig, error) {
	if err := validTaskID(t.GetId()); err != nil {
		return nil, err
	}
	// An empty command is the driver's to judge: the exec driver refuses
	// it, an image driver runs the image's entrypoint.
	if err := os.MkdirAll(sandbox, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	dir := t.GetWorkingDir()
	switch {
	case dir == "":
		dir = sandbox
	case !filepath.IsAbs(dir):
		if !filepath.IsLocal(dir) {
			return nil, fmt.Errorf("working_dir %q: escapes the sandbox", dir)
		}
		dir = filepath.Join(sandbox, dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("working_dir: %w", err)
		}
	}
	env := map[string]string{}
	for _, kv := range taskEnv(t, sandbox, os.Getenv("PATH")) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return &contract.TaskConfig{
		ID: t.GetId(), Name: t.GetId(), Command: t.GetCommand(), Args: t.GetArgs(), Env: env, WorkDir: dir,
		DriverConfig: []byte(t.GetDriverConfig()),
		StdoutPath:   filepath.Join(sandbox, "stdout"), StderrPath: filepath.Join(sandbox, "stderr"),
		LogMaxBytes: cmp.Or(t.GetLogs().GetMaxBytes(), a.logMaxBytes),
		LogMaxFiles: cmp.Or(int(t.GetLogs().GetMaxFiles()), a.logMaxFiles),
	}, nil
}

// taskEnv is a task's environment: PATH (the agent's, or defaultPath),
// HOME (the sandbox), DCOS_TASK_ID, DCOS_ALLOCATION_ID, DCOS_SANDBOX, then
// the task's own variables in name order, which win over the ones before.
func taskEnv(t *syscallsv1.Task, sandbox, agentPath string) []string {
	if agentPath == "" {
		agentPath = defaultPath
	}
	base := map[string]string{
		"PATH":               agentPath,
		"HOME":               sandbox,
		"DCOS_TASK_ID":       t.GetId(),
		"DCOS_ALLOCATION_ID": t.GetAllocationId(),
		"DCOS_SANDBOX":       sandbox,
	}
	env := []string{
		"PATH=" + agentPath, "HOME=" + sandbox, "DCOS_TASK_ID=" + t.GetId(),
		"DCOS_ALLOCATION_ID=" + t.GetAllocationId(), "DCOS_SANDBOX=" + sandbox,
	}
	for _, k := range slices.Sorted(maps.Keys(t.GetEnv())) {
		v := t.GetEnv()[k]
		if _, ok := base[k]; ok {
			env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
		}
		env = append(env, k+"="+v)
	}
	return env
}

// validTaskID checks that id can name a file: task ids become sandbox and
// checkpoint names.
func validTaskID(id string) error {
	if id == "" || id == "." || len(id) > 200 || strings.ContainsAny(id, "/\x00") || !filepath.IsLocal(id) {
		return fmt.Errorf("task id %q cannot name a sandbox", id)
	}
	return nil
}

// wait waits for tk to end through its driver and reports how it ended.
// When the driver's plugin restarts, it reattaches to the task from its
// handle and waits again. When the agent stops first, it returns and
// leaves the task running.
func (a *Agent) wait(tk *task) {
	bo := newBackoff()
	for {
		drv, err := a.plugins.Driver(tk.driver)
		var res *contract.ExitResult
		if err == nil {
			res, err = drv.WaitTask(a.ctx, tk.id)
		}
		if a.ctx.Err() != nil {
			return
		}
		if err == nil {
			a.ended(tk, res)
			return
		}
		if errors.Is(err, contract.ErrTaskNotFound) || errors.Is(err, contract.ErrPluginExited) {
			// A restarted driver does not know the task yet.
			if a.reattachOrLose(tk, "its driver restarted") {
				return
			}
		} else {
			a.log.Warn("waiting for task failed; retrying", "task", tk.id, "driver", tk.driver, "err", err)
		}
		if !sleep(a.ctx, bo.next()) {
			return
		}
	}
}

// reattachOrLose hands tk back to its driver after why ("the agent
// restarted"). A driver that can never take it (no recovery, unknown
// handle version) makes the task LOST, and it reports true; other errors
// are logged and left to wait, which retries.
func (a *Agent) reattachOrLose(tk *task, why string) (lost bool) {
	err := a.reattach(tk)
	switch {
	case err == nil:
		a.log.Info("reattached to task", "task", tk.id, "driver", tk.driver, "pid", tk.pid, "after", why)
		return false
	case errors.Is(err, contract.ErrNotSupported) || errors.Is(err, contract.ErrHandleVersion):
		a.log.Warn("cannot reattach to task; counting it lost", "task", tk.id, "driver", tk.driver, "after", why, "err", err)
		a.lost(tk, fmt.Sprintf("driver %q cannot recover the task after %s: %v", tk.driver, why, err))
		return true
	default:
		a.log.Warn("cannot reattach to task yet; retrying", "task", tk.id, "driver", tk.driver, "after", why, "err", err)
		return false
	}
}

// recordedExit is how tk exited if its driver, having just recovered
// it, already knows; nil if it runs or the driver cannot tell at once.
func (a *Agent) recordedExit(tk *task) *contract.ExitResult {
	drv, err := a.plugins.Driver(tk.driver)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(a.ctx, callTimeout)
	defer cancel()
	st, err := drv.InspectTask(ctx, tk.id)
	if err != nil || st.State != contract.TaskStateExited || st.ExitResult == nil {
		return nil
	}
	return st.ExitResult
}

// reattach hands tk's checkpointed handle to its driver.
func (a *Agent) reattach(tk *task) error {
	a.mu.Lock()
	b := tk.handle
	a.mu.Unlock()
	h, err := contract.UnmarshalHandle(b)
	if err != nil {
		return fmt.Errorf("%w: %v", contract.ErrHandleVersion, err)
	}
	drv, err := a.plugins.Driver(tk.driver)
	if err != nil {
		return err
	}
	return drv.RecoverTask(a.ctx, h)
}

// ended classifies how tk ended, releases its driver and isolator state
// and reports it.
func (a *Agent) ended(tk *task, res *contract.ExitResult) {
	a.mu.Lock()
	killReason, isolated := tk.killReason, tk.isolated
	a.mu.Unlock()
	ctx := a.ctx
	var oom string
	if isolated {
		if iso, err := a.plugins.Isolator(a.isolator); err == nil {
			if u, err := iso.Usage(ctx, tk.id); err == nil && u.OOMKills > 0 && res.Signal == int(syscall.SIGKILL) {
				oom = fmt.Sprintf("%s: killed for exceeding its memory limit of %d bytes", reasonOOM, tk.limits.MemBytes)
			}
		}
	}
	state, reason, code := classify(res, killReason, oom)
	a.release(tk) // stops the probes first: no health report may follow the final one
	close(tk.exited)
	a.log.Info("task ended", "task", tk.id, "state", state, "reason", reason)
	a.finish(tk, state, reason, code)
}

// lost reports tk LOST: the agent can no longer watch it.
func (a *Agent) lost(tk *task, reason string) {
	a.release(tk)
	close(tk.exited)
	a.finish(tk, syscallsv1.TaskState_TASK_STATE_LOST, reason, -1)
}

// release unwinds tk's launch pipeline (runner.go): probes, driver,
// isolation and accounting, network, sandbox (all idempotent).
func (a *Agent) release(tk *task) {
	a.runTeardown(a.adopted(tk))
}

// classify turns how a task ended into a task state, reason and exit code.
// oom, if set, is the reason of an OOM kill.
func classify(res *contract.ExitResult, killReason, oom string) (syscallsv1.TaskState, string, int32) {
	switch {
	case killReason != "":
		return syscallsv1.TaskState_TASK_STATE_KILLED, killReason, int32(res.ExitCode)
	case oom != "" || res.OOMKilled:
		if oom == "" {
			oom = reasonOOM + ": killed for exceeding its memory limit"
		}
		return syscallsv1.TaskState_TASK_STATE_FAILED, oom, -1
	case res.Err != "":
		return syscallsv1.TaskState_TASK_STATE_FAILED, res.Err, int32(res.ExitCode)
	case res.Signal != 0:
		return syscallsv1.TaskState_TASK_STATE_FAILED, "killed by signal " + hostos.SignalName(res.Signal), -1
	case res.ExitCode == 0:
		return syscallsv1.TaskState_TASK_STATE_FINISHED, "exit code 0", 0
	default:
		return syscallsv1.TaskState_TASK_STATE_FAILED, fmt.Sprintf("exit code %d", res.ExitCode), int32(res.ExitCode)
	}
}

// finish records tk's final status in its checkpoint and queues the final
// report; once the kernel has it, the checkpoint is removed and the task
// forgotten.
func (a *Agent) finish(tk *task, state syscallsv1.TaskState, reason string, code int32) {
	a.metrics.taskEnded(state)
	a.mu.Lock()
	tk.state = taskExited
	req := tk.statusLocked(state)
	req.Reason, req.ExitCode = reason, code
	cp := tk.checkpoint()
	a.mu.Unlock()
	cp.Final = &finalStatus{State: state.String(), Reason: reason, ExitCode: code}
	if validTaskID(tk.id) == nil {
		if err := a.checkpoints.save(cp); err != nil {
			a.log.Error("cannot checkpoint final task status", "task", tk.id, "err", err)
		}
	}
	a.reports.push(report{req: req, done: func() { a.forget(tk.id) }})
}

// forget drops a task whose final report the kernel has.
func (a *Agent) forget(id string) {
	if validTaskID(id) == nil {
		if err := a.checkpoints.remove(id); err != nil {
			a.log.Error("cannot remove checkpoint", "task", id, "err", err)
		}
	}
	a.mu.Lock()
	delete(a.tasks, id)
	a.finished.add(id)
	a.mu.Unlock()
}

// kill asks task id to stop: SIGTERM, SIGKILL after its kill grace period
// (the task's own, else the agent's KillGrace); its end is reported KILLED
// with reason. Unknown, ended or already killed tasks are left alone.
// Idempotent.
func (a *Agent) kill(id, reason string) {
	a.mu.Lock()
	tk := a.tasks[id]
	if tk == nil || tk.state == taskExited || tk.killReason != "" {
		a.mu.Unlock()
		return
	}
	tk.killReason = reason
	starting := tk.state == taskStarting
	a.mu.Unlock()
	a.log.Info("killing task", "task", id, "reason", reason)
	if !starting { // else start terminates it once it runs
		a.wg.Go(func() { a.terminate(tk) })
	}
}

// terminate stops tk through its driver; wait reports the end. If the
// agent stops first, the driver finishes the kill sequence on its own.
func (a *Agent) terminate(tk *task) {
	bo := newBackoff()
	for {
		drv, err := a.plugins.Driver(tk.driver)
		if err == nil {
			err = drv.StopTask(a.ctx, tk.id, a.graceOf(tk), "SIGTERM")
		}
		if err == nil || a.ctx.Err() != nil {
			return
		}
		select {
		case <-tk.exited:
			return
		default:
		}
		a.log.Warn("stopping task failed; retrying", "task", tk.id, "driver", tk.driver, "err", err)
		if errors.Is(err, contract.ErrTaskNotFound) {
			if rerr := a.reattach(tk); rerr != nil {
				a.log.Warn("cannot reattach to task to stop it", "task", tk.id, "err", rerr)
			}
		}
		if !sleep(a.ctx, bo.next()) {
			return
		}
	}
}

// recover loads the checkpoints of an earlier agent: tasks still running
// are handed back to their drivers (RecoverTask) and waited for again;
// tasks that ended are queued for a final report. The isolator is told
// which containers are still live, so it can remove the rest.
func (a *Agent) recover() error {
	cps, bad, err := a.checkpoints.load()
	if err != nil {
		return err
	}
	for _, err := range bad {
		a.log.Error("ignoring unreadable checkpoint", "err", err)
	}
	var live []*task
	for _, cp := range cps {
		tk := &task{id: cp.TaskID, allocID: cp.AllocationID, sandbox: cp.Sandbox, pid: cp.PID, driver: cp.Driver,
			handle: cp.Handle, isolated: cp.Isolated, limits: cp.Limits, netDir: cp.NetCgroup,
			network: cp.Network, net: cp.Net, storage: cp.Storage, exited: make(chan struct{}),
			started: cp.Started, cgroups: cp.Cgroups, killGrace: cp.KillGrace}
		if checks, err := unmarshalChecks(cp.Checks); err != nil {
			a.log.Error("recovered task runs without its health checks", "task", cp.TaskID, "err", err)
		} else {
			tk.checks = checks
		}
		a.mu.Lock()
		a.tasks[tk.id] = tk
		a.mu.Unlock()
		if cp.Final != nil {
			a.log.Info("recovered ended task; reporting it", "task", tk.id, "state", cp.Final.State)
			close(tk.exited)
			a.finish(tk, cp.Final.taskState(), cp.Final.Reason, cp.Final.ExitCode)
			continue
		}
		tk.state = taskRunning
		live = append(live, tk)
	}
	a.recoverIsolation()
	a.recoverStorage()
	a.netRecover(live)
	a.recoverNetwork(live)
	for _, tk := range live {
		if a.reattachOrLose(tk, "the agent restarted") {
			continue
		}
		// A task that ended while no agent ran (its driver recorded the
		// exit) ends now, before the agent registers: the kernel must not
		// hear that it runs.
		if res := a.recordedExit(tk); res != nil {
			a.ended(tk, res)
			continue
		}
		a.wg.Go(func() { a.wait(tk) })
		a.runRunning(a.adopted(tk))
	}
	return nil
}

// recoverIsolation tells the isolator which of the agent's containers are
// live (after an agent or isolator restart); it removes the others.
func (a *Agent) recoverIsolation() {
	if a.isolator == "" {
		return
	}
	iso, err := a.plugins.Isolator(a.isolator)
	if err != nil {
		a.log.Error("isolator unavailable; cannot recover task isolation", "isolator", a.isolator, "err", err)
		return
	}
	a.mu.Lock()
	var states []contract.ContainerState
	for _, tk := range a.tasks {
		if tk.isolated && tk.state != taskExited {
			states = append(states, contract.ContainerState{ContainerID: tk.id, PID: tk.pid, Limits: tk.limits})
		}
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(a.ctx, callTimeout)
	defer cancel()
	if err := iso.Recover(ctx, states); err != nil {
		a.log.Error("isolator could not recover containers", "isolator", a.isolator, "err", err)
	}
}

// PluginRestarted is the plugin host's hook: after the isolator restarts,
// it is told again which containers are live; a restarted driver's
// capabilities are asked again. (Its tasks are handled by wait, which
// reattaches each task from its handle.)
func (a *Agent) PluginRestarted(kind, name string) {
	if kind == contract.KindDriver {
		a.capsMu.Lock()
		delete(a.caps, name)
		a.capsMu.Unlock()
	}
	if kind == contract.KindIsolator && name == a.isolator && a.ctx != nil && a.ctx.Err() == nil {
		a.recoverIsolation()
	}
	if kind == contract.KindStorage && name == a.storage && a.ctx != nil && a.ctx.Err() == nil {
		a.recoverStorage()
	}
}

// usage samples the resource use of the agent's running tasks: from the
// isolator for isolated tasks, else from their driver (drivers that cannot
// tell are skipped).
func (a *Agent) usage(ctx context.Context) []*syscallsv1.TaskUsage {
	a.mu.Lock()
	var running []*task
	for _, tk := range a.tasks {
		if tk.state == taskRunning {
			running = append(running, tk)
		}
	}
	a.mu.Unlock()
	var out []*syscallsv1.TaskUsage
	for _, tk := range running {
		var u *contract.TaskUsage
		var err error
		if tk.isolated {
			var iso contract.Isolator
			if iso, err = a.plugins.Isolator(a.isolator); err == nil {
				u, err = iso.Usage(ctx, tk.id)
			}
		} else {
			var drv contract.Driver
			if drv, err = a.plugins.Driver(tk.driver); err == nil {
				u, err = drv.TaskStats(ctx, tk.id)
			}
		}
		if err != nil || u == nil {
			continue
		}
		at := u.Timestamp
		if at.IsZero() {
			at = time.Now()
		}
		s := &syscallsv1.TaskUsage{
			TaskId: tk.id, Sampled: timestamppb.New(at), CpuNs: u.CPUUserNanos + u.CPUSystemNanos,
			MemBytes: u.MemoryRSSBytes, MemPeakBytes: u.MemoryPeakBytes, Pids: u.PIDs, OomKills: u.OOMKills,
		}
		a.netUsage(tk, s)
		out = append(out, s)
	}
	return out
}
