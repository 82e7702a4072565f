package e2e

import (
	"os"
	"strings"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// mountsUnder returns the mount points in /proc/self/mountinfo beneath dir.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// waitEnded waits until task id has ended and returns it.
func waitEnded(e *env, id string) *pb.Task {
	e.t.Helper()
	var task *pb.Task
	e.eventually("task "+id+" ended", func() (bool, string) {
		task = taskByID(e, id)
		return task != nil && task.GetState() > pb.TaskState_TASK_STATE_RUNNING, sprint(task)
	})
	return task
}

// TestDev_StorageDiskLimit: with the local storage driver, a task's
// sandbox is limited to its disk: a writer past it gets ENOSPC (the task
// sees "No space left on device"), a writer within it succeeds in the
// next sandbox, and once the tasks ended nothing of theirs is mounted.
func TestDev_StorageDiskLimit(t *testing.T) {
	t.Parallel()
	needRoot(t)
	e := newEnv(t)
	e.startDev("--resources", "cpus=2,mem=2Gi,disk=10Gi", "--storage-driver", "local", "--sandbox-retention", "0")

	// 42 only if dd was stopped by ENOSPC: the sandbox is full, not the node.
	over := runTaskNoWait(e, "--cpus", "0.1", "--mem", "32Mi", "--disk", "16Mi", "--", "sh", "-c",
		`dd if=/dev/zero of=big bs=1M count=64 2>err; grep -q "No space left on device" err && exit 42; cat err; exit 1`)
	if task := waitEnded(e, over); task.GetState() != pb.TaskState_TASK_STATE_FAILED || task.GetExitCode() != 42 {
		t.Errorf("task writing 64 MiB into a 16 MiB sandbox: %v exit %d (%s), want FAILED with 42 (ENOSPC)",
			task.GetState(), task.GetExitCode(), task.GetReason())
	}
	within := runTaskNoWait(e, "--cpus", "0.1", "--mem", "32Mi", "--disk", "16Mi", "--", "sh", "-c",
		`dd if=/dev/zero of=f bs=1M count=8 && sync`)
	if task := waitEnded(e, within); task.GetState() != pb.TaskState_TASK_STATE_FINISHED {
		t.Errorf("task writing 8 MiB into a 16 MiB sandbox: %v (%s), want FINISHED", task.GetState(), task.GetReason())
	}
	e.eventually("nothing mounted in the agent's data dir after the tasks ended", func() (bool, string) {
		m := mountsUnder(e.path("data"))
		return len(m) == 0, strings.Join(m, "\n")
	})
}
