//go:build linux

package netnsutil

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNetns runs fn in the network namespace at path (a namespace file such
// as /run/netns/NAME or /proc/PID/ns/net) and returns fn's error; "" runs
// fn on the calling goroutine, in the caller's namespace.
//
// fn runs on a new goroutine locked to its OS thread: the thread enters
// the namespace, runs fn, and enters its original namespace again before
// it is unlocked and returned to the scheduler. If restoring fails the
// thread is left locked, so Go discards it with the goroutine and no
// other goroutine ever runs in the wrong namespace.
//
// Only what fn does on its own goroutine happens in the namespace:
// goroutines fn starts run elsewhere. Sockets fn creates belong to the
// namespace for good, so a connection dialed or a listener opened inside
// keeps working once InNetns returns. Errors entering the namespace are
// "setns PATH: ..." or the open's error.
func InNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- inNetnsLocked(path, fn)
	}()
	return <-errc
}

// inNetnsLocked runs fn in the namespace at path on the current, locked
// OS thread and unlocks it once it is back in its own namespace.
func inNetnsLocked(path string, fn func() error) error {
	orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: own namespace: %w", path, err)
	}
	defer unix.Close(orig)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", path, err)
	}
	err = unix.Setns(fd, unix.CLONE_NEWNET)
	unix.Close(fd)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", path, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Left locked: the thread ends with the goroutine.
		if ferr == nil {
			ferr = fmt.Errorf("setns %s: restoring the thread's namespace: %w", path, err)
		}
		return ferr
	}
	runtime.UnlockOSThread()
	return ferr
}
