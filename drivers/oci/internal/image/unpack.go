package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// unpack extracts an uncompressed layer tar stream into dir (created if
// missing) in overlayfs form: ".wh.NAME" becomes a 0:0 character device NAME
// and ".wh..wh..opq" the xattr trusted.overlay.opaque=y on its directory.
// Modes, owners, mtimes, xattrs, symlinks, hard links (within the layer) and
// device nodes are kept. It never writes outside dir: names with ".." are
// refused, and no symlink is followed while writing (a path through a
// symlink is refused). It returns the total size of regular files.
func unpack(r io.Reader, dir string) (int64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	u := &unpacker{root: dir, dirs: map[string]bool{"": true}}
	tr := tar.NewReader(r)
	buf := make([]byte, 256<<10)
	var size int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("%w: tar: %v", ErrMalformed, err)
		}
		n, err := u.entry(h, tr, buf)
		if err != nil {
			return 0, err
		}
		size += n
	}
	// Directory times last: creating entries inside changes them.
	for i := len(u.dirTimes) - 1; i >= 0; i-- {
		d := u.dirTimes[i]
		_ = setTimes(d.path, d.atime, d.mtime)
	}
	return size, nil
}

type dirTime struct {
	path         string
	atime, mtime time.Time
}

type unpacker struct {
	root     string
	dirs     map[string]bool // relative dirs known to be real directories
	dirTimes []dirTime
}

// cleanName returns the entry's path relative to the layer root, refusing
// ".." components.
func cleanName(name string) (string, error) {
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("tar entry %q: %w: NUL in name", name, ErrMalformed)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("tar entry %q: %w: path escapes the layer", name, ErrMalformed)
		}
	}
	rel := strings.TrimPrefix(path.Clean("/"+name), "/")
	return rel, nil
}

// ensureDir makes sure the relative dir exists as a real directory under the
// root, creating missing components (0755) and refusing symlinks.
func (u *unpacker) ensureDir(rel string, create bool) error {
	if u.dirs[rel] {
		return nil
	}
	cur := ""
	for _, c := range strings.Split(rel, "/") {
		if cur == "" {
			cur = c
		} else {
			cur += "/" + c
		}
		if u.dirs[cur] {
			continue
		}
		p := filepath.Join(u.root, cur)
		fi, err := os.Lstat(p)
		switch {
		case err == nil && fi.IsDir():
		case err == nil && fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("path %q: %w: goes through a symlink", cur, ErrMalformed)
		case err == nil:
			return fmt.Errorf("path %q: %w: not a directory", cur, ErrMalformed)
		case errors.Is(err, os.ErrNotExist) && create:
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
		default:
			return err
		}
		u.dirs[cur] = true
	}
	return nil
}

func parentOf(rel string) string {
	d := path.Dir(rel)
	if d == "." {
		return ""
	}
	return d
}

func (u *unpacker) entry(h *tar.Header, r io.Reader, buf []byte) (int64, error) {
	rel, err := cleanName(h.Name)
	if err != nil {
		return 0, err
	}
	if rel == "" {
		return 0, nil // the layer root itself
	}
	parent, base := parentOf(rel), path.Base(rel)
	if err := u.ensureDir(parent, true); err != nil {
		return 0, fmt.Errorf("tar entry %q: %w", h.Name, err)
	}
	full := filepath.Join(u.root, rel)

	switch {
	case base == whiteoutOpaque:
		if err := unix.Lsetxattr(filepath.Join(u.root, parent), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return 0, fmt.Errorf("tar entry %q: opaque dir: %w", h.Name, err)
		}
		return 0, nil
	case strings.HasPrefix(base, whiteoutMeta):
		return 0, nil // other AUFS metadata (.wh..wh.plnk, …) has no overlay form
	case strings.HasPrefix(base, whiteoutPrefix):
		name := base[len(whiteoutPrefix):]
		if name == "" || name == "." {
			return 0, fmt.Errorf("tar entry %q: %w: empty whiteout", h.Name, ErrMalformed)
		}
		target := filepath.Join(u.root, parent, name)
		if err := u.clear(path.Join(parent, name)); err != nil {
			return 0, fmt.Errorf("tar entry %q: %w", h.Name, err)
		}
		if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
			return 0, fmt.Errorf("tar entry %q: whiteout: %w", h.Name, err)
		}
		return 0, nil
	}

	if isSparse(h) {
		// Go's reader expands holes into zeros: a few bytes could write
		// terabytes. Image builders do not write sparse entries.
		return 0, fmt.Errorf("tar entry %q: %w: sparse files are not supported", h.Name, ErrMalformed)
	}
	mode := uint32(h.Mode & 0o7777)
	var size int64
	switch h.Typeflag {
	case tar.TypeDir:
		fi, err := os.Lstat(full)
		if err == nil && !fi.IsDir() {
			if err := u.clear(rel); err != nil {
				return 0, err
			}
			err = os.ErrNotExist
		}
		if err != nil {
			if err := os.Mkdir(full, 0o700); err != nil {
				return 0, fmt.Errorf("tar entry %q: %w", h.Name, err)
			}
		}
		u.dirs[rel] = true
	case tar.TypeReg, tar.TypeRegA:
		if err := u.clear(rel); err != nil {
			return 0, err
		}
		f, err := os.OpenFile(full, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return 0, fmt.Errorf("tar entry %q: %w", h.Name, err)
		}
		n, err := io.CopyBuffer(f, io.LimitReader(r, h.Size), buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil && n != h.Size {
			err = fmt.Errorf("%w: short file: %d of %d bytes", ErrMalformed, n, h.Size)
		}
		if err != nil {
			return 0, fmt.Errorf("tar entry %q: %w", h.Name, err)
		}
		size = n
	case tar.TypeSymlink:
		if err := u.clear(rel); err != nil {
			return 0, err
		}
		if err := os.Symlink(h.Linkname, full); err != nil {
			return 0, fmt.Errorf("tar entry %q: %w", h.Name, err)
		}
	case tar.TypeLink:
		trel, err := cleanName(h.Linkname)
		if err != nil || trel == "" {
			return 0, fmt.Errorf("tar entry %q: %w: hard link target %q outside the layer", h.Name, ErrMalformed, h.Linkname)
		}
		if err := u.ensureDir(parentOf(trel), false); err != nil {
			return 0, fmt.Errorf("tar entry %q: hard link target: %w", h.Name, err)
		}
		target := filepath.Join(u.root, trel)
		if fi, err := os.Lstat(target); err != nil || fi.IsDir() {
			return 0, fmt.Errorf("tar entry %q: %w: hard link target %q missing or a directory", h.Name, ErrMalformed, h.Linkname)
		}
		if trel == rel {
			return 0, nil
		}
		if err := u.clear(rel); err != nil {
			return 0, err
		}
		// link(2) does not follow a symlink target: the link is to the symlink.
		if err := os.Link(target, full); err != nil {
			return 0, fmt.Errorf("tar entry %q: %w", h.Name, err)
		}
		return 0, nil // attributes are the target's
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := u.clear(rel); err != nil {
			return 0, err
		}
		m := mode
		switch h.Typeflag {
		case tar.TypeChar:
			m |= unix.S_IFCHR
		case tar.TypeBlock:
			m |= unix.S_IFBLK
		default:
			m |= unix.S_IFIFO
		}
		if err := unix.Mknod(full, m, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))); err != nil {
			return 0, fmt.Errorf("tar entry %q: %w", h.Name, err)
		}
	default:
		return 0, nil // pax/gnu metadata entries, sparse, …: nothing to write
	}

	if err := os.Lchown(full, h.Uid, h.Gid); err != nil {
		return 0, fmt.Errorf("tar entry %q: chown: %w", h.Name, err)
	}
	for k, v := range h.PAXRecords {
		x, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if err := unix.Lsetxattr(full, x, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return 0, fmt.Errorf("tar entry %q: xattr %s: %w", h.Name, x, err)
		}
	}
	if h.Typeflag != tar.TypeSymlink {
		// After chown, which clears set-id bits.
		if err := unix.Fchmodat(unix.AT_FDCWD, full, mode, 0); err != nil {
			return 0, fmt.Errorf("tar entry %q: chmod: %w", h.Name, err)
		}
	}
	atime := h.AccessTime
	if atime.IsZero() {
		atime = h.ModTime
	}
	if h.Typeflag == tar.TypeDir {
		u.dirTimes = append(u.dirTimes, dirTime{full, atime, h.ModTime})
		return size, nil
	}
	if err := setTimes(full, atime, h.ModTime); err != nil {
		return 0, fmt.Errorf("tar entry %q: times: %w", h.Name, err)
	}
	return size, nil
}

func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// clear removes whatever is at rel (a later entry replaces an earlier one).
func (u *unpacker) clear(rel string) error {
	full := filepath.Join(u.root, rel)
	fi, err := os.Lstat(full)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		for k := range u.dirs {
			if k == rel || strings.HasPrefix(k, rel+"/") {
				delete(u.dirs, k)
			}
		}
		return os.RemoveAll(full)
	}
	return os.Remove(full)
}

func setTimes(p string, atime, mtime time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if atime.IsZero() {
		ts[0] = unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	if mtime.IsZero() {
		ts[1] = unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}
