// Package hostos is the agent's one door to the host operating system:
// process start times from /proc, signalling process groups, signal names,
// node facts (memory, disk) and the data dir lock. (Tasks' processes are
// the task drivers' business: see drivers/execdriver.)
//
// It keeps no state and makes no decisions. On platforms other than Linux
// every function returns ErrNotSupported.
package hostos

import "errors"

var (
	// ErrNotSupported is returned on platforms other than Linux.
	ErrNotSupported = errors.New("hostos: not supported on this platform")
	// ErrGone is returned by ProcStartTime when no process with the pid
	// exists.
	ErrGone = errors.New("hostos: process is gone")
	// ErrLocked is returned by Lock when another holder has the lock.
	ErrLocked = errors.New("hostos: locked by another process")
)
