//go:build linux

package bridge

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// dumpRetries bounds how many times dump runs a netlink dump again.
const dumpRetries = 10

// dump runs list, a netlink dump (a list of links, addresses, routes or
// neighbours), again while the kernel flags it interrupted by a concurrent
// change (netlink.ErrDumpInterrupted: "results may be incomplete or
// inconsistent"), as it does when other links come and go on the node. It
// returns the first complete result, or the last error after dumpRetries.
func dump[T any](list func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == dumpRetries {
			return v, err
		}
	}
}
