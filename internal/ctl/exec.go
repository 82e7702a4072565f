package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// execStdinChunk bounds one stdin input: what one read of stdin may fill.
const execStdinChunk = 32 << 10

func execCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:                   "exec",
		Usage:                  "run a command inside a running task",
		ArgsUsage:              "TASK -- CMD [ARGS...]",
		UseShortOptionHandling: true,
		Description: `Run CMD inside running task TASK: in its namespaces, cgroups, user and
working directory, started by the task's driver (CMD is looked up in the
task's PATH, in its image for an image task). Write "--" before CMD
whenever CMD or its arguments start with "-". Its output is printed as it
comes (its stdout to stdout, its stderr to stderr) and dcosctl exits with
its exit status (128+N when signal N killed it). Every exec is recorded
as a TASK_EXEC event. Only the task's owner and operators may exec.

-i copies stdin to the command (its EOF closes the command's stdin);
without -i the command's stdin is /dev/null. -t runs the command under a
pseudo-terminal of this terminal's size (resized with it); with -i this
terminal is put in raw mode until the command ends, so keys such as
Ctrl-C go to the command. When stdin is not a terminal, -t is dropped
with a warning. Interrupting dcosctl (SIGINT, SIGTERM) ends the call,
which kills the command.

-o json prints one object per output chunk per line,
{"stream":"stdout","data":"...","encoding":"utf8"} (data is base64 when
encoding is "base64"), then {"exit":{"code":3,"signal":0}}; the exit
status is still the command's. See docs/logs.md.

  dcosctl exec t-1 -- ls -l /
  dcosctl exec -it t-1 -- sh
  echo hi | dcosctl exec -i -o json t-1 -- cat`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "stdin", Aliases: []string{"i"}, Usage: "copy stdin to the command", DisableDefaultText: true},
			&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "run the command under a pseudo-terminal", DisableDefaultText: true},
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			switch {
			case len(args) == 0 || args[0] == "":
				return usagef("exec: want TASK -- CMD [ARGS...]")
			case len(args) == 1:
				return usagef("exec: want a command after TASK: dcosctl exec %s -- CMD [ARGS...]", args[0])
			case args[1] == "":
				return usagef("exec: CMD is empty")
			}
			start := &syscallsv1.ExecStart{
				TaskId:  args[0],
				Command: args[1],
				Args:    args[2:],
				Stdin:   c.Bool("stdin"),
				Tty:     c.Bool("tty"),
			}
			f, err := outputFormat(c)
			if err != nil {
				return err
			}
			t, err := resolveTarget(c, e)
			if err != nil {
				return err
			}
			return runExec(c.Context, e, t, start, f == formatJSON)
		},
	}
}

// localTerm is the terminal dcosctl's stdin is, while an exec with -t runs.
type localTerm struct {
	fd    int
	state *term.State // to restore, when put in raw mode
}

// openTerm returns stdin's terminal, or nil when stdin is not one. With
// raw, the terminal is put in raw mode; restore undoes it.
func openTerm(stdin io.Reader, raw bool) (*localTerm, error) {
	f, ok := stdin.(*os.File)
	if !ok {
		return nil, nil
	}
	fd, ok := fileFD(f)
	if !ok || !term.IsTerminal(fd) {
		return nil, nil
	}
	t := &localTerm{fd: fd}
	if raw {
		st, err := term.MakeRaw(fd)
		if err != nil {
			return nil, fmt.Errorf("exec: put the terminal in raw mode: %w", err)
		}
		t.state = st
	}
	return t, nil
}

// fileFD is f's descriptor, read without putting f in blocking mode (as
// f.Fd would), so that a read of it can still be cut with a deadline.
func fileFD(f *os.File) (int, bool) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil || fd < 0 {
		return 0, false
	}
	return fd, true
}

// size is the terminal's size, or nil when it cannot be read.
func (t *localTerm) size() *syscallsv1.TermSize {
	cols, rows, err := term.GetSize(t.fd)
	if err != nil || cols <= 0 || rows <= 0 {
		return nil
	}
	return &syscallsv1.TermSize{Rows: uint32(rows), Cols: uint32(cols)}
}

// restore puts the terminal back in the mode it had; it may be called
// more than once.
func (t *localTerm) restore() {
	if t != nil && t.state != nil {
		_ = term.Restore(t.fd, t.state)
		t.state = nil
	}
}

// execCall is one Exec call: its stream, whose Send is not safe for
// concurrent use, and what prints its outputs.
type execCall struct {
	stream *connect.BidiStreamForClient[syscallsv1.ExecInput, syscallsv1.ExecOutput]
	mu     sync.Mutex
}

func (x *execCall) send(in *syscallsv1.ExecInput) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stream.Send(in)
}

// runExec makes the Exec call of start and streams stdin, resizes and
// outputs until the command exits; it returns its exit status as an
// exitStatus (nil for 0). The terminal, when put in raw mode, is restored
// on every return.
func runExec(ctx context.Context, e *env, t target, start *syscallsv1.ExecStart, asJSON bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var lt *localTerm
	var winch chan os.Signal
	if start.Tty {
		// Ask for resizes before reading the size, so none is missed.
		winch = make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		var err error
		if lt, err = openTerm(e.stdin, start.Stdin); err != nil {
			return err
		}
		defer lt.restore()
		if lt == nil {
			fmt.Fprintln(e.stderr, "dcosctl: warning: Unable to use a TTY - input is not a terminal; going on without one")
			start.Tty = false
		} else {
			start.Size = lt.size()
		}
	}
	x := &execCall{stream: t.bidiKernel().Exec(ctx)}
	defer x.stream.CloseResponse()
	if err := x.send(&syscallsv1.ExecInput{Start: start}); err != nil && !errors.Is(err, io.EOF) {
		return callError("Exec", err)
	}
	if start.Stdin {
		go x.copyStdin(e.stdin)
		if f, ok := e.stdin.(*os.File); ok {
			// Cut a read still blocked when the command has ended.
			defer func() { _ = f.SetReadDeadline(time.Now()) }()
		}
	}
	if lt != nil {
		go x.sendResizes(ctx, lt, start.Size, winch)
	}
	exit, err := x.printOutputs(e, asJSON)
	lt.restore()
	_ = x.stream.CloseRequest()
	if err != nil {
		return err
	}
	if exit == nil {
		return fmt.Errorf("Exec: the stream ended without the command's exit status")
	}
	if asJSON {
		if err := writeLine(e.stdout, map[string]any{"exit": map[string]int32{"code": exit.GetCode(), "signal": exit.GetSignal()}}); err != nil {
			return err
		}
	}
	if s := exit.GetSignal(); s != 0 {
		return exitStatus(128 + s)
	}
	if c := exit.GetCode(); c != 0 {
		return exitStatus(c)
	}
	return nil
}

// printOutputs prints the outputs of x until its exit (returned) or an
// error.
func (x *execCall) printOutputs(e *env, asJSON bool) (*syscallsv1.ExecExit, error) {
	for {
		out, err := x.stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, callError("Exec", err)
		}
		for _, o := range []struct {
			name string
			data []byte
			w    io.Writer
		}{{"stdout", out.GetStdout(), e.stdout}, {"stderr", out.GetStderr(), e.stderr}} {
			if len(o.data) == 0 {
				continue
			}
			if asJSON {
				err = writeLine(e.stdout, newDataLine(o.name, o.data))
			} else {
				_, err = o.w.Write(o.data)
			}
			if err != nil {
				return nil, err
			}
		}
		if out.GetExit() != nil {
			return out.GetExit(), nil
		}
	}
}

// copyStdin sends r's bytes as stdin inputs of at most execStdinChunk
// bytes, then stdin_eof at its end. It stops when a send fails (the call
// has ended) or r fails.
func (x *execCall) copyStdin(r io.Reader) {
	buf := make([]byte, execStdinChunk)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if x.send(&syscallsv1.ExecInput{Stdin: buf[:n]}) != nil {
				return
			}
		}
		if errors.Is(err, io.EOF) {
			_ = x.send(&syscallsv1.ExecInput{StdinEof: true})
			return
		}
		if err != nil {
			return
		}
	}
}

// sendResizes sends the terminal's size each time it changes (SIGWINCH)
// until ctx ends.
func (x *execCall) sendResizes(ctx context.Context, lt *localTerm, last *syscallsv1.TermSize, winch <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-winch:
		}
		s := lt.size()
		if s == nil || last != nil && s.GetRows() == last.GetRows() && s.GetCols() == last.GetCols() {
			continue
		}
		if x.send(&syscallsv1.ExecInput{Resize: s}) != nil {
			return
		}
		last = s
	}
}
