package store

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// statfsAvail returns the bytes of dir's filesystem available to an
// unprivileged writer (f_bavail).
func statfsAvail(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
