//go:build !linux

package ebpf

import "runtime"

// Accounting is unavailable on this system: Load returns ErrNotSupported.
type Accounting struct{}

// Attachment is unavailable on this system.
type Attachment struct{}

// Load returns ErrNotSupported on systems other than Linux.
func Load(cfg Config) (*Accounting, error) {
	return nil, &FeatureError{Feature: "Linux (this is " + runtime.GOOS + ")"}
}

// CgroupID returns ErrNotSupported on systems other than Linux.
func CgroupID(dir string) (uint64, error) { return 0, ErrNotSupported }

// Attach returns ErrNotSupported.
func (a *Accounting) Attach(cgroupDir string) (*Attachment, error) { return nil, ErrNotSupported }

// Counters returns ErrNotSupported.
func (a *Accounting) Counters(cgroupDir string) (Counters, error) { return Counters{}, ErrNotSupported }

// CountersOf returns ErrNotSupported.
func (a *Accounting) CountersOf(id uint64) (Counters, error) { return Counters{}, ErrNotSupported }

// Registered returns ErrNotSupported.
func (a *Accounting) Registered() ([]uint64, error) { return nil, ErrNotSupported }

// Forget returns ErrNotSupported.
func (a *Accounting) Forget(id uint64) error { return ErrNotSupported }

// Close does nothing.
func (a *Accounting) Close() error { return nil }

// Destroy does nothing.
func (a *Accounting) Destroy() error { return nil }

// CgroupID returns 0.
func (at *Attachment) CgroupID() uint64 { return 0 }

// Dir returns "".
func (at *Attachment) Dir() string { return "" }

// Adopted returns false.
func (at *Attachment) Adopted() bool { return false }

// Counters returns ErrNotSupported.
func (at *Attachment) Counters() (Counters, error) { return Counters{}, ErrNotSupported }

// Detach returns ErrNotSupported.
func (at *Attachment) Detach() error { return ErrNotSupported }
