package ebpf

import (
	"errors"
	"fmt"
)

// ErrNotSupported is wrapped by every error that means "this host cannot do
// eBPF network accounting": a missing kernel feature, a non-Linux system, or
// accounting disabled by Config.Disable. Callers run tasks without network
// counters on it; any other error from Load is a real failure.
var ErrNotSupported = errors.New("ebpf network accounting not supported")

// ErrNotAttached is returned by Counters for a cgroup that has no counters
// (it was never attached, or it was detached).
var ErrNotAttached = errors.New("cgroup not attached")

// FeatureError says which kernel feature is missing (or that accounting was
// disabled). It matches ErrNotSupported with errors.Is.
type FeatureError struct {
	// Feature names what is missing, e.g. "cgroup_skb programs".
	Feature string
	// Err is the probe's error, or nil.
	Err error
}

func (e *FeatureError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%v: %s", ErrNotSupported, e.Feature)
	}
	return fmt.Sprintf("%v: %s: %v", ErrNotSupported, e.Feature, e.Err)
}

// Unwrap returns the probe's error, so errors.Is sees through to it.
func (e *FeatureError) Unwrap() error { return e.Err }

// Is reports whether target is ErrNotSupported.
func (e *FeatureError) Is(target error) bool { return target == ErrNotSupported }
