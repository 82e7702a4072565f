//go:build linux

package supervisor

import (
	"os/exec"
	"time"

	"github.com/dcos-kernel/dcos/drivers/execdriver/internal/wire"
	"github.com/dcos-kernel/dcos/internal/taskinit"
)

// initTimeout bounds how long a start waits for the task init to report
// that the task runs.
const initTimeout = 10 * time.Second

// isolate turns cmd into a start of the task init for iso (see package
// taskinit).
func isolate(cmd *exec.Cmd, iso *wire.Isolation) (*taskinit.Start, error) {
	return taskinit.Prepare(cmd, &taskinit.Spec{UID: iso.UID, GID: iso.GID, Groups: iso.Groups, KeepCaps: iso.UID == 0,
		PIDNamespace: !iso.SharePID, Hidden: iso.Hidden, Sandbox: iso.Sandbox})
}
