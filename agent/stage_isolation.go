package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// isolationStage puts the task in a container of the agent's isolator
// (cgroups with the task's limits) and attaches the network counters to
// it (netacct.go). A driver that joins cgroups itself
// (Capabilities.JoinCgroups) starts the task inside them; for one that
// does not, the post-start step moves the task's pid in with
// Isolator.Isolate. A task that exited before it could be moved is not a
// failed start: its real exit, which the agent reports once it waits for
// the task, wins. Teardown detaches the counters and cleans up the
// container.
type isolationStage struct{}

func (isolationStage) name() string { return "isolation" }

func (isolationStage) setup(ctx context.Context, r *taskRun) error {
	a, tk := r.a, r.tk
	if a.isolator == "" {
		return nil
	}
	iso, err := a.plugins.Isolator(a.isolator)
	if err != nil {
		return fmt.Errorf("isolator %q: %w", a.isolator, err)
	}
	caps, err := r.capabilities()
	if err != nil {
		return err
	}
	r.iso = iso
	t0 := time.Now()
	li, err := iso.Prepare(ctx, tk.id, tk.limits)
	tk.isolateTook = time.Since(t0)
	if err != nil {
		return fmt.Errorf("isolation: %w", err)
	}
	a.mu.Lock()
	tk.isolated, tk.cgroups = true, li.Cgroups
	a.mu.Unlock()
	for k, v := range li.Env {
		if _, set := r.cfg.Env[k]; !set {
			r.cfg.Env[k] = v
		}
	}
	if caps.JoinCgroups {
		r.cfg.Cgroups = li.Cgroups
	}
	a.netAttach(tk, li.Cgroups)
	return nil
}

func (isolationStage) poststart(ctx context.Context, r *taskRun) error {
	if r.iso == nil || r.caps.JoinCgroups || r.h == nil || r.h.PID <= 0 {
		return nil
	}
	err := r.iso.Isolate(ctx, r.tk.id, r.h.PID)
	if err == nil {
		return nil
	}
	if res := exitedMeanwhile(ctx, r); res != nil {
		r.a.log.Info("task exited before it could be isolated; reporting its exit", "task", r.tk.id, "pid", r.h.PID,
			"exit_code", res.ExitCode, "signal", res.Signal, "isolate_err", err)
		return nil
	}
	return fmt.Errorf("isolation: %w", err)
}

// exitedMeanwhile returns how r's task exited if its driver reports an
// exit within exitWait, or nil: the task still runs (or its driver cannot
// tell), and a failed step after its start is a real failure.
func exitedMeanwhile(ctx context.Context, r *taskRun) *contract.ExitResult {
	wctx, cancel := context.WithTimeout(ctx, exitWait)
	defer cancel()
	res, err := r.drv.WaitTask(wctx, r.tk.id)
	if err != nil || res == nil {
		return nil
	}
	return res
}

func (isolationStage) teardown(ctx context.Context, r *taskRun) error {
	a, tk := r.a, r.tk
	a.netDetach(tk)
	a.mu.Lock()
	isolated := tk.isolated
	a.mu.Unlock()
	if !isolated {
		return nil
	}
	iso, err := a.plugins.Isolator(a.isolator)
	if err != nil {
		return fmt.Errorf("isolator %q: %w", a.isolator, err)
	}
	if err := iso.Cleanup(ctx, tk.id); err != nil && !errors.Is(err, contract.ErrTaskNotFound) {
		return fmt.Errorf("isolator %q: cleanup: %w", a.isolator, err)
	}
	return nil
}
