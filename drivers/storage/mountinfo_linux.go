//go:build linux

package storage

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	Root   string // the mounted directory within its filesystem
	Point  string // the mount point
	FSType string
	Source string
}

// mounts reads /proc/self/mountinfo.
func mounts() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m, ok := parseMountinfo(sc.Text())
		if ok {
			out = append(out, m)
		}
	}
	return out, sc.Err()
}

// parseMountinfo parses one mountinfo line (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(line string) (mountEntry, bool) {
	fields := strings.Fields(line)
	sep := slices.Index(fields, "-")
	if len(fields) < 7 || sep < 6 || len(fields) < sep+3 {
		return mountEntry{}, false
	}
	return mountEntry{
		Root: unescapeOctal(fields[3]), Point: unescapeOctal(fields[4]),
		FSType: fields[sep+1], Source: unescapeOctal(fields[sep+2]),
	}, true
}

// unescapeOctal undoes the kernel's \ooo escapes of space, tab, newline
// and backslash.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// mountsUnder returns the mount points at dir or beneath it, deepest (and,
// for stacked mounts, latest) first: the order to unmount them in.
func mountsUnder(all []mountEntry, dir string) []string {
	var out []string
	for _, m := range all {
		if m.Point == dir || strings.HasPrefix(m.Point, dir+"/") {
			out = append(out, m.Point)
		}
	}
	slices.Reverse(out) // later mounts first, then deeper paths first
	slices.SortStableFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return out
}

// isMountPoint says whether dir is a mount point.
func isMountPoint(all []mountEntry, dir string) bool {
	return slices.ContainsFunc(all, func(m mountEntry) bool { return m.Point == dir })
}

// unmountAll unmounts everything at dir and beneath it, and checks that
// nothing is left: a directory with a mount left beneath it must never be
// removed (RemoveAll would delete the mounted data).
func unmountAll(dir string) error {
	all, err := mounts()
	if err != nil {
		return err
	}
	for _, p := range mountsUnder(all, dir) {
		err := unix.Unmount(p, unix.UMOUNT_NOFOLLOW)
		if errors.Is(err, unix.EBUSY) {
			// A process still holds a file in it: detach it from the
			// tree now; the kernel frees it when the last user goes.
			err = unix.Unmount(p, unix.UMOUNT_NOFOLLOW|unix.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	if all, err = mounts(); err != nil {
		return err
	}
	if left := mountsUnder(all, dir); len(left) > 0 {
		return fmt.Errorf("unmount %s: still mounted: %s", dir, strings.Join(left, ", "))
	}
	return nil
}
