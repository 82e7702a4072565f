package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// The launch pipeline: a task starts by running ordered stages forward
// (sandbox → network → isolation → secrets → driver → health, see stages) and ends
// by unwinding the same stages backward. One runner does both, for every
// task, so that the rollback of a failed start and the release of an
// ended task are the same code. docs/agent.md ("Launch pipeline") says how
// to add a stage.

// teardownTimeout bounds the unwinding of one task's stages: a failed
// start, an ended task, or a start the agent's stop interrupted. It runs
// with a context of its own, never the agent's (which may be cancelled).
const teardownTimeout = 30 * time.Second

// exitWait bounds how long a post-start step that failed (Isolate of a
// pid that is gone) waits for the driver to report the task's exit: if it
// does, the task's real exit wins over the step's error.
const exitWait = 5 * time.Second

// stage is one step of a task's launch. setup runs in order with the
// agent's context; teardown runs in reverse order, with a context of its
// own, for every stage whose setup began — also when that setup failed
// half-way or never got to act, and for a task recovered after an agent
// restart (then r.spec and r.cfg are nil: teardown must work from the
// checkpointed fields of r.tk alone). teardown is idempotent. An error from
// setup fails the start and is the task's reason as it is (prefix it with
// the concern, "network: …"); an error from teardown is logged.
type stage interface {
	name() string
	setup(ctx context.Context, r *taskRun) error
	teardown(ctx context.Context, r *taskRun) error
}

// poststarter is a stage that also acts once the driver started the task,
// before the task is reported RUNNING (Isolate of a pid). An error unwinds
// the start as a setup error does.
type poststarter interface {
	poststart(ctx context.Context, r *taskRun) error
}

// runningHook is a stage that also acts once the task runs: after RUNNING
// is reported, and after an agent restart re-adopted the task. It cannot
// fail the task.
type runningHook interface {
	running(r *taskRun)
}

// stages returns the launch pipeline, in setup order.
func (a *Agent) stages() []stage {
	return []stage{sandboxStage{}, networkStage{}, isolationStage{}, secretsStage{}, driverStage{}, healthStage{}}
}

// taskRun is one task going through the pipeline: what its stages share.
// Only the goroutine that runs the pipeline for the task touches it; the
// task's shared fields (tk) are still guarded by Agent.mu.
type taskRun struct {
	a    *Agent
	tk   *task
	spec *syscallsv1.Task     // what the kernel asked for; nil for a recovered task
	cfg  *contract.TaskConfig // the driver's view, built by the sandbox stage

	stages []stage // the pipeline (Agent.stages)

	drv  contract.Driver
	caps *contract.Capabilities
	iso  contract.Isolator // set by the isolation stage when the agent isolates
	h    *contract.TaskHandle

	began int  // stages whose setup began
	now   bool // the start failed: remove its sandbox at once, not after the retention
}

// driver returns the task's driver, looked up once per run.
func (r *taskRun) driver() (contract.Driver, error) {
	if r.drv != nil {
		return r.drv, nil
	}
	drv, err := r.a.plugins.Driver(r.tk.driver)
	if err != nil {
		return nil, fmt.Errorf("driver %q: %w", r.tk.driver, err)
	}
	r.drv = drv
	return drv, nil
}

// capabilities returns the task's driver's capabilities.
func (r *taskRun) capabilities() (*contract.Capabilities, error) {
	if r.caps != nil {
		return r.caps, nil
	}
	drv, err := r.driver()
	if err != nil {
		return nil, err
	}
	c, err := r.a.capabilities(r.tk.driver, drv)
	if err != nil {
		return nil, fmt.Errorf("driver %q: %w", r.tk.driver, err)
	}
	r.caps = c
	return c, nil
}

// runStart runs r's stages forward with ctx, then their post-start steps.
// On error it unwinds every stage that began, with a context of its own,
// and returns the error: nothing of the task is left behind.
func (a *Agent) runStart(ctx context.Context, r *taskRun) error {
	stages := r.stages
	err := func() error {
		for _, s := range stages {
			r.began++
			if err := s.setup(ctx, r); err != nil {
				return err
			}
		}
		for _, s := range stages {
			if p, ok := s.(poststarter); ok {
				if err := p.poststart(ctx, r); err != nil {
					return err
				}
			}
		}
		return nil
	}()
	if err != nil {
		r.now = true
		a.runTeardown(r)
	}
	return err
}

// runRunning calls the stages' running hooks: r's task runs.
func (a *Agent) runRunning(r *taskRun) {
	for _, s := range r.stages[:min(r.began, len(r.stages))] {
		if h, ok := s.(runningHook); ok {
			h.running(r)
		}
	}
}

// runTeardown unwinds the stages of r that began, last first, with one
// context of its own (never the agent's, which may be cancelled) bounded
// by teardownTimeout. Errors are logged. Idempotent (every teardown is).
func (a *Agent) runTeardown(r *taskRun) {
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()
	stages := r.stages
	for i := min(r.began, len(stages)) - 1; i >= 0; i-- {
		if err := stages[i].teardown(ctx, r); err != nil {
			a.log.Warn("cannot tear down a stage of the task", "task", r.tk.id, "stage", stages[i].name(), "err", err)
		}
	}
}

// newRun returns the run of a task to start from spec.
func (a *Agent) newRun(tk *task, spec *syscallsv1.Task) *taskRun {
	return &taskRun{a: a, tk: tk, spec: spec, stages: a.stages()}
}

// adopted returns the run of a task that runs (started, or recovered from
// its checkpoint): every stage counts as set up.
func (a *Agent) adopted(tk *task) *taskRun {
	st := a.stages()
	return &taskRun{a: a, tk: tk, stages: st, began: len(st)}
}
