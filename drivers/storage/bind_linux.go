//go:build linux

package storage

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// openTarget opens (O_PATH) the mount point rel beneath root, creating the
// missing directories and, for a file source, an empty file as the last
// component. No component may be a symlink and nothing may resolve out of
// root, so a task that owns the sandbox cannot redirect a mount onto the
// node's own files.
func openTarget(root, rel string, file bool) (*os.File, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", root, err)
	}
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		last := i == len(parts)-1
		if last && file {
			nfd, err := unix.Openat2(fd, p, &unix.OpenHow{
				Flags: unix.O_CREAT | unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC, Mode: 0o644,
				Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
			})
			if err == nil {
				unix.Close(nfd)
			} else if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.ETXTBSY) {
				unix.Close(fd)
				return nil, fmt.Errorf("create %s in %s: %w", rel, root, err)
			}
		} else if err := unix.Mkdirat(fd, p, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(fd)
			return nil, fmt.Errorf("mkdir %s in %s: %w", rel, root, err)
		}
		flags := uint64(unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC)
		if !last || !file {
			flags |= unix.O_DIRECTORY
		}
		nfd, err := unix.Openat2(fd, p, &unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
		unix.Close(fd)
		if err != nil {
			return nil, fmt.Errorf("open %s in %s: %w", rel, root, err)
		}
		fd = nfd
	}
	return os.NewFile(uintptr(fd), root+"/"+rel), nil
}

// bind mounts src (a directory or file, not its submounts) on target,
// read-only if asked. The new mount API attaches the clone already
// read-only: there is no moment at which the target is writable.
func bind(src string, target *os.File, readOnly bool) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if errors.Is(err, unix.ENOSYS) {
		return bindLegacy(src, target, readOnly) // a kernel before 5.2/5.12
	}
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(tree)
	if readOnly {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			if errors.Is(err, unix.ENOSYS) {
				return bindLegacy(src, target, readOnly)
			}
			return fmt.Errorf("mount_setattr %s: %w", src, err)
		}
	}
	if err := unix.MoveMount(tree, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount %s to %s: %w", src, target.Name(), err)
	}
	return nil
}

// bindLegacy is bind with mount(2): a bind, then a read-only remount.
func bindLegacy(src string, target *os.File, readOnly bool) error {
	fdPath := fmt.Sprintf("/proc/self/fd/%d", target.Fd())
	if err := unix.Mount(src, fdPath, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s to %s: %w", src, target.Name(), err)
	}
	if !readOnly {
		return nil
	}
	if err := unix.Mount("", target.Name(), "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		unix.Unmount(target.Name(), unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		return fmt.Errorf("remount %s read-only: %w", target.Name(), err)
	}
	return nil
}
