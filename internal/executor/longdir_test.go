package executor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dcos-kernel/dcos/internal/executor/wire"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// TestExecutor_LongStateDir: a state dir whose socket path is longer than
// a unix socket address (108 bytes) still works — the supervisor listens
// and the executor connects through the directory's descriptor — where
// it used to fail (a long --data-dir made the exec driver plugin exit).
// A second executor on the same dir reconnects to the running supervisor
// and recovers the task.
func TestExecutor_LongStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("a-long-data-dir-", 8))
	if sock := filepath.Join(dir, wire.SocketName); len(sock) < len(syscall.RawSockaddrUnix{}.Path) {
		t.Fatalf("socket path %q is short enough for an address: the test would not test", sock)
	}
	e, err := New(Config{StateDir: dir, SupervisorCmd: []string{os.Args[0], "supervisor", dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { waitNoSupervisor(t, dir) })
	t.Cleanup(func() { e.Close() }) // after the task's destroy (cleanups run last first)
	h := startSleeper(t, e, "long-dir", nil)
	if h.PID <= 0 {
		t.Fatalf("started task handle %+v", h)
	}
	if _, err := os.Stat(filepath.Join(dir, wire.SocketName)); err != nil {
		t.Fatalf("the supervisor's socket is not in the state dir: %v", err)
	}

	e2, err := New(Config{StateDir: dir, SupervisorCmd: []string{os.Args[0], "supervisor", dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e2.Close() })
	if err := e2.RecoverTask(context.Background(), h); err != nil {
		t.Fatalf("a second executor on the long state dir: recover: %v", err)
	}
	st, err := e2.InspectTask(context.Background(), "long-dir")
	if err != nil || st.State != contract.TaskStateRunning {
		t.Fatalf("recovered task: %+v, %v", st, err)
	}
}
