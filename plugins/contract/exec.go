package contract

import (
	"context"
	"io"
)

// ExecDriver is a Driver that can run a command inside a running task:
// `dcosctl exec`. A driver registers it by implementing it (as
// ImageDriver); over gRPC Capabilities.Exec says so and the host's client
// returns ErrNotSupported from a plugin that does not.
type ExecDriver interface {
	Driver
	// ExecTask runs opts' command inside the task opts.TaskID names, as
	// the task runs (its namespaces, cgroups, user, working directory,
	// root filesystem), started by whatever owns the task's processes
	// (never by setns from a multithreaded process), with the streams of
	// io, and returns how it exited once it has, and its output has been
	// written. When ctx ends first the command is killed (its whole
	// process group) and ExecTask returns ctx's error. An unknown task
	// wraps ErrTaskNotFound; a task that is not running is an error
	// saying so; a command that cannot be started (not found inside the
	// task) is an ExitResult with code 127 or 126 and its reason on
	// Stderr, as a shell's.
	ExecTask(ctx context.Context, opts *ExecOptions, io ExecIO) (*ExitResult, error)
}

// ExecOptions is what to run inside a task.
type ExecOptions struct {
	TaskID  string
	Command string
	Args    []string
	// Env is added to the task's environment.
	Env map[string]string
	// TTY runs the command under a new pseudo-terminal of Size; its
	// output (both streams) goes to ExecIO.Stdout.
	TTY  bool
	Size TermSize
	// Stdin: the command reads ExecIO.Stdin; false: /dev/null.
	Stdin bool
}

// TermSize is a terminal's size in characters.
type TermSize struct {
	Rows, Cols uint16
}

// ExecIO are an exec's streams. Stdin (nil without ExecOptions.Stdin) is
// read until EOF, which closes the command's stdin (with a TTY: sends
// the terminal's EOF character). Stdout and Stderr must not be nil
// (Stderr is unused with a TTY); they are written from one goroutine
// each. Resize (nil: never) carries new terminal sizes.
type ExecIO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Resize         <-chan TermSize
}
