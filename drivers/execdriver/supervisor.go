package execdriver

import (
	"log/slog"

	"github.com/dcos-kernel/dcos/internal/executor"
)

// SupervisorMain runs the exec driver's supervisor process for stateDir
// (called by `dcosd supervisor --state-dir DIR`, the command the daemon
// puts in Config.SupervisorCmd) and returns the process exit code. See
// executor.SupervisorMain.
func SupervisorMain(stateDir string, log *slog.Logger) int {
	return executor.SupervisorMain(stateDir, log)
}
