//go:build !linux

package cgroups

import "github.com/dcos-kernel/dcos/internal/cpulist"

// Detect returns ErrNotSupported.
func Detect() (Layout, error) { return Layout{}, ErrNotSupported }

// CheckAccess returns ErrNotSupported.
func (l Layout) CheckAccess(parent string) error { return ErrNotSupported }

// Task is one task's cgroups; it cannot exist on this platform.
type Task struct{}

// NewTask returns ErrNotSupported.
func (l Layout) NewTask(parent, name string, limits Limits) (*Task, error) {
	return nil, ErrNotSupported
}

// OpenTask returns ErrNotSupported.
func (l Layout) OpenTask(parent, name string) (*Task, error) { return nil, ErrNotSupported }

// Paths returns nil.
func (t *Task) Paths() map[string]string { return nil }

// UnifiedDir returns "".
func (t *Task) UnifiedDir() string { return "" }

// FD returns ErrNotSupported.
func (t *Task) FD() (int, error) { return -1, ErrNotSupported }

// AddProc returns ErrNotSupported.
func (t *Task) AddProc(pid int) error { return ErrNotSupported }

// Update returns ErrNotSupported.
func (t *Task) Update(limits Limits) error { return ErrNotSupported }

// CPUIdleSupported returns false.
func (t *Task) CPUIdleSupported() bool { return false }

// CPUSetSupported returns false.
func (t *Task) CPUSetSupported() bool { return false }

// AddCPUSet returns ErrNotSupported.
func (l Layout) AddCPUSet(t *Task) (bool, error) { return false, ErrNotSupported }

// ParentCPUs returns ErrNotSupported.
func (l Layout) ParentCPUs(parent string) (cpulist.Set, error) { return cpulist.Set{}, ErrNotSupported }

// Usage returns ErrNotSupported.
func (t *Task) Usage() (Usage, error) { return Usage{}, ErrNotSupported }

// OOMKilled returns ErrNotSupported.
func (t *Task) OOMKilled() (bool, error) { return false, ErrNotSupported }

// Procs returns ErrNotSupported.
func (t *Task) Procs() ([]int, error) { return nil, ErrNotSupported }

// Kill returns ErrNotSupported.
func (t *Task) Kill() error { return ErrNotSupported }

// Destroy returns ErrNotSupported.
func (t *Task) Destroy() error { return ErrNotSupported }

func errnoName(err error) string { return err.Error() }

// ParentDirs returns ErrNotSupported.
func (l Layout) ParentDirs(parent string) (map[string]string, error) { return nil, ErrNotSupported }

// MakeParent returns ErrNotSupported.
func (l Layout) MakeParent(parent string) error { return ErrNotSupported }

// Children returns ErrNotSupported.
func (l Layout) Children(parent string) ([]string, error) { return nil, ErrNotSupported }

// MoveToLeaf returns ErrNotSupported.
func (l Layout) MoveToLeaf(p, leaf string) (int, error) { return 0, ErrNotSupported }

// OOMWatch reports a task's OOM kill count; it cannot exist on this platform.
type OOMWatch struct {
	// C is never written.
	C <-chan uint64
}

// WatchOOM returns ErrNotSupported.
func (t *Task) WatchOOM() (*OOMWatch, error) { return nil, ErrNotSupported }

// Close returns nil.
func (w *OOMWatch) Close() error { return nil }
