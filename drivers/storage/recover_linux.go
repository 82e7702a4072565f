//go:build linux

package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// Recover implements contract.StorageDriver. For each listed sandbox still
// on disk it mounts again what a reboot unmounted (its image, its
// volumes, its mounts); then it removes what a crash left: sandboxes not
// listed, mounts in sandboxes that the host did not record, volume
// directories without a record, images of nothing, and loop devices
// backed by the driver's images that nothing mounts. A mount that cannot
// be made again is logged and left out of the sandbox's mounts; other
// failures are returned after everything else was tried.
func (d *Driver) Recover(_ context.Context, sandboxes []contract.Sandbox) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, v := range d.volumes {
		if err := d.ensureMounted(v); err != nil {
			errs = append(errs, err)
		}
	}
	for _, sb := range sandboxes {
		if _, ok := d.sandboxes[sb.ContainerID]; ok {
			continue
		}
		if err := d.recoverSandbox(sb); err != nil {
			errs = append(errs, fmt.Errorf("recover sandbox %q: %w", sb.ContainerID, err))
		}
	}
	if err := d.gc(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// recoverSandbox takes sb back, if its directory is still there.
func (d *Driver) recoverSandbox(sb contract.Sandbox) error {
	name, err := escapeID(sb.ContainerID)
	if err != nil {
		return err
	}
	dir := filepath.Join(sandboxesDir(d.cfg.StateDir), name)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		d.log.Info("storage: sandbox gone from the disk: forgotten", "container", sb.ContainerID)
		return nil
	}
	all, err := mounts()
	if err != nil {
		return err
	}
	image := sandboxImage(d.cfg.StateDir, name)
	if fileExists(image) && !isMountPoint(all, dir) {
		if err := mountImage(image, dir); err != nil {
			return err
		}
		if all, err = mounts(); err != nil {
			return err
		}
	}
	if id, err := project(dir); err == nil && id != 0 {
		d.projects[id] = true
	}
	rec := &contract.Sandbox{ContainerID: sb.ContainerID, Path: dir, SizeBytes: sb.SizeBytes, Enforced: sb.Enforced}
	for _, m := range sb.Mounts {
		if checkTarget(m.Target) != nil {
			d.log.Warn("storage: recover: bad mount target: dropped", "container", sb.ContainerID, "target", m.Target)
			continue
		}
		m.ContainerID, m.Path = sb.ContainerID, filepath.Join(dir, m.Target)
		if !isMountPoint(all, m.Path) {
			if err := d.remount(rec, m); err != nil {
				d.log.Warn("storage: recover: mount not made again: dropped", "container", sb.ContainerID, "target", m.Target, "err", err)
				continue
			}
		}
		rec.Mounts = append(rec.Mounts, m)
	}
	d.sandboxes[sb.ContainerID] = rec
	return nil
}

// remount makes m again in rec (its mount is gone: a reboot).
func (d *Driver) remount(rec *contract.Sandbox, m contract.Mount) error {
	if m.VolumeID != "" {
		v, ok := d.volumes[m.VolumeID]
		if !ok {
			return fmt.Errorf("volume %q: %w", m.VolumeID, contract.ErrTaskNotFound)
		}
		if err := d.ensureMounted(v); err != nil {
			return err
		}
		m.Source = v.Path
	} else {
		ro, err := d.hostPathAllowed(m.Source)
		if err != nil {
			return err
		}
		m.ReadOnly = m.ReadOnly || ro
	}
	return d.bindInto(rec.Path, m)
}

// gc removes what no tracked sandbox or recorded volume accounts for.
func (d *Driver) gc() error {
	var errs []error
	state := d.cfg.StateDir
	// Sandboxes the host did not list.
	keepImages := map[string]bool{}
	ents, err := os.ReadDir(sandboxesDir(state))
	if err != nil {
		return err
	}
	for _, e := range ents {
		id, ok := unescapeID(e.Name())
		if ok && d.sandboxes[id] != nil {
			keepImages[sandboxImage(state, e.Name())] = true
			continue
		}
		d.log.Info("storage: removing a sandbox nobody knows (a crash's leftover)", "dir", e.Name())
		if err := d.removeDir(filepath.Join(sandboxesDir(state), e.Name()), sandboxImage(state, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	// Volume directories without a record.
	if ents, err = os.ReadDir(volumesDir(state)); err != nil {
		return err
	}
	for _, e := range ents {
		image := volumeImage(state, e.Name())
		id, ok := unescapeID(e.Name())
		if (ok && d.volumes[id] != nil) || d.unreadable[e.Name()] {
			keepImages[image] = true
			continue
		}
		d.log.Info("storage: removing a volume without a record (a crash's leftover)", "dir", e.Name())
		if err := d.removeDir(filepath.Join(volumesDir(state), e.Name()), image); err != nil {
			errs = append(errs, err)
		}
	}
	// Mounts in tracked sandboxes that the host did not record.
	all, err := mounts()
	if err != nil {
		return err
	}
	for _, sb := range d.sandboxes {
		want := map[string]bool{sb.Path: true}
		for _, m := range sb.Mounts {
			want[m.Path] = true
		}
		for _, p := range mountsUnder(all, sb.Path) {
			if want[p] {
				continue
			}
			d.log.Info("storage: removing a mount nobody recorded", "path", p)
			if err := unmountAll(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Images of nothing.
	if ents, err = os.ReadDir(imagesDir(state)); err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(imagesDir(state), e.Name())
		if !keepImages[p] {
			if err := os.Remove(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Loop devices backed by our images that no mount holds: attached by
	// a driver that died before mounting (autoclear needs a last close
	// that a crash may not give).
	if all, err = mounts(); err != nil {
		return err
	}
	loops, err := loopDevices()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, l := range loops {
		backing := strings.TrimSuffix(l.Backing, " (deleted)")
		if filepath.Dir(backing) != imagesDir(state) {
			continue
		}
		if slices.ContainsFunc(all, func(m mountEntry) bool { return m.Source == "/dev/"+l.Name }) {
			continue
		}
		d.log.Info("storage: detaching a loop device nothing mounts", "device", l.Name, "backing", l.Backing)
		if err := detachLoop(l.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
