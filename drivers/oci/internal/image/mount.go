package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func (s *Store) containerDir(id string) string { return filepath.Join(s.dir, "containers", id) }

// mounted reports whether an overlay is mounted on rootfs: its device differs
// from its parent's.
func mounted(rootfs string) (bool, error) {
	var st, pst unix.Stat_t
	if err := unix.Lstat(rootfs, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(rootfs), &pst); err != nil {
		return false, err
	}
	return st.Dev != pst.Dev, nil
}

// Mount builds container id's root filesystem: an overlay whose lowerdirs
// are img's shared layers (top first) and whose upperdir and workdir are
// under containers/<id>, mounted read-only when readOnly. It first records id
// → img's digest on disk (the reference that keeps the image from Remove and
// its layers from GC). It is idempotent for the same id and image: a
// mounted container's rootfs is returned as is. It returns the rootfs path.
func (s *Store) Mount(ctx context.Context, img *Image, id string, readOnly bool) (string, error) {
	if img == nil {
		return "", errors.New("mount: image is nil")
	}
	if !validID.MatchString(id) {
		return "", fmt.Errorf("mount: container id %q: want 1-128 of [A-Za-z0-9_.-], not starting with . or -", id)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("mount %s: %w", id, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	rec, ok := s.lookup(img.Digest)
	if !ok {
		return "", fmt.Errorf("mount %s: image %s: %w (pull it first)", id, img.Digest, ErrNotFound)
	}
	cdir := s.containerDir(id)
	if b, err := os.ReadFile(filepath.Join(cdir, "image")); err == nil && strings.TrimSpace(string(b)) != rec.Digest {
		return "", fmt.Errorf("mount %s: container already uses image %s, not %s", id, strings.TrimSpace(string(b)), rec.Digest)
	}
	for _, d := range []string{"upper", "work", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(cdir, d), 0o755); err != nil {
			return "", fmt.Errorf("mount %s: %w", id, err)
		}
	}
	if err := writeFileAtomic(filepath.Join(cdir, "image"), []byte(rec.Digest+"\n")); err != nil {
		return "", fmt.Errorf("mount %s: %w", id, err)
	}
	s.containers[id] = rec.Digest
	rootfs, err := s.mountOverlay(id, rec, readOnly)
	if err != nil {
		return "", err
	}
	s.touch(rec)
	return rootfs, nil
}

func (s *Store) mountOverlay(id string, rec *record, readOnly bool) (string, error) {
	cdir := s.containerDir(id)
	rootfs := filepath.Join(cdir, "rootfs")
	if m, err := mounted(rootfs); err != nil {
		return "", fmt.Errorf("mount %s: %w", id, err)
	} else if m {
		return rootfs, nil
	}
	img := s.image(rec)
	lower := make([]string, 0, len(img.Layers))
	for i := len(img.Layers) - 1; i >= 0; i-- {
		if strings.ContainsAny(img.Layers[i], ":,") {
			return "", fmt.Errorf("mount %s: layer path %q contains ':' or ','", id, img.Layers[i])
		}
		lower = append(lower, img.Layers[i])
	}
	if len(lower) == 0 { // an image without layers: an empty lower dir
		empty := filepath.Join(cdir, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return "", fmt.Errorf("mount %s: %w", id, err)
		}
		lower = append(lower, empty)
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"),
		filepath.Join(cdir, "upper"), filepath.Join(cdir, "work"))
	if len(data) >= os.Getpagesize() {
		// mount(2) takes one page of options; the new mount API takes one
		// lower dir at a time (Linux ≥ 6.8).
		if err := mountOverlayFsconfig(lower, filepath.Join(cdir, "upper"), filepath.Join(cdir, "work"), rootfs, readOnly); err != nil {
			return "", fmt.Errorf("mount %s: overlay of %d layers (%d bytes of options, more than mount(2) takes) on %s: %w", id, len(lower), len(data), rootfs, err)
		}
		return rootfs, nil
	}
	var flags uintptr
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("overlay", rootfs, "overlay", flags, data); err != nil {
		return "", fmt.Errorf("mount %s: overlay on %s: %w", id, rootfs, err)
	}
	return rootfs, nil
}

// touch records that rec was just used (best effort).
func (s *Store) touch(rec *record) {
	s.imu.Lock()
	r := *rec
	r.LastUsed = time.Now().UTC()
	if cur, ok := s.images[rec.Digest]; ok {
		cur.LastUsed = r.LastUsed
	}
	s.imu.Unlock()
	if err := s.writeRecord(&r); err != nil {
		s.log.Warn("image store: record last use", "digest", rec.Digest, "err", err)
	}
}

// Unmount unmounts container id's root filesystem (lazily if it is busy),
// deletes its upper and work dirs and drops its reference to the image. It
// is idempotent: an unknown id is not an error.
func (s *Store) Unmount(id string) error {
	if !validID.MatchString(id) {
		return fmt.Errorf("unmount: container id %q: want 1-128 of [A-Za-z0-9_.-], not starting with . or -", id)
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	cdir := s.containerDir(id)
	rootfs := filepath.Join(cdir, "rootfs")
	for i := 0; i < 8; i++ {
		m, err := mounted(rootfs)
		if err != nil {
			return fmt.Errorf("unmount %s: %w", id, err)
		}
		if !m {
			break
		}
		err = unix.Unmount(rootfs, 0)
		if errors.Is(err, syscall.EBUSY) {
			err = unix.Unmount(rootfs, unix.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("unmount %s: %s: %w", id, rootfs, err)
		}
	}
	// The image reference goes first, so a crash below leaves no reference.
	if err := os.Remove(filepath.Join(cdir, "image")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unmount %s: %w", id, err)
	}
	delete(s.containers, id)
	if err := os.RemoveAll(cdir); err != nil {
		return fmt.Errorf("unmount %s: %w", id, err)
	}
	return nil
}

// Recover re-registers container id after a restart of the plugin: its
// overlay normally is still mounted (mounts live in the host's mount
// namespace) and its rootfs is returned; if it is not (the host rebooted),
// it is mounted again over the recorded image with the kept upper dir.
// ErrNotFound if the store has no such container or no longer its image.
func (s *Store) Recover(id string, readOnly bool) (string, error) {
	if !validID.MatchString(id) {
		return "", fmt.Errorf("recover: container id %q: want 1-128 of [A-Za-z0-9_.-], not starting with . or -", id)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.cmu.Lock()
	defer s.cmu.Unlock()
	b, err := os.ReadFile(filepath.Join(s.containerDir(id), "image"))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("recover %s: container %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("recover %s: %w", id, err)
	}
	digest := strings.TrimSpace(string(b))
	rec, ok := s.lookup(digest)
	if !ok {
		return "", fmt.Errorf("recover %s: image %s: %w", id, digest, ErrNotFound)
	}
	s.containers[id] = digest
	return s.mountOverlay(id, rec, readOnly)
}

// Containers returns the ids of the containers the store has, mounted or
// not, with their image digests.
func (s *Store) Containers() (map[string]string, error) {
	return s.containerImages(), nil
}

// mountOverlayFsconfig mounts an overlay with fsopen/fsconfig/fsmount,
// passing lower dirs (top first) one by one with "lowerdir+".
func mountOverlayFsconfig(lower []string, upper, work, target string, readOnly bool) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fd)
	for _, l := range lower {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			return fmt.Errorf("fsconfig lowerdir+ %s: %w", l, err)
		}
	}
	if err := unix.FsconfigSetString(fd, "upperdir", upper); err != nil {
		return fmt.Errorf("fsconfig upperdir: %w", err)
	}
	if err := unix.FsconfigSetString(fd, "workdir", work); err != nil {
		return fmt.Errorf("fsconfig workdir: %w", err)
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("fsconfig create: %w", err)
	}
	var attr int
	if readOnly {
		attr = unix.MOUNT_ATTR_RDONLY
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}
