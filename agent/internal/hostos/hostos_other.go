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

// GroupAttr returns nil.
func GroupAttr() *syscall.SysProcAttr { return nil }

// SignalGroup returns ErrNotSupported.
func SignalGroup(pgid int, sig syscall.Signal) error { return ErrNotSupported }

// SignalName names a signal number.
func SignalName(sig int) string { return "signal " + strconv.Itoa(sig) }

// Lock returns ErrNotSupported.
func Lock(path string) (*os.File, error) { return nil, ErrNotSupported }

// Process is not supported.
type Process struct{}

// OpenProcess returns ErrNotSupported.
func OpenProcess(pid int, start uint64) (*Process, error) { return nil, ErrNotSupported }

// Pid returns 0.
func (p *Process) Pid() int { return 0 }

// WaitExited returns ErrNotSupported.
func (p *Process) WaitExited(stop <-chan struct{}) error { return ErrNotSupported }

// Reap returns an unknown exit.
func (p *Process) Reap(killGroup bool) Exit { return Exit{Code: -1} }

// Close does nothing.
func (p *Process) Close() error { return nil }
