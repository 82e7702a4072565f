//go:build linux

package supervisor

import (
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/dcos-kernel/dcos/internal/executor/wire"
	"github.com/dcos-kernel/dcos/internal/taskinit"
)

// initTimeout bounds how long a start waits for the task init to report
// that the task runs.
const initTimeout = 10 * time.Second

// isolate turns cmd into a start of the task init for iso (see package
// taskinit), which joins the cgroups late itself; with c, in the init's
// container mode.
func isolate(cmd *exec.Cmd, iso *wire.Isolation, c *wire.Container, late []string) (*taskinit.Start, error) {
	spec := &taskinit.Spec{UID: iso.UID, GID: iso.GID, Groups: iso.Groups, KeepCaps: iso.UID == 0,
		PIDNamespace: !iso.SharePID, Hidden: iso.Hidden, Sandbox: iso.Sandbox, Cgroups: late}
	if c != nil {
		spec = containerSpec(c, late)
		cmd.Dir = "" // the container's is spec.Dir
	}
	return taskinit.Prepare(cmd, spec)
}

// containerSpec is the task init's spec of a container task: the
// container's credentials and capabilities (the image's user, not iso's),
// a new pid namespace (container mode needs one), its cgroups; iso's
// Hidden and Sandbox do not apply (nothing of the node is visible but
// c.Binds).
func containerSpec(c *wire.Container, late []string) *taskinit.Spec {
	var binds []taskinit.Bind
	for _, b := range c.Binds {
		binds = append(binds, taskinit.Bind{Source: b.Source, Target: b.Target, ReadOnly: b.ReadOnly})
	}
	return &taskinit.Spec{UID: c.UID, GID: c.GID, Groups: c.Groups, PIDNamespace: true, Cgroups: late,
		Hostname: c.Hostname, RootFS: c.RootFS, ReadOnlyRoot: c.ReadOnlyRoot, Binds: binds, Caps: c.Caps, Dir: c.Dir}
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
