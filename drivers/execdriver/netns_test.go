//go:build linux

package execdriver

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// newNetns makes a network namespace bound to a file in a temp dir (as
// `ip netns add` does under /run/netns) and removes it at cleanup.
func newNetns(t *testing.T) (path string, ino uint64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creating a network namespace")
	}
	path = filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		// This thread ends in the new namespace: it stays locked and dies
		// with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount("/proc/thread-self/ns/net", path, "", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		t.Fatalf("netns: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(path, unix.MNT_DETACH) })
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return path, st.Ino
}

// TestDriver_Netns: a task with TaskConfig.Netns runs in that network
// namespace (and only it: the supervisor's thread returns to its own).
func TestDriver_Netns(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	ns, ino := newNetns(t)
	caps, _ := d.Capabilities(t.Context())
	if !caps.JoinNetns {
		t.Fatal("Capabilities.JoinNetns = false")
	}
	out := filepath.Join(t.TempDir(), "out")
	env := map[string]string{"PATH": testPath}
	start(t, d, &contract.TaskConfig{ID: "in-ns", Command: "readlink", Args: []string{"/proc/self/ns/net"}, Env: env, StdoutPath: out, Netns: ns})
	if r := wait(t, d, "in-ns"); !r.Successful() {
		t.Fatalf("readlink in the netns: %+v", r)
	}
	start(t, d, &contract.TaskConfig{ID: "host-ns", Command: "readlink", Args: []string{"/proc/self/ns/net"}, Env: env, StdoutPath: out})
	if r := wait(t, d, "host-ns"); !r.Successful() {
		t.Fatalf("readlink: %+v", r)
	}
	b, _ := os.ReadFile(out)
	lines := strings.Fields(string(b))
	want := "net:[" + strconv.FormatUint(ino, 10) + "]"
	if len(lines) != 2 || lines[0] != want || lines[1] == want {
		t.Errorf("namespaces = %q, want %s first and the host's (another) after", lines, want)
	}
	if _, err := d.StartTask(t.Context(), &contract.TaskConfig{ID: "bad-ns", Command: "true", Env: env, Netns: "/nonexistent/ns"}); err == nil || !strings.Contains(err.Error(), "netns") {
		t.Errorf("start in a missing netns: err = %v, want one naming the netns", err)
	}
}
