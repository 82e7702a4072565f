package agent

import "context"

// healthStage runs the task's health and readiness checks while it runs
// (health.go): they start once the task is reported RUNNING or re-adopted
// after an agent restart, and stop before anything else of the task is
// torn down, so that no health report follows the final one.
type healthStage struct{}

func (healthStage) name() string { return "health" }

func (healthStage) setup(context.Context, *taskRun) error { return nil }

func (healthStage) running(r *taskRun) { r.a.startProbes(r.tk) }

func (healthStage) teardown(_ context.Context, r *taskRun) error {
	r.a.stopProbes(r.tk)
	return nil
}
