package host

import (
	"context"
	"fmt"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// get returns the plugin's current implementation as T, waiting for it (see
// plugin.current).
func get[T any](ctx context.Context, p *plugin, op string) (T, error) {
	var zero T
	raw, err := p.current(ctx, op)
	if err != nil {
		return zero, err
	}
	impl, ok := raw.(T)
	if !ok {
		return zero, fmt.Errorf("%s: plugin %s: dispensed %T, not a %s", op, p.id, raw, p.kind)
	}
	return impl, nil
}

// driverProxy is the stable contract.Driver of a driver plugin: each call
// goes to the plugin's current process.
type driverProxy struct{ p *plugin }

var _ contract.Driver = (*driverProxy)(nil)

func (d *driverProxy) Capabilities(ctx context.Context) (*contract.Capabilities, error) {
	c, err := get[contract.Driver](ctx, d.p, "capabilities")
	if err != nil {
		return nil, err
	}
	return c.Capabilities(ctx)
}

func (d *driverProxy) Fingerprint(ctx context.Context) (*contract.Fingerprint, error) {
	c, err := get[contract.Driver](ctx, d.p, "fingerprint")
	if err != nil {
		return nil, err
	}
	return c.Fingerprint(ctx)
}

func (d *driverProxy) StartTask(ctx context.Context, cfg *contract.TaskConfig) (*contract.TaskHandle, error) {
	c, err := get[contract.Driver](ctx, d.p, "start task")
	if err != nil {
		return nil, err
	}
	return c.StartTask(ctx, cfg)
}

func (d *driverProxy) WaitTask(ctx context.Context, taskID string) (*contract.ExitResult, error) {
	c, err := get[contract.Driver](ctx, d.p, "wait task")
	if err != nil {
		return nil, err
	}
	return c.WaitTask(ctx, taskID)
}

func (d *driverProxy) StopTask(ctx context.Context, taskID string, timeout time.Duration, signal string) error {
	c, err := get[contract.Driver](ctx, d.p, "stop task")
	if err != nil {
		return err
	}
	return c.StopTask(ctx, taskID, timeout, signal)
}

func (d *driverProxy) DestroyTask(ctx context.Context, taskID string, force bool) error {
	c, err := get[contract.Driver](ctx, d.p, "destroy task")
	if err != nil {
		return err
	}
	return c.DestroyTask(ctx, taskID, force)
}

func (d *driverProxy) InspectTask(ctx context.Context, taskID string) (*contract.TaskStatus, error) {
	c, err := get[contract.Driver](ctx, d.p, "inspect task")
	if err != nil {
		return nil, err
	}
	return c.InspectTask(ctx, taskID)
}

func (d *driverProxy) TaskStats(ctx context.Context, taskID string) (*contract.TaskUsage, error) {
	c, err := get[contract.Driver](ctx, d.p, "task stats")
	if err != nil {
		return nil, err
	}
	return c.TaskStats(ctx, taskID)
}

func (d *driverProxy) SignalTask(ctx context.Context, taskID string, sig string) error {
	c, err := get[contract.Driver](ctx, d.p, "signal task")
	if err != nil {
		return err
	}
	return c.SignalTask(ctx, taskID, sig)
}

func (d *driverProxy) RecoverTask(ctx context.Context, handle *contract.TaskHandle) error {
	c, err := get[contract.Driver](ctx, d.p, "recover task")
	if err != nil {
		return err
	}
	return c.RecoverTask(ctx, handle)
}

// isolatorProxy is the stable contract.Isolator of an isolator plugin: each
// call goes to the plugin's current process.
type isolatorProxy struct{ p *plugin }

var _ contract.Isolator = (*isolatorProxy)(nil)

func (i *isolatorProxy) Prepare(ctx context.Context, containerID string, limits contract.Resources) (*contract.LaunchInfo, error) {
	c, err := get[contract.Isolator](ctx, i.p, "prepare")
	if err != nil {
		return nil, err
	}
	return c.Prepare(ctx, containerID, limits)
}

func (i *isolatorProxy) Isolate(ctx context.Context, containerID string, pid int) error {
	c, err := get[contract.Isolator](ctx, i.p, "isolate")
	if err != nil {
		return err
	}
	return c.Isolate(ctx, containerID, pid)
}

func (i *isolatorProxy) Update(ctx context.Context, containerID string, limits contract.Resources) error {
	c, err := get[contract.Isolator](ctx, i.p, "update")
	if err != nil {
		return err
	}
	return c.Update(ctx, containerID, limits)
}

func (i *isolatorProxy) Usage(ctx context.Context, containerID string) (*contract.TaskUsage, error) {
	c, err := get[contract.Isolator](ctx, i.p, "usage")
	if err != nil {
		return nil, err
	}
	return c.Usage(ctx, containerID)
}

// Watch forwards to the current process; the channel closes if that process
// exits (the watch does not follow a restart: call Watch again).
func (i *isolatorProxy) Watch(ctx context.Context, containerID string) (<-chan contract.Limitation, error) {
	c, err := get[contract.Isolator](ctx, i.p, "watch")
	if err != nil {
		return nil, err
	}
	return c.Watch(ctx, containerID)
}

func (i *isolatorProxy) Cleanup(ctx context.Context, containerID string) error {
	c, err := get[contract.Isolator](ctx, i.p, "cleanup")
	if err != nil {
		return err
	}
	return c.Cleanup(ctx, containerID)
}

func (i *isolatorProxy) Recover(ctx context.Context, containers []contract.ContainerState) error {
	c, err := get[contract.Isolator](ctx, i.p, "recover")
	if err != nil {
		return err
	}
	return c.Recover(ctx, containers)
}
