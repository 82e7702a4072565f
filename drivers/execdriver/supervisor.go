package execdriver

import (
	"log/slog"

	"github.com/dcos-kernel/dcos/drivers/execdriver/internal/supervisor"
)

// SupervisorMain runs the exec driver's supervisor process for stateDir
// (called by `dcosd supervisor --state-dir DIR`, the command the daemon
// puts in Config.SupervisorCmd) and returns the process exit code. It
// returns once the supervisor has had no live task and no driver
// connected for about 2 s, or at once (code 0) when another supervisor
// holds stateDir. log may be nil (text to stderr, which the driver sends
// to <StateDir>/supervisor.log).
func SupervisorMain(stateDir string, log *slog.Logger) int {
	return supervisor.Main(stateDir, log)
}
