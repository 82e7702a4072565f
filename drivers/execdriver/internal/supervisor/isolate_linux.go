//go:build linux

package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/dcos-kernel/dcos/drivers/execdriver/internal/wire"
	"github.com/dcos-kernel/dcos/internal/taskinit"
)

// initTimeout bounds how long a start waits for the task init to report
// that the task runs.
const initTimeout = 10 * time.Second

// isolate turns cmd into a start of the task init for iso (see package
// taskinit), which joins the cgroups late itself.
func isolate(cmd *exec.Cmd, iso *wire.Isolation, late []string) (*taskinit.Start, error) {
	return taskinit.Prepare(cmd, &taskinit.Spec{UID: iso.UID, GID: iso.GID, Groups: iso.Groups, KeepCaps: iso.UID == 0,
		PIDNamespace: !iso.SharePID, Hidden: iso.Hidden, Sandbox: iso.Sandbox, Cgroups: late})
}

// splitCPU splits dirs into the cgroup v1 cpu directories (they hold
// cpu.cfs_quota_us) and the others. The task init starts in the others and
// joins the cpu ones just before it forks the task: its own start-up
// (some milliseconds of CPU when it was a Go program; well under one now
// that it is C) would otherwise count against a small task's CFS quota and
// have the start throttled until the next period.
func splitCPU(dirs []string) (others, cpu []string) {
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "cpu.cfs_quota_us")); err == nil {
			cpu = append(cpu, d)
		} else {
			others = append(others, d)
		}
	}
	return others, cpu
}
