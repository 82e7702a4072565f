package contract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

var _ ExecDriver = (*DriverClient)(nil)

// ExecTask implements ExecDriver over the plugin's ExecTask call. It
// returns ErrNotSupported when the plugin's capabilities lack Exec (asked
// once, then remembered) or the plugin does not serve the call. Ending ctx
// ends the call, which kills the command in the plugin; ExecTask then
// returns ctx's error. Messages carry at most 32 KiB each way.
func (c *DriverClient) ExecTask(ctx context.Context, opts *ExecOptions, eio ExecIO) (*ExitResult, error) {
	if opts == nil {
		return nil, errors.New("exec task: no options")
	}
	if eio.Stdout == nil || (eio.Stderr == nil && !opts.TTY) || (opts.Stdin && eio.Stdin == nil) {
		return nil, fmt.Errorf("exec task %q: exec io: Stdout and Stderr (and Stdin with ExecOptions.Stdin) must not be nil", opts.TaskID)
	}
	ok, err := c.canExec(ctx)
	if err != nil {
		return nil, fmt.Errorf("exec task %q: %w", opts.TaskID, err)
	}
	if !ok {
		return nil, fmt.Errorf("exec task %q: %w", opts.TaskID, ErrNotSupported)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.ExecTask(ctx)
	if err != nil {
		return nil, fromStatus(c.done, "exec task", err)
	}
	var smu sync.Mutex
	send := func(in *pluginsv1.ExecTaskInput) error {
		smu.Lock()
		defer smu.Unlock()
		return stream.Send(in)
	}
	if err := send(&pluginsv1.ExecTaskInput{Start: execOptionsToProto(opts)}); err != nil && !errors.Is(err, io.EOF) {
		return nil, fromStatus(c.done, "exec task", err)
	}
	if opts.Stdin {
		go func() {
			buf := make([]byte, maxExecChunk)
			for {
				n, err := eio.Stdin.Read(buf)
				if n > 0 && send(&pluginsv1.ExecTaskInput{Stdin: buf[:n]}) != nil {
					return
				}
				if err != nil {
					send(&pluginsv1.ExecTaskInput{StdinEof: true})
					return
				}
			}
		}()
	}
	if eio.Resize != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case sz, ok := <-eio.Resize:
					if !ok {
						return
					}
					if send(&pluginsv1.ExecTaskInput{Resize: &pluginsv1.TermSize{Rows: uint32(sz.Rows), Cols: uint32(sz.Cols)}}) != nil {
						return
					}
				}
			}
		}()
	}
	for {
		out, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil && c.done.Err() == nil {
				return nil, fmt.Errorf("exec task %q: %w", opts.TaskID, context.Cause(ctx))
			}
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("exec task %q: the plugin ended the call without an exit", opts.TaskID)
			}
			return nil, fromStatus(c.done, "exec task", err)
		}
		if b := out.GetStdout(); len(b) > 0 {
			if _, err := eio.Stdout.Write(b); err != nil {
				return nil, fmt.Errorf("exec task %q: stdout: %w", opts.TaskID, err)
			}
		}
		if b := out.GetStderr(); len(b) > 0 {
			if _, err := eio.Stderr.Write(b); err != nil {
				return nil, fmt.Errorf("exec task %q: stderr: %w", opts.TaskID, err)
			}
		}
		if e := out.GetExit(); e != nil {
			return exitFromProto(e), nil
		}
	}
}

// canExec reports whether the plugin says it can exec, asking it once.
func (c *DriverClient) canExec(ctx context.Context) (bool, error) {
	c.execMu.Lock()
	defer c.execMu.Unlock()
	if c.execKnown {
		return c.exec, nil
	}
	caps, err := c.Capabilities(ctx)
	if err != nil {
		return false, err
	}
	c.exec, c.execKnown = caps != nil && caps.Exec, true
	return c.exec, nil
}
