package wasm

import "errors"

// Errors wrapped by Load and by calls into a policy; test with errors.Is.
var (
	// ErrInvalidModule: Load refused the module (it does not compile,
	// lacks an export, has a wrong signature, imports something the host
	// does not provide, speaks another ABI version, or fails to start).
	ErrInvalidModule = errors.New("invalid policy module")
	// ErrDeadline: a call ran past Policy.Deadline (or the caller's
	// context ended).
	ErrDeadline = errors.New("deadline exceeded")
	// ErrTrap: the module trapped (unreachable, out-of-bounds access,
	// stack overflow, ...) or exited.
	ErrTrap = errors.New("trap")
	// ErrOutOfMemory: the module failed with its linear memory at the
	// host's cap.
	ErrOutOfMemory = errors.New("out of memory")
	// ErrMalformedAnswer: the module's answer is not a valid decision
	// (bad magic, counts that disagree with its length, a (ptr, len)
	// outside its memory, over the size cap).
	ErrMalformedAnswer = errors.New("malformed answer")
	// ErrClosed: the Policy or Host is closed.
	ErrClosed = errors.New("policy closed")
)
