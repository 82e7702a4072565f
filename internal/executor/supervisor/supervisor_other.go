//go:build !linux

package supervisor

import (
	"log/slog"
	"time"
)

// IdleExit is how long the supervisor waits with no live task and no
// client before it exits.
const IdleExit = 2 * time.Second

// Main logs that the supervisor needs Linux and returns 1.
func Main(stateDir string, log *slog.Logger) int {
	if log != nil {
		log.Error("the exec driver's supervisor runs only on Linux")
	}
	return 1
}
