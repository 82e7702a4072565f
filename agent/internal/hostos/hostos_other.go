//go:build !linux

package hostos

import "strconv"

// MemTotal returns ErrNotSupported.
func MemTotal() (int64, error) { return 0, ErrNotSupported }

// DiskTotal returns ErrNotSupported.
func DiskTotal(path string) (int64, error) { return 0, ErrNotSupported }

// SignalName names a signal number.
func SignalName(sig int) string { return "signal " + strconv.Itoa(sig) }
