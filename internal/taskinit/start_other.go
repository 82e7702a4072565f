//go:build !linux

package taskinit

import (
	"errors"
	"os/exec"
	"time"
)

// ErrNotSupported: the task init needs Linux.
var ErrNotSupported = errors.New("task init: not supported on this OS")

// Start is one start of a task under the init (Linux only).
type Start struct{}

// Prepare returns ErrNotSupported.
func Prepare(*exec.Cmd, *Spec) (*Start, error) { return nil, ErrNotSupported }

// Close does nothing.
func (*Start) Close() {}

// Started returns ErrNotSupported.
func (*Start) Started(time.Duration) error { return ErrNotSupported }

// ExitSignal returns 0.
func (*Start) ExitSignal() int { return 0 }

// Exit returns code and sig.
func (*Start) Exit(code, sig int) (int, int) { return code, sig }

// Enter returns ErrNotSupported.
func Enter(*exec.Cmd, *EnterSpec) error { return ErrNotSupported }
