//go:build !linux

package proc

import (
	"os"
	"syscall"
	"time"
)

// StartTime returns ErrNotSupported.
func StartTime(pid int) (uint64, error) { return 0, ErrNotSupported }

// StatusField returns ErrNotSupported.
func StatusField(pid int, field string) (string, error) { return "", ErrNotSupported }

// Stopped needs Linux.
func Stopped(pid int) (bool, error) { return false, ErrNotSupported }

// Alive returns false.
func Alive(pid int, start uint64) bool { return false }

// GroupUsage returns ErrNotSupported.
func GroupUsage(pgid int) (Usage, error) { return Usage{}, ErrNotSupported }

// SignalGroup returns ErrNotSupported.
func SignalGroup(pgid int, sig syscall.Signal) error { return ErrNotSupported }

// SetChildSubreaper returns ErrNotSupported.
func SetChildSubreaper() error { return ErrNotSupported }

// Lock returns ErrNotSupported.
func Lock(path string) (*os.File, error) { return nil, ErrNotSupported }

// Process is not supported.
type Process struct{}

// OpenProcess returns ErrNotSupported.
func OpenProcess(pid int, start uint64) (*Process, error) { return nil, ErrNotSupported }

// WaitExited returns ErrNotSupported.
func (p *Process) WaitExited(stop <-chan struct{}) error { return ErrNotSupported }

// Close does nothing.
func (p *Process) Close() error { return nil }

// PeekExited returns ErrNotSupported.
func PeekExited() (int, error) { return 0, ErrNotSupported }

// Reap returns ErrNotSupported.
func Reap(pid int) (code, sig int, err error) { return -1, 0, ErrNotSupported }

// StartedAt returns the zero time.
func StartedAt(start uint64) time.Time { return time.Time{} }

// SignalNum returns ErrNotSupported.
func SignalNum(name string) (syscall.Signal, error) { return 0, ErrNotSupported }

// DetachedAttr returns nil.
func DetachedAttr() *syscall.SysProcAttr { return nil }
