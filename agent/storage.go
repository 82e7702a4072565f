package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Task storage: with a storage driver (Config.Storage), each task's sandbox
// comes from the driver before the task starts, limited to the task's
// disk_bytes (0: unlimited); its working dir, stdout and stderr live
// there. The sandbox is checkpointed with the task and handed back to the
// driver's Recover after a restart (which also removes the sandboxes of
// tasks the agent no longer knows). Once the task has ended, the sandbox
// is removed after Config.SandboxRetention; a restart of the agent ends
// the retention early. Without a storage driver the agent makes a plain
// directory per task under its data dir and never removes it.

// storagePlugins is the optional part of Plugins that serves storage
// drivers (the plugin host does).
type storagePlugins interface {
	Storage(name string) (contract.StorageDriver, error)
}

func (a *Agent) storageDriver() (contract.StorageDriver, error) {
	sp, ok := a.plugins.(storagePlugins)
	if !ok {
		return nil, fmt.Errorf("storage driver %q: the plugin host serves no storage drivers", a.storage)
	}
	return sp.Storage(a.storage)
}

// prepareStorage gets tk's sandbox from the storage driver, if the agent
// has one, mounts the task's volumes into it (creating a persistent volume
// the first time a task of its allocation mounts it) and records it in tk.
func (a *Agent) prepareStorage(tk *task, t *syscallsv1.Task) error {
	if a.storage == "" {
		if len(t.GetVolumes()) > 0 {
			return errors.New("volumes: this agent has no storage driver (run it as root with --storage-driver local)")
		}
		return nil
	}
	sd, err := a.storageDriver()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(a.ctx, callTimeout)
	defer cancel()
	sb, err := sd.PrepareSandbox(ctx, tk.id, t.GetResources().GetDiskBytes())
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	a.mu.Lock()
	tk.sandbox, tk.storage = sb.Path, sb
	a.mu.Unlock()
	for _, v := range t.GetVolumes() {
		req := contract.MountRequest{ContainerID: tk.id, Target: v.GetPath(), ReadOnly: v.GetReadOnly()}
		if v.GetHost() {
			path, ok := a.hostVolumes[v.GetName()]
			if !ok {
				return fmt.Errorf("volumes: no host volume %q on this agent", v.GetName())
			}
			req.HostPath = path
		} else {
			if _, err := sd.CreateVolume(ctx, contract.VolumeRequest{ID: v.GetName(), Role: v.GetRole(), SizeBytes: v.GetSizeBytes()}); err != nil {
				return fmt.Errorf("volume %q: %w", v.GetName(), err)
			}
			req.VolumeID = v.GetName()
		}
		m, err := sd.Mount(ctx, req)
		if err != nil {
			return fmt.Errorf("volume %q: %w", v.GetName(), err)
		}
		a.mu.Lock()
		sb.Mounts = append(sb.Mounts, *m)
		a.mu.Unlock()
	}
	return nil
}

// releaseStorage removes tk's sandbox now (failed starts, retention 0) or
// after the retention.
func (a *Agent) releaseStorage(tk *task, now bool) {
	a.mu.Lock()
	sb := tk.storage
	a.mu.Unlock()
	if sb == nil {
		return
	}
	if now || a.retention <= 0 {
		a.cleanupSandbox(sb.ContainerID)
		return
	}
	// The volumes go now (their next claim may come before the retention
	// ends); the sandbox stays for its output.
	if sd, err := a.storageDriver(); err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), callTimeout)
		for _, m := range sb.Mounts {
			if err := sd.Unmount(ctx, sb.ContainerID, m.Target); err != nil {
				a.log.Warn("cannot unmount a volume of an ended task", "task", sb.ContainerID, "target", m.Target, "err", err)
			}
		}
		cancel()
	}
	a.retainMu.Lock()
	defer a.retainMu.Unlock()
	if a.retained == nil {
		a.retained = map[string]*contract.Sandbox{}
	}
	// Without its volume mounts: a Recover while it is retained (a plugin
	// restart) must not mount them again.
	kept := *sb
	kept.Mounts = nil
	a.retained[sb.ContainerID] = &kept
	time.AfterFunc(a.retention, func() {
		a.retainMu.Lock()
		_, ok := a.retained[sb.ContainerID]
		delete(a.retained, sb.ContainerID)
		a.retainMu.Unlock()
		if ok && a.ctx.Err() == nil {
			a.cleanupSandbox(sb.ContainerID)
		}
	})
}

func (a *Agent) cleanupSandbox(id string) {
	sd, err := a.storageDriver()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), callTimeout)
		defer cancel()
		err = sd.CleanupSandbox(ctx, id)
	}
	if err != nil {
		a.log.Warn("cannot remove the task's sandbox", "task", id, "err", err)
	}
}

// recoverStorage hands the sandboxes of live tasks (and of ended tasks
// still retained) to the storage driver, which removes the others.
func (a *Agent) recoverStorage() {
	if a.storage == "" {
		return
	}
	sd, err := a.storageDriver()
	if err != nil {
		a.log.Error("storage driver unavailable; cannot recover sandboxes", "driver", a.storage, "err", err)
		return
	}
	var sbs []contract.Sandbox
	a.mu.Lock()
	for _, tk := range a.tasks {
		if tk.storage != nil && tk.state != taskExited {
			sbs = append(sbs, *tk.storage)
		}
	}
	a.mu.Unlock()
	a.retainMu.Lock()
	for _, sb := range a.retained {
		sbs = append(sbs, *sb)
	}
	a.retainMu.Unlock()
	ctx, cancel := context.WithTimeout(a.ctx, callTimeout)
	defer cancel()
	if err := sd.Recover(ctx, sbs); err != nil && !errors.Is(err, context.Canceled) {
		a.log.Error("storage driver could not recover sandboxes", "driver", a.storage, "err", err)
	}
}

// localVolumes returns the storage driver's volumes for registration (nil
// without a storage driver or when it cannot tell).
func (a *Agent) localVolumes(ctx context.Context) []*syscallsv1.Volume {
	if a.storage == "" {
		return nil
	}
	sd, err := a.storageDriver()
	var vs []contract.Volume
	if err == nil {
		vs, err = sd.ListVolumes(ctx)
	}
	if err != nil {
		a.log.Warn("cannot list the storage driver's volumes for the kernel", "err", err)
		return nil
	}
	out := make([]*syscallsv1.Volume, 0, len(vs))
	for _, v := range vs {
		out = append(out, &syscallsv1.Volume{Name: v.ID, Role: v.Role, SizeBytes: v.SizeBytes})
	}
	return out
}

// destroyVolume deletes a volume the kernel destroyed.
func (a *Agent) destroyVolume(v *syscallsv1.Volume) {
	if a.storage == "" {
		return
	}
	sd, err := a.storageDriver()
	if err == nil {
		ctx, cancel := context.WithTimeout(a.ctx, callTimeout)
		err = sd.DestroyVolume(ctx, v.GetName())
		cancel()
	}
	if err != nil {
		a.log.Error("cannot destroy a volume the kernel destroyed", "volume", v.GetName(), "err", err)
		return
	}
	a.log.Info("volume destroyed", "volume", v.GetName())
}
