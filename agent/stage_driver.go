package agent

import (
	"context"
	"time"
)

// driverStage starts the task with its driver and records the driver's
// handle. Teardown destroys the task through its driver (killing it if it
// still runs): also when StartTask failed or was cancelled half-way, as a
// driver may have started something by then, and DestroyTask of a task
// the driver does not know is a no-op.
type driverStage struct{}

func (driverStage) name() string { return "driver" }

func (driverStage) setup(ctx context.Context, r *taskRun) error {
	drv, err := r.driver()
	if err != nil {
		return err
	}
	t0 := time.Now()
	h, err := startWith(ctx, drv, r.cfg)
	r.tk.startTook = time.Since(t0)
	if err != nil {
		return err
	}
	r.h = h
	return r.a.setHandle(r.tk, checkpointHandle(h, r.spec)) // secrets.go
}

func (driverStage) teardown(ctx context.Context, r *taskRun) error {
	drv, err := r.driver()
	if err != nil {
		if r.spec != nil {
			return nil // a start that found no driver started nothing
		}
		return err
	}
	return drv.DestroyTask(ctx, r.tk.id, true)
}
