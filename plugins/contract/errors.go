package contract

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrTaskNotFound is returned (wrapped) for a task or container ID a
	// plugin does not know. Implementations return it so the host can tell
	// "gone" from "broken"; it crosses the wire as codes.NotFound.
	ErrTaskNotFound = errors.New("task not found")

	// ErrNotSupported is returned (wrapped) by a call a plugin does not
	// implement (e.g. SignalTask on a driver that cannot send signals). It
	// crosses the wire as codes.Unimplemented.
	ErrNotSupported = errors.New("not supported by this plugin")

	// ErrHandleVersion is returned (wrapped) by RecoverTask for a handle whose
	// Version the driver cannot read. It crosses the wire as
	// codes.FailedPrecondition.
	ErrHandleVersion = errors.New("unsupported task handle version")

	// ErrConflict is returned (wrapped) when a request collides with what a
	// plugin already holds: a host port already taken, a volume ID reused
	// with another size, a volume still mounted. Asking again unchanged will
	// fail again. It crosses the wire as codes.AlreadyExists.
	ErrConflict = errors.New("conflict")

	// ErrExhausted is returned (wrapped) when a pool a plugin allocates from
	// is empty: no address left in the subnet, no free host port, not enough
	// disk. It crosses the wire as codes.ResourceExhausted.
	ErrExhausted = errors.New("resource exhausted")

	// ErrPluginExited is returned (wrapped) by a client call made after, or
	// interrupted by, the exit of the plugin process.
	ErrPluginExited = errors.New("plugin process exited")

	// ErrIncompatibleVersion is returned (wrapped) when a host and a plugin
	// share no protocol version.
	ErrIncompatibleVersion = errors.New("incompatible plugin protocol version")
)

// toStatus converts an implementation's error into a gRPC status error for
// the wire, keeping the sentinel as the code.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Internal
	switch {
	case errors.Is(err, ErrTaskNotFound), errors.Is(err, ErrImageNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrNotSupported):
		code = codes.Unimplemented
	case errors.Is(err, ErrHandleVersion):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrConflict):
		code = codes.AlreadyExists
	case errors.Is(err, ErrExhausted):
		code = codes.ResourceExhausted
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}

// fromStatus converts a gRPC error from a plugin back into an error that
// wraps the matching sentinel. done is the plugin's lifetime context: once it
// is done, every failure is reported as ErrPluginExited.
func fromStatus(done context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if done != nil && done.Err() != nil {
		return fmt.Errorf("%s: %w", op, ErrPluginExited)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	msg := st.Message()
	var sentinel error
	switch st.Code() {
	case codes.NotFound:
		sentinel = ErrTaskNotFound
		if strings.Contains(msg, ErrImageNotFound.Error()) {
			sentinel = ErrImageNotFound
		}
	case codes.Unimplemented:
		sentinel = ErrNotSupported
	case codes.FailedPrecondition:
		if strings.Contains(msg, ErrHandleVersion.Error()) {
			sentinel = ErrHandleVersion
		}
	case codes.AlreadyExists:
		sentinel = ErrConflict
	case codes.ResourceExhausted:
		// gRPC itself uses this code (e.g. a message over the size limit):
		// only a plugin's own error carries the sentinel's text.
		if strings.Contains(msg, ErrExhausted.Error()) {
			sentinel = ErrExhausted
		}
	case codes.Canceled:
		sentinel = context.Canceled
	case codes.DeadlineExceeded:
		sentinel = context.DeadlineExceeded
	case codes.Unavailable:
		// The connection to the plugin broke: it exited or is exiting.
		return fmt.Errorf("%s: %w (%s)", op, ErrPluginExited, msg)
	}
	if sentinel != nil {
		if strings.Contains(msg, sentinel.Error()) {
			return &remoteError{op: op, msg: msg, is: sentinel}
		}
		return fmt.Errorf("%s: %s: %w", op, msg, sentinel)
	}
	return fmt.Errorf("%s: %s", op, msg)
}

// remoteError carries a plugin's message verbatim while matching its
// sentinel with errors.Is.
type remoteError struct {
	op, msg string
	is      error
}

func (e *remoteError) Error() string { return e.op + ": " + e.msg }
func (e *remoteError) Unwrap() error { return e.is }
