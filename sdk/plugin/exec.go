package plugin

import "github.com/dcos-kernel/dcos/plugins/contract"

// ExecDriver is the optional part of a Driver that runs commands inside
// running tasks (`dcosctl exec`). A driver built on Executor gets it with
// one method:
//
//	func (d *Driver) ExecTask(ctx context.Context, o *plugin.ExecOptions, io plugin.ExecIO) (*plugin.ExitResult, error) {
//		return d.Exec(ctx, o, io)
//	}
//
// ServeDriver then advertises Capabilities.Exec (see contract.ExecDriver
// and docs/plugins.md, "Exec").
type ExecDriver = contract.ExecDriver

// ExecOptions is what to run inside a task.
type ExecOptions = contract.ExecOptions

// ExecIO are an exec's streams.
type ExecIO = contract.ExecIO

// TermSize is a terminal's size in characters.
type TermSize = contract.TermSize
