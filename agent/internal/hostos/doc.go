// Package hostos is the agent's one door to the host operating system:
// process start times and liveness from /proc, waiting on processes through
// pidfds, signalling process groups, node facts (memory, disk) and the data
// dir lock.
//
// It is not a process supervisor: it keeps no state beyond one open pidfd
// per watched process, and it makes no decisions. On platforms other than
// Linux every function returns ErrNotSupported.
package hostos

import "errors"

var (
	// ErrNotSupported is returned on platforms other than Linux.
	ErrNotSupported = errors.New("hostos: not supported on this platform")
	// ErrGone is returned by OpenProcess when no process with the given pid
	// and start time exists any more.
	ErrGone = errors.New("hostos: process is gone")
	// ErrStopped is returned by Process.WaitExited when its stop channel
	// closes before the process exits.
	ErrStopped = errors.New("hostos: wait stopped")
	// ErrLocked is returned by Lock when another holder has the lock.
	ErrLocked = errors.New("hostos: locked by another process")
)

// Exit is how a process ended. Known is false when the status cannot be
// learnt (the process was not a child of this process, or was already
// reaped); Code is then -1.
type Exit struct {
	Known bool
	// Code is the exit code, or -1 when the process was killed by a signal
	// or the status is unknown.
	Code int
	// Signal is the signal that killed the process, if any; its name comes
	// from SignalName.
	Signal int
}
