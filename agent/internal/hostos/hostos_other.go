//go:build !linux

package hostos

import (
	"os"
	"strconv"
	"syscall"
)

// ProcStartTime returns ErrNotSupported.
func ProcStartTime(pid int) (uint64, error) { return 0, ErrNotSupported }

// MemTotal returns ErrNotSupported.
func MemTotal() (int64, error) { return 0, ErrNotSupported }

// DiskTotal returns ErrNotSupported.
func DiskTotal(path string) (int64, error) { return 0, ErrNotSupported }

// SignalGroup returns ErrNotSupported.
func SignalGroup(pgid int, sig syscall.Signal) error { return ErrNotSupported }

// SignalName names a signal number.
func SignalName(sig int) string { return "signal " + strconv.Itoa(sig) }

// Lock returns ErrNotSupported.
func Lock(path string) (*os.File, error) { return nil, ErrNotSupported }
