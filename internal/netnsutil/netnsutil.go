//go:build linux

package netnsutil

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dumpRetries bounds how many times Dump runs a netlink dump again.
const dumpRetries = 10

// Dump runs list, a netlink dump (links, addresses, routes, neighbours),
// again while the kernel flags it interrupted by a concurrent change
// (netlink.ErrDumpInterrupted: "results may be incomplete or
// inconsistent"), as it does when other links come and go on the node. It
// returns the first complete result, or the last error after dumpRetries.
func Dump[T any](list func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == dumpRetries {
			return v, err
		}
	}
}

// RemoveNetns unmounts and removes the namespace file at path (a bind
// mount of a network namespace); a missing or unmounted file is not an
// error.
func RemoveNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
