package executor

import (
	"log/slog"

	"github.com/dcos-kernel/dcos/internal/executor/supervisor"
)

// SupervisorMain runs the supervisor process of stateDir (the process
// Config.SupervisorCmd starts) and returns the process exit code. It
// returns once the supervisor has had no live task and no executor
// connected for about 2 s, or at once (code 0) when another supervisor
// holds stateDir. log may be nil (text to stderr, which the executor sends
// to <StateDir>/supervisor.log).
func SupervisorMain(stateDir string, log *slog.Logger) int {
	return supervisor.Main(stateDir, log)
}
