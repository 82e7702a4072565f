// Command testdriver is a minimal task driver built only on sdk/plugin, for
// the SDK's own tests: it runs a task's command as a child process in its own
// process group. It supports Start, Wait, Stop, Destroy, Inspect, Stats and
// Signal; not Recover.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/sdk/plugin"
)

func main() { plugin.ServeDriver(newDriver()) }

type task struct {
	cfg     *plugin.TaskConfig
	cmd     *exec.Cmd
	started time.Time
	done    chan struct{} // closed once the process has been reaped
	// Set before done is closed.
	completed time.Time
	result    *plugin.ExitResult
}

type driver struct {
	mu    sync.Mutex
	tasks map[string]*task
}

var _ plugin.Driver = (*driver)(nil)

func newDriver() *driver { return &driver{tasks: map[string]*task{}} }

func (d *driver) Capabilities(context.Context) (*plugin.Capabilities, error) {
	return &plugin.Capabilities{SendSignals: true, FSIsolation: plugin.FSIsolationNone}, nil
}

func (d *driver) Fingerprint(context.Context) (*plugin.Fingerprint, error) {
	return &plugin.Fingerprint{Health: plugin.HealthHealthy, HealthDescription: "ready",
		Attributes: map[string]string{"driver.testdriver.pid": strconv.Itoa(os.Getpid())}}, nil
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
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tasks[cfg.ID]; ok {
		return nil, fmt.Errorf("start task %q: already exists", cfg.ID)
	}
	cmd := exec.Command(cfg.Command, cfg.Args...)
	cmd.Dir = cfg.WorkDir
	for k, v := range cfg.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
	}
	t := &task{cfg: cfg, cmd: cmd, started: time.Now(), done: make(chan struct{})}
	d.tasks[cfg.ID] = t
	go func() {
		err := cmd.Wait()
		r := &plugin.ExitResult{}
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			ws := ee.Sys().(syscall.WaitStatus)
			if ws.Signaled() {
				r.Signal = int(ws.Signal())
			} else {
				r.ExitCode = ws.ExitStatus()
			}
		default:
			r.Err = err.Error()
		}
		t.completed, t.result = time.Now(), r
		close(t.done)
	}()
	state, _ := json.Marshal(map[string]int{"pid": cmd.Process.Pid})
	return &plugin.TaskHandle{Version: plugin.HandleVersion, Config: cfg, State: plugin.TaskStateRunning, DriverState: state}, nil
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
	if err := d.signal(t, sig); err != nil {
		return err
	}
	select {
	case <-t.done:
		return nil
	case <-time.After(timeout):
	case <-ctx.Done():
	}
	_ = unix.Kill(-t.cmd.Process.Pid, unix.SIGKILL)
	<-t.done
	return nil
}

func (d *driver) DestroyTask(_ context.Context, id string, force bool) error {
	t, err := d.lookup(id)
	if errors.Is(err, plugin.ErrTaskNotFound) {
		return nil // idempotent
	}
	select {
	case <-t.done:
	default:
		if !force {
			return fmt.Errorf("destroy task %q: still running", id)
		}
		_ = unix.Kill(-t.cmd.Process.Pid, unix.SIGKILL)
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
		Attributes: map[string]string{"pid": strconv.Itoa(t.cmd.Process.Pid)}}
	select {
	case <-t.done:
		st.State, st.CompletedAt, st.ExitResult = plugin.TaskStateExited, t.completed, t.result
	default:
	}
	return st, nil
}

func (d *driver) TaskStats(_ context.Context, id string) (*plugin.TaskUsage, error) {
	t, err := d.lookup(id)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", t.cmd.Process.Pid))
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
	return d.signal(t, sig)
}

func (d *driver) signal(t *task, sig string) error {
	n := unix.SignalNum(sig)
	if n == 0 {
		return fmt.Errorf("signal %q: unknown signal", sig)
	}
	select {
	case <-t.done:
		return nil
	default:
	}
	if err := unix.Kill(-t.cmd.Process.Pid, n); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal %s: %w", sig, err)
	}
	return nil
}

func (d *driver) RecoverTask(_ context.Context, h *plugin.TaskHandle) error {
	if h.Version != plugin.HandleVersion {
		return fmt.Errorf("recover task: handle version %d: %w", h.Version, plugin.ErrHandleVersion)
	}
	return fmt.Errorf("recover task: %w", plugin.ErrNotSupported)
}
