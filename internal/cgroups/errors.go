package cgroups

import (
	"errors"
	"fmt"
)

// ErrNotSupported is returned, wrapped, when cgroups cannot be used: on
// platforms other than Linux, without the privileges to create cgroups, or
// when a required controller is missing. Test with errors.Is.
var ErrNotSupported = errors.New("cgroups: not supported")

// NotSupportedError says which controller (or "cgroups" as a whole) cannot be
// used and why. It matches ErrNotSupported with errors.Is and unwraps to the
// underlying cause, if any.
type NotSupportedError struct {
	Controller string // "memory", "cpu", "pids", "unified" or "cgroups"
	Reason     string
	Err        error // underlying cause, may be nil
}

func (e *NotSupportedError) Error() string {
	s := "cgroups: " + e.Controller + " not supported: " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrNotSupported.
func (e *NotSupportedError) Is(target error) bool { return target == ErrNotSupported }

// Unwrap returns the underlying cause.
func (e *NotSupportedError) Unwrap() error { return e.Err }

// FileError is an error reading or writing one cgroup file. Its message names
// the operation, the file, the value written and the cgroup directory, e.g.
// "write memory.limit_in_bytes=67108864 in /sys/fs/cgroup/memory/x: EINVAL".
type FileError struct {
	Op    string // "read", "write", "mkdir", "rmdir", "open"
	File  string // file name within Dir, empty for operations on Dir itself
	Value string // value written, empty for reads
	Dir   string
	Err   error
}

func (e *FileError) Error() string {
	var s string
	switch {
	case e.File == "":
		s = e.Op + " " + e.Dir
	case e.Op == "write":
		s = fmt.Sprintf("write %s=%s in %s", e.File, e.Value, e.Dir)
	default:
		s = e.Op + " " + e.File + " in " + e.Dir
	}
	return s + ": " + errnoName(e.Err)
}

// Unwrap returns the underlying error (usually a syscall.Errno).
func (e *FileError) Unwrap() error { return e.Err }
