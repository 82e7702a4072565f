package agent

import (
	"context"
	"fmt"
)

// sandboxStage gives the task its sandbox (from the storage driver, with
// its volumes, or a plain directory under the data dir) and builds the
// driver's view of the task in it: command, environment, working dir,
// output files, user and isolation (storage.go, isolation.go). Teardown
// removes a storage driver's sandbox: at once for a start that failed, else
// after the sandbox retention.
type sandboxStage struct{}

func (sandboxStage) name() string { return "sandbox" }

func (sandboxStage) setup(_ context.Context, r *taskRun) error {
	a, tk, t := r.a, r.tk, r.spec
	if err := validTaskID(t.GetId()); err != nil {
		return err
	}
	if err := a.prepareStorage(tk, t); err != nil {
		return err
	}
	cfg, err := a.taskConfig(t, tk.sandbox)
	if err != nil {
		return err
	}
	if err := a.giveCABundle(cfg, tk.sandbox); err != nil {
		return err
	}
	cfg.User = t.GetUser()
	cfg.Resources = tk.limits
	if cfg.Isolation, err = a.taskIsolation(t, tk.sandbox); err != nil {
		return err
	}
	a.mu.Lock()
	sb := tk.storage
	a.mu.Unlock()
	if err := giveSandbox(cfg.Isolation, sb, cfg.WorkDir); err != nil {
		return err
	}
	r.cfg = cfg
	if cfg.Isolation != nil {
		caps, err := r.capabilities()
		if err != nil {
			return err
		}
		if !caps.Isolation {
			return fmt.Errorf("driver %q cannot isolate tasks (its Capabilities.Isolation is false); an agent with --task-isolation=false runs its tasks unisolated", tk.driver)
		}
	}
	return nil
}

func (sandboxStage) teardown(_ context.Context, r *taskRun) error {
	r.a.releaseStorage(r.tk, r.now)
	return nil
}
