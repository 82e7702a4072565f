// Package proc is the one door to the host's processes, for the agent and
// the executor (and its supervisor):
// /proc stat parsing (pid + start time identity, per-process-group usage),
// process-group signals, pidfd watches of processes that are not our
// children, the subreaper flag and flock locks.
//
// It keeps no state and makes no decisions. On platforms other than Linux
// every function returns ErrNotSupported.
package proc

import "errors"

var (
	// ErrNotSupported is returned on platforms other than Linux.
	ErrNotSupported = errors.New("proc: not supported on this platform")
	// ErrGone is returned when no process with the given pid (and start
	// time) exists any more.
	ErrGone = errors.New("proc: process is gone")
	// ErrStopped is returned by Process.WaitExited when its stop channel
	// closes before the process exits.
	ErrStopped = errors.New("proc: wait stopped")
	// ErrLocked is returned by Lock when another holder has the lock.
	ErrLocked = errors.New("proc: locked by another process")
)

// Usage is the summed usage of a process group's live processes.
type Usage struct {
	UserNanos, SystemNanos uint64
	// ReapedNanos is the CPU time (user + system) of the children those
	// processes have reaped.
	ReapedNanos uint64
	RSSBytes    uint64
	Procs       uint64
}
