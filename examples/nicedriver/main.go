package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dcos-kernel/dcos/sdk/plugin"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == launchArg {
		os.Exit(launch(os.Args[2:]))
	}
	plugin.ServeDriver(newDriver())
}

// task is a task the driver started.
type task struct {
	cfg     *plugin.TaskConfig
	nice    int
	pid     int // also the task's process group
	started time.Time
	done    chan struct{} // closed once the process has been reaped
	// Set before done is closed.
	completed time.Time
	result    *plugin.ExitResult
}

func (t *task) exited() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// driver is the "nice" task driver. Its methods are safe for concurrent
// use; it keeps its tasks in memory only.
type driver struct {
	mu    sync.Mutex
	tasks map[string]*task
}

var _ plugin.Driver = (*driver)(nil)

func newDriver() *driver { return &driver{tasks: map[string]*task{}} }

func (d *driver) Capabilities(context.Context) (*plugin.Capabilities, error) {
	// As root on Linux, tasks can run under the SDK's task init.
	return &plugin.Capabilities{SendSignals: true, FSIsolation: plugin.FSIsolationNone, RecoverTasks: false, JoinCgroups: false,
		Isolation: runtime.GOOS == "linux" && os.Geteuid() == 0}, nil
}

func (d *driver) Fingerprint(context.Context) (*plugin.Fingerprint, error) {
	return &plugin.Fingerprint{Health: plugin.HealthHealthy, HealthDescription: "ready",
		Attributes: map[string]string{"driver.nice.default_nice": strconv.Itoa(defaultNice)}}, nil
}

func (d *driver) lookup(id string) (*task, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tasks[id]
	if !ok {
		return nil, fmt.Errorf("task %q: %w", id, plugin.ErrTaskNotFound)
	}
	return t, nil
}

func (d *driver) StartTask(_ context.Context, cfg *plugin.TaskConfig) (*plugin.TaskHandle, error) {
	conf, err := parseConfig(cfg.DriverConfig)
	if err != nil {
		return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
	}
	if cfg.User != "" && cfg.Isolation == nil {
		return nil, fmt.Errorf("start task %q: user %q: the nice driver runs tasks as its own user: %w", cfg.ID, cfg.User, plugin.ErrNotSupported)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tasks[cfg.ID]; ok {
		return nil, fmt.Errorf("start task %q: already started: %w", cfg.ID, plugin.ErrConflict)
	}

	// A command without a slash is looked up in the driver's PATH now, so
	// that a missing one fails the start; one with a slash is run as it is
	// (relative to WorkDir).
	path := cfg.Command
	if !strings.Contains(path, "/") {
		if path, err = exec.LookPath(cfg.Command); err != nil {
			return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
		}
	}
	// The task's first process is this binary, re-executed as its launcher
	// (see launch): it sets its nice level and execs the command. An
	// isolated task cannot run this binary (it may be in a directory the
	// task's user cannot search): nice(1) does the launcher's job there.
	cmd := exec.Command("/proc/self/exe", append([]string{launchArg, strconv.Itoa(conf.Nice), path, cfg.Command}, cfg.Args...)...)
	if cfg.Isolation != nil {
		nice, err := exec.LookPath("nice")
		if err != nil {
			return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
		}
		cmd = exec.Command(nice, append([]string{"-n", strconv.Itoa(conf.Nice), path}, cfg.Args...)...)
	}
	cmd.Dir = cfg.WorkDir
	// The task's environment is the agent's, then the config's; never the
	// plugin's own (a nil Env would inherit it).
	cmd.Env = []string{}
	for k, v := range cfg.Env {
		if _, ok := conf.Env[k]; !ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, v := range conf.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if cmd.Stdout, err = openOutput(cfg.StdoutPath, cfg.Isolation); err != nil {
		return nil, fmt.Errorf("start task %q: stdout: %w", cfg.ID, err)
	}
	defer closeOutput(cmd.Stdout)
	if cmd.Stderr, err = openOutput(cfg.StderrPath, cfg.Isolation); err != nil {
		return nil, fmt.Errorf("start task %q: stderr: %w", cfg.ID, err)
	}
	defer closeOutput(cmd.Stderr)
	// Its own process group, so that a stop reaches the task's children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var iso *plugin.IsolatedStart
	if cfg.Isolation != nil {
		if iso, err = plugin.Isolate(cmd, cfg.Isolation); err != nil {
			return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
		}
		if err = cmd.Start(); err == nil {
			if err = iso.Started(); err != nil {
				_ = cmd.Wait()
			}
		}
		if err != nil {
			iso.Close()
			return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
		}
	} else if err := startLaunched(cmd); err != nil {
		return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
	}

	t := &task{cfg: cfg, nice: conf.Nice, pid: cmd.Process.Pid, started: time.Now(), done: make(chan struct{})}
	d.tasks[cfg.ID] = t
	go func() {
		err := cmd.Wait()
		r := &plugin.ExitResult{}
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				r.Signal = int(ws.Signal())
			} else {
				r.ExitCode = ee.ExitCode()
			}
		default:
			r.Err = err.Error()
		}
		if iso != nil && r.Err == "" {
			if r.ExitCode, r.Signal = iso.Exit(r.ExitCode, r.Signal); r.Signal != 0 {
				r.ExitCode = 0 // as without isolation
			}
		}
		t.completed, t.result = time.Now(), r
		close(t.done)
	}()
	state := fmt.Appendf(nil, `{"pid":%d}`, t.pid)
	return &plugin.TaskHandle{Version: plugin.HandleVersion, Config: cfg, State: plugin.TaskStateRunning, DriverState: state, PID: t.pid}, nil
}

// openOutput opens path for the task's output, appending; empty means
// discard (a nil writer is /dev/null for exec.Cmd). An isolated task's
// output file is its user's.
func openOutput(path string, iso *plugin.TaskIsolation) (io.Writer, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if iso != nil {
		if err := f.Chown(int(iso.UID), int(iso.GID)); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// closeOutput closes the driver's copy of an output file once the task has
// its own.
func closeOutput(w io.Writer) {
	if f, ok := w.(*os.File); ok {
		f.Close()
	}
}

func (d *driver) WaitTask(ctx context.Context, id string) (*plugin.ExitResult, error) {
	t, err := d.lookup(id)
	if err != nil {
		return nil, err
	}
	select {
	case <-t.done:
		return t.result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait task %q: %w", id, ctx.Err())
	}
}

func (d *driver) StopTask(ctx context.Context, id string, timeout time.Duration, sig string) error {
	t, err := d.lookup(id)
	if err != nil {
		return err
	}
	if sig == "" {
		sig = "SIGTERM"
	}
	if err := signalGroup(t, sig); err != nil {
		return fmt.Errorf("stop task %q: %w", id, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.done:
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	_ = signalGroup(t, "SIGKILL")
	<-t.done
	return nil
}

func (d *driver) DestroyTask(_ context.Context, id string, force bool) error {
	t, err := d.lookup(id)
	if err != nil {
		return nil // idempotent
	}
	if !t.exited() {
		if !force {
			return fmt.Errorf("destroy task %q: still running (stop it first, or force)", id)
		}
		_ = signalGroup(t, "SIGKILL")
		<-t.done
	}
	d.mu.Lock()
	delete(d.tasks, id)
	d.mu.Unlock()
	return nil
}

func (d *driver) InspectTask(_ context.Context, id string) (*plugin.TaskStatus, error) {
	t, err := d.lookup(id)
	if err != nil {
		return nil, err
	}
	st := &plugin.TaskStatus{ID: id, Name: t.cfg.Name, State: plugin.TaskStateRunning, StartedAt: t.started,
		Attributes: map[string]string{"pid": strconv.Itoa(t.pid), "nice": strconv.Itoa(t.nice)}}
	if t.exited() {
		st.State, st.CompletedAt, st.ExitResult = plugin.TaskStateExited, t.completed, t.result
	}
	return st, nil
}

// TaskStats reports the memory of the task's first process; the agent's
// isolator accounts for the whole task.
func (d *driver) TaskStats(_ context.Context, id string) (*plugin.TaskUsage, error) {
	t, err := d.lookup(id)
	if err != nil {
		return nil, err
	}
	if t.exited() {
		return &plugin.TaskUsage{Timestamp: time.Now()}, nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", t.pid))
	if err != nil {
		return nil, fmt.Errorf("task stats %q: %w", id, err)
	}
	var size, rss uint64
	if _, err := fmt.Sscan(string(b), &size, &rss); err != nil {
		return nil, fmt.Errorf("task stats %q: %w", id, err)
	}
	return &plugin.TaskUsage{Timestamp: time.Now(), MemoryRSSBytes: rss * uint64(os.Getpagesize()), PIDs: 1}, nil
}

func (d *driver) SignalTask(_ context.Context, id, sig string) error {
	t, err := d.lookup(id)
	if err != nil {
		return err
	}
	if err := signalGroup(t, sig); err != nil {
		return fmt.Errorf("signal task %q: %w", id, err)
	}
	return nil
}

func (d *driver) RecoverTask(_ context.Context, h *plugin.TaskHandle) error {
	if h.Version != plugin.HandleVersion {
		return fmt.Errorf("recover task: handle version %d: %w", h.Version, plugin.ErrHandleVersion)
	}
	return fmt.Errorf("recover task: the nice driver keeps its tasks in memory and cannot reattach to one started before it restarted: %w", plugin.ErrNotSupported)
}

// signals are the signals a task can be sent, by name.
var signals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT,
	"SIGKILL": syscall.SIGKILL, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2,
	"SIGTERM": syscall.SIGTERM, "SIGCONT": syscall.SIGCONT, "SIGSTOP": syscall.SIGSTOP,
	"SIGTSTP": syscall.SIGTSTP, "SIGWINCH": syscall.SIGWINCH,
}

// signalGroup sends sig to the task's process group. A task that has exited
// is not an error.
func signalGroup(t *task, sig string) error {
	n, ok := signals[strings.ToUpper(sig)]
	if !ok {
		return fmt.Errorf("signal %q: unknown signal", sig)
	}
	if t.exited() {
		return nil
	}
	if err := syscall.Kill(-t.pid, n); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s: %w", sig, err)
	}
	return nil
}
