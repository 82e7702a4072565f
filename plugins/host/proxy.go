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

// netProxy is the stable contract.NetDriver of a net plugin: each call goes
// to the plugin's current process.
type netProxy struct{ p *plugin }

var _ contract.NetDriver = (*netProxy)(nil)

func (n *netProxy) Setup(ctx context.Context, req contract.NetworkRequest) (*contract.NetworkStatus, error) {
	c, err := get[contract.NetDriver](ctx, n.p, "net setup")
	if err != nil {
		return nil, err
	}
	return c.Setup(ctx, req)
}

func (n *netProxy) Teardown(ctx context.Context, containerID string) error {
	c, err := get[contract.NetDriver](ctx, n.p, "net teardown")
	if err != nil {
		return err
	}
	return c.Teardown(ctx, containerID)
}

func (n *netProxy) Status(ctx context.Context, containerID string) (*contract.NetworkStatus, error) {
	c, err := get[contract.NetDriver](ctx, n.p, "net status")
	if err != nil {
		return nil, err
	}
	return c.Status(ctx, containerID)
}

func (n *netProxy) Recover(ctx context.Context, containers []contract.NetworkStatus) error {
	c, err := get[contract.NetDriver](ctx, n.p, "net recover")
	if err != nil {
		return err
	}
	return c.Recover(ctx, containers)
}

func (n *netProxy) ConfigureNode(ctx context.Context, cfg contract.NodeConfig) error {
	c, err := get[contract.NetDriver](ctx, n.p, "net configure node")
	if err != nil {
		return err
	}
	return c.ConfigureNode(ctx, cfg)
}

func (n *netProxy) GC(ctx context.Context, live []string) ([]string, error) {
	c, err := get[contract.NetDriver](ctx, n.p, "net gc")
	if err != nil {
		return nil, err
	}
	return c.GC(ctx, live)
}

func (n *netProxy) RemoveNode(ctx context.Context) error {
	c, err := get[contract.NetDriver](ctx, n.p, "net remove node")
	if err != nil {
		return err
	}
	return c.RemoveNode(ctx)
}

// storageProxy is the stable contract.StorageDriver of a storage plugin:
// each call goes to the plugin's current process.
type storageProxy struct{ p *plugin }

var _ contract.StorageDriver = (*storageProxy)(nil)

func (s *storageProxy) PrepareSandbox(ctx context.Context, containerID string, sizeBytes int64) (*contract.Sandbox, error) {
	c, err := get[contract.StorageDriver](ctx, s.p, "prepare sandbox")
	if err != nil {
		return nil, err
	}
	return c.PrepareSandbox(ctx, containerID, sizeBytes)
}

func (s *storageProxy) CleanupSandbox(ctx context.Context, containerID string) error {
	c, err := get[contract.StorageDriver](ctx, s.p, "cleanup sandbox")
	if err != nil {
		return err
	}
	return c.CleanupSandbox(ctx, containerID)
}

func (s *storageProxy) CreateVolume(ctx context.Context, req contract.VolumeRequest) (*contract.Volume, error) {
	c, err := get[contract.StorageDriver](ctx, s.p, "create volume")
	if err != nil {
		return nil, err
	}
	return c.CreateVolume(ctx, req)
}

func (s *storageProxy) DestroyVolume(ctx context.Context, volumeID string) error {
	c, err := get[contract.StorageDriver](ctx, s.p, "destroy volume")
	if err != nil {
		return err
	}
	return c.DestroyVolume(ctx, volumeID)
}

func (s *storageProxy) ListVolumes(ctx context.Context) ([]contract.Volume, error) {
	c, err := get[contract.StorageDriver](ctx, s.p, "list volumes")
	if err != nil {
		return nil, err
	}
	return c.ListVolumes(ctx)
}

func (s *storageProxy) Mount(ctx context.Context, req contract.MountRequest) (*contract.Mount, error) {
	c, err := get[contract.StorageDriver](ctx, s.p, "mount")
	if err != nil {
		return nil, err
	}
	return c.Mount(ctx, req)
}

func (s *storageProxy) Unmount(ctx context.Context, containerID, target string) error {
	c, err := get[contract.StorageDriver](ctx, s.p, "unmount")
	if err != nil {
		return err
	}
	return c.Unmount(ctx, containerID, target)
}

func (s *storageProxy) Recover(ctx context.Context, sandboxes []contract.Sandbox) error {
	c, err := get[contract.StorageDriver](ctx, s.p, "storage recover")
	if err != nil {
		return err
	}
	return c.Recover(ctx, sandboxes)
}

// The driver proxy is also a contract.ImageDriver: the call goes to the
// current process's client, and a plugin that does not serve images
// answers contract.ErrNotSupported.
var _ contract.ImageDriver = (*driverProxy)(nil)

func (d *driverProxy) ListImages(ctx context.Context) ([]*contract.Image, error) {
	c, err := get[contract.ImageDriver](ctx, d.p, "list images")
	if err != nil {
		return nil, err
	}
	return c.ListImages(ctx)
}

func (d *driverProxy) RemoveImage(ctx context.Context, ref string) error {
	c, err := get[contract.ImageDriver](ctx, d.p, "remove image")
	if err != nil {
		return err
	}
	return c.RemoveImage(ctx, ref)
}

// The driver proxy is also a contract.ExecDriver, always, so that the
// agent can type-assert the driver the host gives it: the call goes to
// the current process's client, and a plugin that cannot exec answers
// contract.ErrNotSupported.
var _ contract.ExecDriver = (*driverProxy)(nil)

func (d *driverProxy) ExecTask(ctx context.Context, opts *contract.ExecOptions, eio contract.ExecIO) (*contract.ExitResult, error) {
	c, err := get[contract.Driver](ctx, d.p, "exec task")
	if err != nil {
		return nil, err
	}
	ed, ok := c.(contract.ExecDriver)
	if !ok {
		return nil, fmt.Errorf("exec task: plugin %s: %w", d.p.id, contract.ErrNotSupported)
	}
	return ed.ExecTask(ctx, opts, eio)
}
