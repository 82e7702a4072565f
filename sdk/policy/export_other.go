//go:build !wasip1

package policy

// Natively there is no host: logging is off. Tests call the policy
// function directly (or through Run).

var nativeLogLevel = LevelError + 1

func logEnabled(l Level) bool { return l >= nativeLogLevel }

func logWrite(Level, string) {}

// Natively the Go runtime collects garbage concurrently; nothing to tune.
func tuneGC()  {}
func collect() {}
