package e2e

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestDev_NonRoot runs dcosd dev as an unprivileged user: it starts, says
// once that tasks run without cgroup isolation, says that bridge
// networking and sized sandboxes (its root defaults) are off, and runs a
// task.
func TestDev_NonRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	const nobody = 65534
	e := newEnv(t)
	// The unprivileged daemon needs to reach its binary and write its dirs.
	for _, d := range []string{filepath.Dir(e.dir), e.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(e.dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	exe := e.path("bin", "dcosd")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, bin.dcosd, exe)
	e.dcosd, e.cred = exe, &syscall.Credential{Uid: nobody, Gid: nobody}
	// nobody cannot use root's policy compilation cache, so this dcosd
	// compiles the default policy cold, under the race detector when the
	// tests run with it: 59 s was seen on a loaded machine. Readiness time
	// is not what this test checks.
	e.readyWait = 4 * waitTimeout
	e.devDefaults = true // what dev turns on as root, it says it cannot
	dev := e.startDev("--resources", "cpus=2,mem=1Gi")
	for _, want := range []string{"dcos dev: task isolation: off (not root", "dcos dev: bridge networking: off (not root", "dcos dev: sized sandboxes: off (not root"} {
		if !strings.Contains(dev.stdout.String(), want) {
			t.Errorf("dcosd dev as nobody did not say %q; stdout:\n%s", want, dev.stdout.String())
		}
	}

	task := runTask(e, "--cpus", "0.5", "--mem", "64Mi", "--", "sh", "-c", "id -u; exec sleep 300")
	e.eventually("the task's output", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(task.GetSandbox(), "stdout"))
		return strings.TrimSpace(string(b)) == "65534", string(b)
	})
	if n := strings.Count(dev.stderr.String(), "WITHOUT cgroup isolation"); n != 1 {
		t.Errorf("dcosd dev said %d times that tasks run without cgroup isolation, want once; stderr:\n%s", n, tail(dev.stderr.String(), 40))
	}
	e.mustCtl("revoke", task.GetAllocationId())
	e.eventually("task killed", func() (bool, string) {
		k := taskByID(e, task.GetId())
		return k.GetState() == pb.TaskState_TASK_STATE_KILLED && !alive(int(task.GetPid())), sprint(k)
	})
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
