//go:build linux

package bridge

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/netnsutil"
)

// createNetns creates a new network namespace and bind-mounts it on path
// (which must not exist). The namespace is made on a goroutine locked to
// its OS thread which never unlocks: the thread, whose namespace changed,
// ends with the goroutine instead of returning to the scheduler.
func createNetns(path string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: see above.
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			errc <- err
			return
		}
		f.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			os.Remove(path)
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			os.Remove(path)
			errc <- fmt.Errorf("bind mount: %w", err)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// isNetns reports whether path is a mounted network namespace.
func isNetns(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// setForwarding enables IPv4 forwarding on one device of the namespace at
// nsPath (the host's when "").
func setForwarding(nsPath, dev string) error {
	return netnsutil.InNetns(nsPath, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/"+dev+"/forwarding", []byte("1"), 0o644)
	})
}
