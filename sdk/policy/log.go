package policy

import "fmt"

// Level is a log level, numbered as log/slog's.
type Level int32

// Log levels.
const (
	LevelDebug Level = -4
	LevelInfo  Level = 0
	LevelWarn  Level = 4
	LevelError Level = 8
)

// LogEnabled reports whether the host records messages at level l; check
// it before formatting anything costly.
func LogEnabled(l Level) bool { return logEnabled(l) }

// Logf formats and sends a message to the host's log at level l (the
// kernel logs it with the policy's name). It does nothing, and formats
// nothing, when the level is off.
func Logf(l Level, format string, args ...any) {
	if !logEnabled(l) {
		return
	}
	logWrite(l, fmt.Sprintf(format, args...))
}

// Run is what the module does for one call, without wasm: decode a batch,
// call the registered policy, encode the decision. Native tests and
// benchmarks use it to measure the same path natively.
func Run(batch []byte) []byte {
	copy(g.alloc(len(batch)), batch)
	return g.place(len(batch))
}
