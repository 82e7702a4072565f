package kernel

import (
	"errors"
	"fmt"
)

// Code classifies an Error; the API layer maps it to a gRPC/Connect code
// of the same name.
type Code int

// Codes used by the kernel.
const (
	Internal Code = iota
	InvalidArgument
	NotFound
	PermissionDenied
	FailedPrecondition
	Unavailable
	// ResourceExhausted: a finite pool the kernel hands out from (the
	// cluster CIDR's agent subnets) has nothing left.
	ResourceExhausted
	// Aborted: a compare-and-swap lost (StatePut/StateDelete
	// expected_revision did not match); read again and retry.
	Aborted
	// Unimplemented: the agent or its driver cannot do what was asked
	// (exec into a task of a driver without exec).
	Unimplemented
)

func (c Code) String() string {
	return [...]string{"Internal", "InvalidArgument", "NotFound", "PermissionDenied", "FailedPrecondition", "Unavailable", "ResourceExhausted", "Aborted", "Unimplemented"}[c]
}

// ErrFenced is what a Store's Commit wraps when the commit was refused
// because this kernel no longer leads: another kernel's election has
// superseded the one its commits are fenced on (store.Etcd.Fenced).
// Nothing was written. The kernel then stops: Run returns an error
// matching ErrFenced, and every call fails Unavailable.
var ErrFenced = errors.New("fenced: this kernel no longer leads")

// ErrCommitUnknown is what a Store's Commit wraps when the transaction
// may have been applied although Commit failed (it was sent, and no
// answer came: a timeout, a lost connection). Every other Commit error
// means nothing was written. On ErrCommitUnknown the kernel reloads its
// table from the store, the only place that knows; on any other error it
// rebuilds the table from its committed read view, without a store read.
var ErrCommitUnknown = errors.New("commit outcome unknown")

// Error is what the kernel's syscalls return: a code and a message that
// names the field or object at fault.
type Error struct {
	Code Code
	Msg  string
	// Resync is set on a Watch from a compacted revision.
	Resync *ResyncError
}

func (e *Error) Error() string { return e.Msg }

// CodeOf returns the code of err: an *Error's, Internal otherwise.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

func errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ResyncError says a Watch asked for history the store no longer has
// (Compacted > 0: list the state and watch after Current), or, with
// Compacted == 0, that the watcher fell behind and was ended; nothing was
// lost, and it may resume after the last revision it received.
type ResyncError struct {
	Current, Compacted int64
}

func (e *ResyncError) Error() string {
	return fmt.Sprintf("compacted: history up to revision %d is gone; resync: list the state and watch after revision %d", e.Compacted, e.Current)
}
