//go:build linux

package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// Driver is the built-in storage driver. Create it with New; it implements
// contract.StorageDriver. Its methods are safe for concurrent use and are
// serialized (a 1 GiB loop volume takes ~40 ms to make and mount).
type Driver struct {
	cfg  Config
	log  *slog.Logger
	mode Enforcement // what sized objects get

	mu        sync.Mutex
	sandboxes map[string]*contract.Sandbox
	volumes   map[string]*volumeMeta
	projects  map[uint32]bool // quota projects in use
	// unreadable are the escaped IDs of volume records that could not be
	// read: their data is kept, not offered.
	unreadable map[string]bool
}

var _ contract.StorageDriver = (*Driver)(nil)

// New returns a driver on cfg.StateDir, choosing the enforcement (see
// Enforcement) and loading the volumes recorded there. It changes nothing
// on the node but its directories: the host calls Recover next, which
// mounts what a reboot unmounted and removes a crash's leftovers.
func New(cfg Config) (*Driver, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("storage: no state dir")
	}
	dir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	cfg.StateDir = dir
	hv, err := checkHostVolumes(cfg.HostVolumes)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	cfg.HostVolumes = hv
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{sandboxesDir(dir), volumesDir(dir), imagesDir(dir), metaDir(dir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
	}
	d := &Driver{cfg: cfg, log: log, sandboxes: map[string]*contract.Sandbox{}, volumes: map[string]*volumeMeta{},
		projects: map[uint32]bool{}, unreadable: map[string]bool{}}
	if d.mode, err = chooseEnforcement(dir, cfg.Enforcement); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	log.Info("storage: sizes enforced", "enforcement", d.mode, "state_dir", dir)
	vols, err := loadVolumes(metaDir(dir), log)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	for name, v := range vols {
		if v == nil {
			d.unreadable[name] = true
			continue
		}
		d.volumes[v.ID] = v
		if v.Enforcement == EnforceQuota {
			d.projects[v.Project] = true
		}
	}
	if d.mode == EnforceQuota {
		// Projects of sandboxes a previous run left: not to be reused
		// before Recover has sorted them out.
		ents, _ := os.ReadDir(sandboxesDir(dir))
		for _, e := range ents {
			if id, err := project(filepath.Join(sandboxesDir(dir), e.Name())); err == nil && id != 0 {
				d.projects[id] = true
			}
		}
	}
	return d, nil
}

// Enforcement returns how the driver enforces sizes.
func (d *Driver) Enforcement() Enforcement { return d.mode }

// chooseEnforcement resolves want for the filesystem of dir.
func chooseEnforcement(dir string, want Enforcement) (Enforcement, error) {
	quotaErr := projectQuotasOn(dir)
	loopErr := loopUsable()
	switch want {
	case EnforceAuto:
		switch {
		case quotaErr == nil:
			return EnforceQuota, nil
		case loopErr == nil:
			return EnforceLoop, nil
		}
		return EnforceNone, nil
	case EnforceQuota:
		return want, quotaErr
	case EnforceLoop:
		return want, loopErr
	case EnforceNone:
		return want, nil
	}
	return "", fmt.Errorf("enforcement %q: want quota, loop, none or empty", want)
}

// loopUsable says whether loop images can be made (nil) or why not.
func loopUsable() error {
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return fmt.Errorf("no loop devices: %w", err)
	}
	if _, err := os.Stat(mkfsExt4); err != nil {
		return fmt.Errorf("no mkfs.ext4: %w", err)
	}
	return nil
}

// PrepareSandbox implements contract.StorageDriver.
func (d *Driver) PrepareSandbox(_ context.Context, id string, size int64) (*contract.Sandbox, error) {
	name, err := escapeID(id)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if err := checkSize(size, true); err != nil {
		return nil, fmt.Errorf("sandbox %q: %w", id, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := filepath.Join(sandboxesDir(d.cfg.StateDir), name)
	if _, ok := d.sandboxes[id]; ok {
		return nil, fmt.Errorf("sandbox %q: already prepared: %w", id, contract.ErrConflict)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			err = fmt.Errorf("%s exists (not recovered): %w", dir, contract.ErrConflict)
		}
		return nil, fmt.Errorf("sandbox %q: %w", id, err)
	}
	sb := &contract.Sandbox{ContainerID: id, Path: dir, SizeBytes: size}
	if size > 0 {
		sb.Enforced, err = d.enforce(dir, sandboxImage(d.cfg.StateDir, name), size, false)
		if err != nil {
			d.removeDir(dir, sandboxImage(d.cfg.StateDir, name))
			return nil, fmt.Errorf("sandbox %q: %w", id, err)
		}
	}
	d.sandboxes[id] = sb
	out := *sb
	return &out, nil
}

// enforce limits dir to size bytes in the driver's mode and says whether
// it did. Loop images (with a journal if asked) live at image.
func (d *Driver) enforce(dir, image string, size int64, journal bool) (bool, error) {
	switch d.mode {
	case EnforceLoop:
		var fs unix.Statfs_t
		if err := unix.Statfs(filepath.Dir(image), &fs); err == nil && uint64(size) > fs.Bavail*uint64(fs.Bsize) {
			return false, fmt.Errorf("%d bytes, %d free on the node: %w", size, fs.Bavail*uint64(fs.Bsize), contract.ErrExhausted)
		}
		if err := makeImage(image, size, journal); err != nil {
			if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EFBIG) {
				err = fmt.Errorf("%w: %w", err, contract.ErrExhausted)
			}
			return false, err
		}
		if err := mountImage(image, dir); err != nil {
			return false, err
		}
		// The image's root is the sandbox or volume: no lost+found in it
		// (e2fsck makes one again if it ever needs it).
		os.Remove(filepath.Join(dir, "lost+found"))
		return true, nil
	case EnforceQuota:
		id := d.newProject()
		if err := setProject(dir, id); err != nil {
			return false, err
		}
		if err := setProjectLimit(dir, id, size); err != nil {
			return false, err
		}
		d.projects[id] = true
		return true, nil
	}
	return false, nil
}

// projectBase is the first quota project ID the driver uses ("dc" << 16).
const projectBase = 0x64630000

func (d *Driver) newProject() uint32 {
	id := uint32(projectBase)
	for d.projects[id] {
		id++
	}
	return id
}

// removeDir unmounts everything at and beneath dir, drops its quota
// project, and removes it and its image. It refuses to remove a
// directory that still has a mount beneath it.
func (d *Driver) removeDir(dir, image string) error {
	if err := unmountAll(dir); err != nil {
		return err
	}
	if id, err := project(dir); err == nil && id != 0 && d.mode == EnforceQuota {
		if err := setProjectLimit(dir, id, 0); err != nil {
			d.log.Warn("storage: clear project limit", "dir", dir, "err", err)
		}
		delete(d.projects, id)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.Remove(image); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// CleanupSandbox implements contract.StorageDriver.
func (d *Driver) CleanupSandbox(_ context.Context, id string) error {
	name, err := escapeID(id)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.removeDir(filepath.Join(sandboxesDir(d.cfg.StateDir), name), sandboxImage(d.cfg.StateDir, name)); err != nil {
		return fmt.Errorf("sandbox %q: cleanup: %w", id, err)
	}
	delete(d.sandboxes, id)
	return nil
}

// CreateVolume implements contract.StorageDriver.
func (d *Driver) CreateVolume(_ context.Context, req contract.VolumeRequest) (*contract.Volume, error) {
	name, err := escapeID(req.ID)
	if err != nil {
		return nil, fmt.Errorf("volume: %w", err)
	}
	if err := checkSize(req.SizeBytes, false); err != nil {
		return nil, fmt.Errorf("volume %q: %w", req.ID, err)
	}
	if req.Role == "" {
		return nil, fmt.Errorf("volume %q: no role", req.ID)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if v, ok := d.volumes[req.ID]; ok {
		if v.Role != req.Role || v.SizeBytes != req.SizeBytes {
			return nil, fmt.Errorf("volume %q: exists for role %q, %d bytes: %w", req.ID, v.Role, v.SizeBytes, contract.ErrConflict)
		}
		out := v.Volume
		return &out, nil
	}
	dir := filepath.Join(volumesDir(d.cfg.StateDir), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, os.ErrExist) {
			err = fmt.Errorf("%s exists (not recovered): %w", dir, contract.ErrConflict)
		}
		return nil, fmt.Errorf("volume %q: %w", req.ID, err)
	}
	image := volumeImage(d.cfg.StateDir, name)
	v := &volumeMeta{Volume: contract.Volume{ID: req.ID, Role: req.Role, Path: dir, SizeBytes: req.SizeBytes}, Enforcement: d.mode}
	v.Enforced, err = d.enforce(dir, image, req.SizeBytes, true)
	if err == nil && d.mode == EnforceQuota {
		v.Project, err = project(dir)
	}
	if !v.Enforced {
		v.Enforcement = EnforceNone
	}
	if err == nil {
		// The record makes the volume exist: a crash before it leaves a
		// directory that Recover removes.
		err = writeMeta(metaDir(d.cfg.StateDir), name, v)
	}
	if err != nil {
		d.removeDir(dir, image)
		return nil, fmt.Errorf("volume %q: %w", req.ID, err)
	}
	d.volumes[req.ID] = v
	out := v.Volume
	return &out, nil
}

// DestroyVolume implements contract.StorageDriver.
func (d *Driver) DestroyVolume(_ context.Context, id string) error {
	name, err := escapeID(id)
	if err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.volumes[id]; !ok {
		return nil
	}
	if by := d.mountedIn(id); by != "" {
		return fmt.Errorf("volume %q: mounted in sandbox %q: %w", id, by, contract.ErrConflict)
	}
	// Without its record the volume is gone: a crash after this line
	// leaves a directory that Recover removes.
	if err := removeMeta(metaDir(d.cfg.StateDir), name); err != nil {
		return fmt.Errorf("volume %q: %w", id, err)
	}
	delete(d.volumes, id)
	if err := d.removeDir(filepath.Join(volumesDir(d.cfg.StateDir), name), volumeImage(d.cfg.StateDir, name)); err != nil {
		return fmt.Errorf("volume %q: destroy: %w", id, err)
	}
	return nil
}

// mountedIn returns a sandbox the volume is mounted in, or "".
func (d *Driver) mountedIn(volumeID string) string {
	for _, sb := range d.sandboxes {
		for _, m := range sb.Mounts {
			if m.VolumeID == volumeID {
				return sb.ContainerID
			}
		}
	}
	return ""
}

// ListVolumes implements contract.StorageDriver.
func (d *Driver) ListVolumes(context.Context) ([]contract.Volume, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]contract.Volume, 0, len(d.volumes))
	for _, v := range d.volumes {
		out = append(out, v.Volume)
	}
	return out, nil
}

// Mount implements contract.StorageDriver. A host path must be a declared
// host volume (Config.HostVolumes) or beneath one; one declared read-only
// is mounted read-only whatever req.ReadOnly says.
func (d *Driver) Mount(_ context.Context, req contract.MountRequest) (*contract.Mount, error) {
	if err := checkTarget(req.Target); err != nil {
		return nil, fmt.Errorf("mount: %w", err)
	}
	if (req.VolumeID == "") == (req.HostPath == "") {
		return nil, errors.New("mount: want exactly one of a volume and a host path")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sb, ok := d.sandboxes[req.ContainerID]
	if !ok {
		return nil, fmt.Errorf("mount: sandbox %q: %w", req.ContainerID, contract.ErrTaskNotFound)
	}
	for _, m := range sb.Mounts {
		if m.Target == req.Target || strings.HasPrefix(req.Target, m.Target+"/") || strings.HasPrefix(m.Target, req.Target+"/") {
			return nil, fmt.Errorf("mount %q in sandbox %q: overlaps %q: %w", req.Target, req.ContainerID, m.Target, contract.ErrConflict)
		}
	}
	m := contract.Mount{ContainerID: req.ContainerID, VolumeID: req.VolumeID, Target: req.Target,
		Path: filepath.Join(sb.Path, req.Target), ReadOnly: req.ReadOnly}
	if req.VolumeID != "" {
		v, ok := d.volumes[req.VolumeID]
		if !ok {
			return nil, fmt.Errorf("mount: volume %q: %w", req.VolumeID, contract.ErrTaskNotFound)
		}
		if err := d.ensureMounted(v); err != nil {
			return nil, fmt.Errorf("mount: %w", err)
		}
		m.Source = v.Path
	} else {
		ro, err := d.hostPathAllowed(req.HostPath)
		if err != nil {
			return nil, fmt.Errorf("mount: %w", err)
		}
		m.Source, m.ReadOnly = req.HostPath, req.ReadOnly || ro
	}
	if err := d.bindInto(sb.Path, m); err != nil {
		return nil, fmt.Errorf("mount %q in sandbox %q: %w", req.Target, req.ContainerID, err)
	}
	sb.Mounts = append(sb.Mounts, m)
	return &m, nil
}

// bindInto makes mount m in the sandbox at root.
func (d *Driver) bindInto(root string, m contract.Mount) error {
	st, err := os.Stat(m.Source)
	if err != nil {
		return err
	}
	t, err := openTarget(root, m.Target, !st.IsDir())
	if err != nil {
		return err
	}
	defer t.Close()
	return bind(m.Source, t, m.ReadOnly)
}

// hostPathAllowed checks that p is a declared host volume or beneath one
// and says whether it is read-only.
func (d *Driver) hostPathAllowed(p string) (readOnly bool, err error) {
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return false, fmt.Errorf("host path %q: not an absolute clean path", p)
	}
	for _, hv := range d.cfg.HostVolumes {
		if p == hv.Path || strings.HasPrefix(p, strings.TrimSuffix(hv.Path, "/")+"/") {
			return hv.ReadOnly, nil
		}
	}
	return false, fmt.Errorf("host path %q: not a declared host volume: %w", p, os.ErrPermission)
}

// ensureMounted mounts a loop volume whose mount is gone (after a reboot).
func (d *Driver) ensureMounted(v *volumeMeta) error {
	if v.Enforcement != EnforceLoop {
		return nil
	}
	all, err := mounts()
	if err != nil {
		return err
	}
	if isMountPoint(all, v.Path) {
		return nil
	}
	name, _ := escapeID(v.ID)
	if err := mountImage(volumeImage(d.cfg.StateDir, name), v.Path); err != nil {
		return fmt.Errorf("volume %q: %w", v.ID, err)
	}
	return nil
}

// Unmount implements contract.StorageDriver.
func (d *Driver) Unmount(_ context.Context, id, target string) error {
	if err := checkTarget(target); err != nil {
		return fmt.Errorf("unmount: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sb, ok := d.sandboxes[id]
	if !ok {
		return nil
	}
	p := filepath.Join(sb.Path, target)
	if err := unmountAll(p); err != nil {
		return fmt.Errorf("unmount %q in sandbox %q: %w", target, id, err)
	}
	for i, m := range sb.Mounts {
		if m.Target == target {
			sb.Mounts = append(sb.Mounts[:i], sb.Mounts[i+1:]...)
			break
		}
	}
	return nil
}

// Detect returns the enforcement New would choose for the filesystem of
// dir (which must exist) with EnforceAuto, and with EnforceNone why
// neither project quotas nor loop images can be used there.
func Detect(dir string) (Enforcement, error) {
	quotaErr := projectQuotasOn(dir)
	loopErr := loopUsable()
	switch {
	case quotaErr == nil:
		return EnforceQuota, nil
	case loopErr == nil:
		return EnforceLoop, nil
	}
	return EnforceNone, loopErr
}
