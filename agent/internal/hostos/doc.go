// Package hostos is the agent's door to facts of its node: memory, disk,
// signal names. (Processes — start times from /proc, process-group
// signals, the data dir lock — go through internal/executor/proc, the one
// door to them that the agent and the executor share.)
//
// It keeps no state and makes no decisions. On platforms other than Linux
// every function returns ErrNotSupported.
package hostos

import "errors"

// ErrNotSupported is returned on platforms other than Linux.
var ErrNotSupported = errors.New("hostos: not supported on this platform")
