package executor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dcos-kernel/dcos/internal/executor/wire"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// Exec implements contract.ExecDriver's ExecTask for a task this executor
// holds: the supervisor that owns the task starts the command through the
// task init's enter mode, as the task runs (its namespaces, cgroups,
// user, capabilities, working directory: all taken from the supervisor's
// own record of the task, never from the caller), with the task's
// environment plus opts.Env. Each Exec is one dedicated connection to the
// supervisor; ending ctx closes it, which kills the command's whole
// process group, and Exec returns ctx's error. An unknown task wraps
// contract.ErrTaskNotFound; an exited task, or one whose supervisor is
// gone (recovered without it), is an error saying so. A command not found
// inside the task exits 127 with the reason on Stderr. Exec may return
// while a Read of io.Stdin is still in flight (it cannot be interrupted);
// nothing is written to io.Stdout or io.Stderr after it returns.
func (d *Executor) Exec(ctx context.Context, opts *contract.ExecOptions, eio contract.ExecIO) (*contract.ExitResult, error) {
	if opts == nil {
		return nil, errors.New("exec: no options")
	}
	id := opts.TaskID
	spec, err := execSpecOf(opts, eio)
	if err != nil {
		return nil, fmt.Errorf("exec %q: %w", id, err)
	}
	t, err := d.lookup("exec", id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	exited, supervised := t.exited(), t.supervised
	d.mu.Unlock()
	switch {
	case exited:
		return nil, fmt.Errorf("exec %q: the task is not running (it has exited)", id)
	case !supervised:
		return nil, fmt.Errorf("exec %q: the task's supervisor is gone (the task runs unsupervised); exec needs it", id)
	}
	var dl net.Dialer
	nc, err := dl.DialContext(ctx, "unix", d.sock)
	if err != nil {
		return nil, fmt.Errorf("exec %q: supervisor: %w", id, err)
	}
	conn := nc.(*net.UnixConn)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // the supervisor kills the command
	defer stop()
	fail := func(err error) (*contract.ExitResult, error) {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("exec %q: %w", id, ctx.Err())
		}
		return nil, fmt.Errorf("exec %q: %w", id, err)
	}

	b, err := json.Marshal(&wire.Request{ID: 1, Op: wire.OpExec, TaskID: id, Exec: spec})
	if err != nil {
		return fail(err)
	}
	conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fail(fmt.Errorf("%w: %v", errConnLost, err))
	}
	conn.SetWriteDeadline(time.Time{})
	br := bufio.NewReaderSize(conn, 4096)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return fail(fmt.Errorf("%w: %v", errConnLost, err))
	}
	r, err := wire.DecodeReply(line[:len(line)-1])
	if err != nil {
		return fail(err)
	}
	if r.Err != "" {
		if r.Code == wire.CodeNotFound {
			return nil, fmt.Errorf("exec %q: %s: %w", id, r.Err, contract.ErrTaskNotFound)
		}
		return nil, fmt.Errorf("exec %q: %s", id, r.Err)
	}

	// Input: stdin and resizes, one goroutine each, frames serialized.
	var wmu sync.Mutex
	send := func(k wire.FrameKind, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return wire.WriteFrame(conn, k, p)
	}
	done := make(chan struct{})
	defer close(done)
	if opts.Stdin {
		go func() {
			buf := make([]byte, wire.MaxFrame)
			for {
				n, err := eio.Stdin.Read(buf)
				if n > 0 && send(wire.FrameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					send(wire.FrameStdinEOF, nil)
					return
				}
			}
		}()
	}
	if eio.Resize != nil {
		go func() {
			for {
				select {
				case <-done:
					return
				case sz, ok := <-eio.Resize:
					if !ok {
						return
					}
					if send(wire.FrameResize, wire.ResizePayload(sz.Rows, sz.Cols)) != nil {
						return
					}
				}
			}
		}()
	}

	fr := wire.NewFrameReader(br)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
				err = errConnLost
			}
			return fail(err)
		}
		switch f.Kind {
		case wire.FrameStdout:
			if _, err := eio.Stdout.Write(f.Data); err != nil {
				return fail(fmt.Errorf("stdout: %w", err))
			}
		case wire.FrameStderr:
			if _, err := eio.Stderr.Write(f.Data); err != nil {
				return fail(fmt.Errorf("stderr: %w", err))
			}
		case wire.FrameExit:
			code, sig, err := wire.ParseExit(f.Data)
			if err != nil {
				return fail(err)
			}
			return &contract.ExitResult{ExitCode: code, Signal: sig}, nil
		case wire.FrameError:
			return fail(errors.New(string(f.Data)))
		default:
			return fail(fmt.Errorf("supervisor sent frame kind %d", f.Kind))
		}
	}
}

// execSpecOf checks opts and eio and turns them into the wire's form.
func execSpecOf(opts *contract.ExecOptions, eio contract.ExecIO) (*wire.ExecSpec, error) {
	if opts.Command == "" {
		return nil, errors.New("command is empty")
	}
	if eio.Stdout == nil || (eio.Stderr == nil && !opts.TTY) {
		return nil, errors.New("exec io: Stdout and Stderr must not be nil")
	}
	if opts.Stdin && eio.Stdin == nil {
		return nil, errors.New("exec io: Stdin is nil but ExecOptions.Stdin is set")
	}
	if opts.TTY && (opts.Size.Rows == 0) != (opts.Size.Cols == 0) {
		return nil, fmt.Errorf("size %dx%d: want both rows and cols, or neither", opts.Size.Rows, opts.Size.Cols)
	}
	s := &wire.ExecSpec{Command: opts.Command, Args: opts.Args, TTY: opts.TTY, Stdin: opts.Stdin}
	if opts.TTY {
		s.Rows, s.Cols = opts.Size.Rows, opts.Size.Cols
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("env name %q: want a non-empty name without '=' or NUL", k)
		}
		s.Env = append(s.Env, k+"="+opts.Env[k])
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}
