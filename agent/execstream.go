package agent

import (
	"context"
	"errors"
	"io"
	"math"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Exec: a command run inside a running task by the task's driver
// (contract.ExecDriver), its streams relayed to the kernel.

// execTarget returns the driver of task id, which must be running on this
// agent, as an ExecDriver.
func (a *Agent) execTarget(id string) (contract.ExecDriver, string, error) {
	if err := validTaskID(id); err != nil {
		return nil, "", streamErr(connect.CodeInvalidArgument, "task_id: %v", err)
	}
	a.mu.Lock()
	tk := a.tasks[id]
	var state taskState
	var driver string
	if tk != nil {
		state, driver = tk.state, tk.driver
	}
	a.mu.Unlock()
	switch {
	case tk == nil:
		return nil, "", streamErr(connect.CodeNotFound, "task %s is not on agent %s", id, a.ID())
	case state == taskStarting:
		return nil, "", streamErr(connect.CodeFailedPrecondition, "task %s is not running yet: it is starting", id)
	case state == taskExited:
		return nil, "", streamErr(connect.CodeFailedPrecondition, "task %s has ended", id)
	}
	drv, err := a.plugins.Driver(driver)
	if err != nil {
		return nil, "", streamErr(connect.CodeUnavailable, "driver %s of task %s: %v", driver, id, err)
	}
	ed, ok := drv.(contract.ExecDriver)
	if !ok {
		return nil, "", streamErr(connect.CodeUnimplemented, "driver %s cannot exec", driver)
	}
	return ed, driver, nil
}

// serveExec runs start's command in its task and relays its streams: stdin,
// stdin EOF and resizes from in, stdout, stderr and the exit up r. The
// relay's end (ctx) kills the command.
func (a *Agent) serveExec(ctx context.Context, r *relay, start *syscallsv1.ExecStart, in <-chan *syscallsv1.ExecInput) error {
	drv, driver, err := a.execTarget(start.GetTaskId())
	if err != nil {
		return err
	}
	if start.GetCommand() == "" {
		return streamErr(connect.CodeInvalidArgument, "command: required")
	}
	opts := &contract.ExecOptions{
		TaskID: start.GetTaskId(), Command: start.GetCommand(), Args: start.GetArgs(), Env: start.GetEnv(),
		TTY: start.GetTty(), Size: termSize(start.GetSize()), Stdin: start.GetStdin(),
	}
	resize := make(chan contract.TermSize, 1)
	eio := contract.ExecIO{
		Stdout: &execWriter{r: r}, Stderr: &execWriter{r: r, stderr: true}, Resize: resize,
	}
	var stdin *io.PipeWriter
	if opts.Stdin {
		var pr *io.PipeReader
		pr, stdin = io.Pipe()
		defer pr.Close() // a write after the command ended fails, not blocks
		eio.Stdin = pr
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.wg.Go(func() { execInput(ctx, in, stdin, resize) })

	res, err := drv.ExecTask(ctx, opts, eio)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, contract.ErrNotSupported):
		return streamErr(connect.CodeUnimplemented, "driver %s cannot exec: %v", driver, err)
	case errors.Is(err, contract.ErrTaskNotFound):
		return streamErr(connect.CodeNotFound, "task %s: %v", start.GetTaskId(), err)
	case err != nil:
		return streamErr(connect.CodeFailedPrecondition, "exec in task %s: %v", start.GetTaskId(), err)
	case res == nil:
		return streamErr(connect.CodeInternal, "exec in task %s: driver %s answered no exit", start.GetTaskId(), driver)
	}
	return r.send(&syscallsv1.RelayUp{Exec: &syscallsv1.ExecOutput{Exit: &syscallsv1.ExecExit{
		Code: int32(res.ExitCode), Signal: int32(res.Signal),
	}}})
}

// execInput hands an exec's input frames to its command until ctx ends:
// stdin to stdin (nil: the command reads no stdin; the frames are
// dropped), stdin_eof closes it, resizes go to resize (only the latest
// is kept when the driver is slow to take them).
func execInput(ctx context.Context, in <-chan *syscallsv1.ExecInput, stdin *io.PipeWriter, resize chan contract.TermSize) {
	if stdin != nil {
		defer stdin.Close()
	}
	for {
		var x *syscallsv1.ExecInput
		select {
		case x = <-in:
		case <-ctx.Done():
			return
		}
		if b := x.GetStdin(); len(b) > 0 && stdin != nil {
			if _, err := stdin.Write(b); err != nil {
				stdin = nil // the command closed its stdin: drop the rest
			}
		}
		if x.GetStdinEof() && stdin != nil {
			stdin.Close()
			stdin = nil
		}
		if sz := x.GetResize(); sz != nil {
			for sent := false; !sent; {
				select {
				case resize <- termSize(sz):
					sent = true
				default:
					select { // drop the stale size nobody took
					case <-resize:
					default:
					}
				}
			}
		}
	}
}

// termSize converts a wire size, clamping what a terminal cannot have.
func termSize(s *syscallsv1.TermSize) contract.TermSize {
	return contract.TermSize{Rows: uint16(min(s.GetRows(), math.MaxUint16)), Cols: uint16(min(s.GetCols(), math.MaxUint16))}
}

// execWriter sends what an exec's command writes to one of its streams up
// the relay, at most relayChunk bytes a frame. Its Write fails once the
// relay is gone.
type execWriter struct {
	r      *relay
	stderr bool
}

func (w *execWriter) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n := min(len(p)-written, relayChunk)
		out := &syscallsv1.ExecOutput{Stdout: p[written : written+n]}
		if w.stderr {
			out = &syscallsv1.ExecOutput{Stderr: p[written : written+n]}
		}
		if err := w.r.send(&syscallsv1.RelayUp{Exec: out}); err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}
