package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dcos-kernel/dcos/agent/internal/hostos"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// defaultPath is the tasks' PATH when the agent has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// reasonUnknownExit is the reason of a task whose exit status the agent
// cannot know: it was started by an earlier agent process.
const reasonUnknownExit = "exit status unknown: task exited while the agent was restarting"

type taskState int

const (
	// taskStarting: known, its process is being started.
	taskStarting taskState = iota
	// taskRunning: its process runs and a goroutine supervises it.
	taskRunning
	// taskExited: its process is gone; the final report is queued.
	taskExited
)

// task is the agent's record of one task. Its fields are guarded by
// Agent.mu, except the ones set before the task is shared.
type task struct {
	id, allocID, sandbox string

	state      taskState
	pid        int
	start      uint64
	proc       *hostos.Process
	killReason string        // set once a kill is requested
	reaped     bool          // the process is gone for good: never signal pid again
	exited     chan struct{} // closed when the process is gone
}

// statusLocked returns a report of state for t. Agent.mu must be held.
func (t *task) statusLocked(state syscallsv1.TaskState) *syscallsv1.ReportTaskStatusRequest {
	return &syscallsv1.ReportTaskStatusRequest{
		TaskId: t.id, State: state, Pid: int32(t.pid), Sandbox: t.sandbox,
	}
}

func (t *task) checkpoint() checkpoint {
	return checkpoint{TaskID: t.id, AllocationID: t.allocID, PID: t.pid, StartTime: t.start, Sandbox: t.sandbox}
}

// launch starts task t unless the agent already runs it or ran it
// recently. It reports STARTING, then RUNNING with the pid and sandbox, or
// FAILED when the process cannot start.
func (a *Agent) launch(t *syscallsv1.Task) {
	id := t.GetId()
	a.mu.Lock()
	if _, ok := a.tasks[id]; ok || a.finished.has(id) {
		a.mu.Unlock()
		return
	}
	tk := &task{id: id, allocID: t.GetAllocationId(), exited: make(chan struct{})}
	if validTaskID(id) == nil {
		tk.sandbox = filepath.Join(a.sandboxDir, id)
	}
	a.tasks[id] = tk
	a.mu.Unlock()

	a.reports.push(report{req: &syscallsv1.ReportTaskStatusRequest{
		TaskId: id, State: syscallsv1.TaskState_TASK_STATE_STARTING, Sandbox: tk.sandbox,
	}})
	pid, err := a.start(t, tk.sandbox)
	if err != nil {
		a.log.Warn("task failed to start", "task", id, "err", err)
		a.finish(tk, syscallsv1.TaskState_TASK_STATE_FAILED, err.Error(), -1)
		return
	}
	start, err := hostos.ProcStartTime(pid)
	var proc *hostos.Process
	if err == nil {
		proc, err = hostos.OpenProcess(pid, start)
	}
	if err != nil {
		// Our own child cannot be gone before we reap it; this is a host
		// problem (no /proc?). Kill it rather than run it unsupervised.
		hostos.SignalGroup(pid, syscall.SIGKILL)
		syscall.Wait4(pid, nil, 0, nil)
		a.finish(tk, syscallsv1.TaskState_TASK_STATE_FAILED, fmt.Sprintf("cannot supervise process %d: %v", pid, err), -1)
		return
	}
	a.mu.Lock()
	tk.pid, tk.start, tk.proc, tk.state = pid, start, proc, taskRunning
	cp, running := tk.checkpoint(), tk.statusLocked(syscallsv1.TaskState_TASK_STATE_RUNNING)
	killReason := tk.killReason
	a.mu.Unlock()
	if err := a.checkpoints.save(cp); err != nil {
		a.log.Error("cannot checkpoint task; it will not be recovered if the agent restarts", "task", id, "err", err)
	}
	a.log.Info("task running", "task", id, "pid", pid, "sandbox", tk.sandbox)
	a.reports.push(report{req: running})
	a.wg.Go(func() { a.supervise(tk) })
	if killReason != "" {
		a.wg.Go(func() { a.terminate(tk) })
	}
}

// start starts the process of t in sandbox and returns its pid. The
// process runs in its own process group, without a shell, with stdout and
// stderr appended to files in the sandbox.
func (a *Agent) start(t *syscallsv1.Task, sandbox string) (int, error) {
	if err := validTaskID(t.GetId()); err != nil {
		return 0, err
	}
	if t.GetCommand() == "" {
		return 0, errors.New("command is empty")
	}
	if err := os.MkdirAll(sandbox, 0o755); err != nil {
		return 0, fmt.Errorf("sandbox: %w", err)
	}
	dir := t.GetWorkingDir()
	switch {
	case dir == "":
		dir = sandbox
	case !filepath.IsAbs(dir):
		if !filepath.IsLocal(dir) {
			return 0, fmt.Errorf("working_dir %q: escapes the sandbox", dir)
		}
		dir = filepath.Join(sandbox, dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return 0, fmt.Errorf("working_dir: %w", err)
		}
	}
	env := taskEnv(t, sandbox, os.Getenv("PATH"))
	path, err := lookPath(t.GetCommand(), envValue(env, "PATH"), dir)
	if err != nil {
		return 0, err
	}
	stdout, err := os.OpenFile(filepath.Join(sandbox, "stdout"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("sandbox: %w", err)
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(filepath.Join(sandbox, "stderr"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("sandbox: %w", err)
	}
	defer stderr.Close()
	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string{t.GetCommand()}, t.GetArgs()...),
		Env:         env,
		Dir:         dir,
		Stdout:      stdout,
		Stderr:      stderr,
		SysProcAttr: hostos.GroupAttr(),
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	pid := cmd.Process.Pid
	// The agent supervises the process through its pid (hostos.Process);
	// the os.Process handle is not needed. Release does not reap.
	cmd.Process.Release()
	return pid, nil
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

// envValue returns the value of key in env, or "".
func envValue(env []string, key string) string {
	for _, kv := range slices.Backward(env) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lookPath resolves a command as a shell would with PATH path: a name with
// a slash is used as is (relative to dir), other names are searched in
// path. Errors name the command.
func lookPath(command, path, dir string) (string, error) {
	isExec := func(p string) error {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fs.ErrPermission
		}
		return nil
	}
	if strings.Contains(command, "/") {
		if err := isExec(command); err != nil {
			return "", fmt.Errorf("command %q: %w", command, err)
		}
		return command, nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			continue // relative PATH entries would depend on the working dir
		}
		if p := filepath.Join(d, command); isExec(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q: %w in PATH %q", command, exec.ErrNotFound, path)
}

// validTaskID checks that id can name a file: task ids become sandbox and
// checkpoint names.
func validTaskID(id string) error {
	if id == "" || id == "." || len(id) > 200 || strings.ContainsAny(id, "/\x00") || !filepath.IsLocal(id) {
		return fmt.Errorf("task id %q cannot name a sandbox", id)
	}
	return nil
}

// supervise waits for tk's process to end, then kills what is left of its
// process group, reaps it and reports the final state. When the agent
// stops first, it returns and leaves the task running.
func (a *Agent) supervise(tk *task) {
	err := tk.proc.WaitExited(a.stop)
	if errors.Is(err, hostos.ErrStopped) {
		tk.proc.Close()
		return
	}
	if err != nil {
		a.log.Error("cannot watch task process; it is no longer supervised", "task", tk.id, "pid", tk.pid, "err", err)
		tk.proc.Close()
		return
	}
	a.mu.Lock()
	// Stragglers of the process group die with the task's main process.
	exit := tk.proc.Reap(true)
	tk.reaped = true
	killReason := tk.killReason
	a.mu.Unlock()
	tk.proc.Close()
	close(tk.exited)

	state, reason, code := classify(exit, killReason)
	a.log.Info("task ended", "task", tk.id, "state", state, "reason", reason)
	a.finish(tk, state, reason, code)
}

// classify turns how a process ended into a task state, reason and exit
// code.
func classify(exit hostos.Exit, killReason string) (syscallsv1.TaskState, string, int32) {
	switch {
	case killReason != "":
		return syscallsv1.TaskState_TASK_STATE_KILLED, killReason, int32(exit.Code)
	case !exit.Known:
		return syscallsv1.TaskState_TASK_STATE_FAILED, reasonUnknownExit, -1
	case exit.Signal != 0:
		return syscallsv1.TaskState_TASK_STATE_FAILED, "killed by signal " + hostos.SignalName(exit.Signal), -1
	case exit.Code == 0:
		return syscallsv1.TaskState_TASK_STATE_FINISHED, "exit code 0", 0
	default:
		return syscallsv1.TaskState_TASK_STATE_FAILED, fmt.Sprintf("exit code %d", exit.Code), int32(exit.Code)
	}
}

// finish records tk's final status in its checkpoint and queues the final
// report; once the kernel has it, the checkpoint is removed and the task
// forgotten.
func (a *Agent) finish(tk *task, state syscallsv1.TaskState, reason string, code int32) {
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

// kill asks task id to stop: SIGTERM to its process group, SIGKILL after
// the grace period; its end is reported KILLED with reason. Unknown,
// ended or already killed tasks are left alone. Idempotent.
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
	if !starting { // else launch terminates it once it started
		a.wg.Go(func() { a.terminate(tk) })
	}
}

// terminate runs the kill sequence of tk. If the agent stops during the
// grace period, it sends SIGKILL at once: the kernel already counts the
// task as killed.
func (a *Agent) terminate(tk *task) {
	a.signal(tk, syscall.SIGTERM)
	t := time.NewTimer(a.killGrace)
	defer t.Stop()
	select {
	case <-tk.exited:
		return
	case <-t.C:
	case <-a.stop:
	}
	a.signal(tk, syscall.SIGKILL)
}

// signal sends sig to tk's process group unless its process is reaped
// (its pid might name another process by now).
func (a *Agent) signal(tk *task, sig syscall.Signal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if tk.reaped || tk.pid == 0 {
		return
	}
	if err := hostos.SignalGroup(tk.pid, sig); err != nil {
		a.log.Warn("cannot signal task", "task", tk.id, "signal", sig, "err", err)
	}
}

// recover loads the checkpoints of an earlier agent: tasks whose process
// still runs are re-adopted; tasks that ended are queued for a final
// report (the recorded one, or FAILED with an unknown exit status).
func (a *Agent) recover() error {
	cps, bad, err := a.checkpoints.load()
	if err != nil {
		return err
	}
	for _, err := range bad {
		a.log.Error("ignoring unreadable checkpoint", "err", err)
	}
	for _, cp := range cps {
		tk := &task{id: cp.TaskID, allocID: cp.AllocationID, sandbox: cp.Sandbox, pid: cp.PID, start: cp.StartTime, exited: make(chan struct{})}
		a.mu.Lock()
		a.tasks[tk.id] = tk
		a.mu.Unlock()
		if cp.Final != nil {
			a.log.Info("recovered ended task; reporting it", "task", tk.id, "state", cp.Final.State)
			tk.reaped = true
			close(tk.exited)
			a.finish(tk, cp.Final.taskState(), cp.Final.Reason, cp.Final.ExitCode)
			continue
		}
		proc, err := hostos.OpenProcess(cp.PID, cp.StartTime)
		if err != nil {
			if !errors.Is(err, hostos.ErrGone) {
				a.log.Warn("cannot watch recovered task; counting it as ended", "task", tk.id, "pid", cp.PID, "err", err)
			}
			a.log.Info("recovered task is gone", "task", tk.id, "pid", cp.PID)
			tk.reaped = true
			close(tk.exited)
			a.finish(tk, syscallsv1.TaskState_TASK_STATE_FAILED, reasonUnknownExit, -1)
			continue
		}
		a.mu.Lock()
		tk.proc, tk.state = proc, taskRunning
		a.mu.Unlock()
		a.log.Info("re-adopted task", "task", tk.id, "pid", cp.PID)
		a.wg.Go(func() { a.supervise(tk) })
	}
	return nil
}
