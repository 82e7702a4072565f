package ctl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// logsBackoff is how logs -f reconnects: the first wait, the longest, and
// how long a run of failed attempts (no chunk received) may last before it
// gives up.
type logsBackoff struct {
	first, max, giveUp time.Duration
}

var defaultLogsBackoff = logsBackoff{first: 100 * time.Millisecond, max: 2 * time.Second, giveUp: 5 * time.Minute}

func logsCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "logs",
		Usage:     "print a task's output (stdout, stderr), optionally following it",
		ArgsUsage: "TASK",
		Description: `Print what task TASK wrote to its standard output, as its agent's rotated log
files hold it (logs of ended tasks stay until their sandbox is collected).
By default stdout's bytes go to stdout; --stderr prints stderr's (to
stderr) instead, --all both, each to its own descriptor.

--tail N starts at the last N lines of each stream (0: at its end; -1, the
default: at its start); --since 10m starts at data written in the last 10
minutes (coarse: at the oldest rotated file written since; Go durations
such as 90s or 1h30m); with both, whichever starts later. --limit-bytes N
stops after about N bytes.

-f follows the task: new output is printed as it is written, across
rotations, until the task has ended and all is printed, or until
interrupted (exit 130). When the stream breaks (agent restarting, kernel
unavailable, network), -f reconnects (100ms, doubling to 2s) and resumes
just after the last byte printed of each stream: nothing is lost or
printed twice. It gives up after 5 minutes without success.

Bytes rotated away before they could be read are a gap: a warning on
stderr says where. -o json prints one object per chunk per line:
{"stream":"stdout","data":"...","encoding":"utf8","cursor":"3:1234","truncated":false}
where data is text when encoding is "utf8" and base64 when it is "base64"
(a chunk that is not valid UTF-8). See docs/logs.md.

  dcosctl logs t-1
  dcosctl logs -f --tail 10 t-1
  dcosctl logs --all --since 1h -o json t-1`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "follow the output as the task writes it", DisableDefaultText: true},
			&cli.BoolFlag{Name: "stderr", Usage: "print stderr (to stderr) instead of stdout", DisableDefaultText: true},
			&cli.BoolFlag{Name: "all", Usage: "print stdout and stderr, each to its own descriptor", DisableDefaultText: true},
			&cli.Int64Flag{Name: "tail", Usage: "start at the last `N` lines of each stream; -1: all", Value: -1},
			&cli.StringFlag{Name: "since", Usage: "start at output written within `DURATION` (e.g. 10m, 1h30m)"},
			&cli.Int64Flag{Name: "limit-bytes", Usage: "stop after about `N` bytes; 0: no limit"},
		},
		Action: func(c *cli.Context) error {
			req, err := logsRequest(c)
			if err != nil {
				return err
			}
			f, k, err := formatAndDial(c, e)
			if err != nil {
				return err
			}
			return streamLogs(c.Context, k, req, &logsPrinter{e: e, json: f == formatJSON}, defaultLogsBackoff)
		},
	}
}

// logsRequest builds the Logs request from the command line.
func logsRequest(c *cli.Context) (*syscallsv1.LogsRequest, error) {
	args := c.Args().Slice()
	switch {
	case len(args) == 0:
		return nil, usagef("logs: want TASK")
	case len(args) > 1:
		return nil, usagef("logs: want one TASK, got %d arguments", len(args))
	case args[0] == "":
		return nil, usagef("logs: TASK is empty")
	}
	req := &syscallsv1.LogsRequest{TaskId: args[0], Follow: c.Bool("follow")}
	switch {
	case c.Bool("stderr") && c.Bool("all"):
		return nil, usagef("logs: --stderr and --all exclude each other")
	case c.Bool("stderr"):
		req.Streams = []syscallsv1.LogStream{syscallsv1.LogStream_LOG_STREAM_STDERR}
	case c.Bool("all"):
		req.Streams = []syscallsv1.LogStream{syscallsv1.LogStream_LOG_STREAM_STDOUT, syscallsv1.LogStream_LOG_STREAM_STDERR}
	default:
		req.Streams = []syscallsv1.LogStream{syscallsv1.LogStream_LOG_STREAM_STDOUT}
	}
	switch n := c.Int64("tail"); {
	case n < -1:
		return nil, usagef("--tail: want a number of lines >= 0, or -1 for all; got %d", n)
	case n >= 0:
		req.Tail = proto.Int64(n)
	}
	if s := c.String("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, usagef("--since: want a positive duration such as 10m or 1h30m, got %q", s)
		}
		req.Since = durationpb.New(d)
	}
	if n := c.Int64("limit-bytes"); n < 0 {
		return nil, usagef("--limit-bytes: want a number of bytes >= 0, got %d", n)
	} else {
		req.LimitBytes = n
	}
	return req, nil
}

// logsPrinter prints chunks: their bytes to the stream's own descriptor,
// or JSON lines to stdout.
type logsPrinter struct {
	e    *env
	json bool
}

func (p *logsPrinter) print(ch *syscallsv1.LogsChunk) error {
	name := logStreamName(ch.GetStream())
	if p.json {
		l := newDataLine(name, ch.GetData())
		l.Cursor = ch.GetCursor()
		l.Truncated = proto.Bool(ch.GetTruncated())
		return writeLine(p.e.stdout, l)
	}
	if ch.GetTruncated() {
		fmt.Fprintf(p.e.stderr, "dcosctl: warning: %s: output was rotated away before it could be read; it goes on after a gap\n", name)
	}
	w := p.e.stdout
	if ch.GetStream() == syscallsv1.LogStream_LOG_STREAM_STDERR {
		w = p.e.stderr
	}
	_, err := w.Write(ch.GetData())
	return err
}

func logStreamName(s syscallsv1.LogStream) string {
	if s == syscallsv1.LogStream_LOG_STREAM_STDERR {
		return "stderr"
	}
	return "stdout"
}

// streamLogs calls Logs and prints what comes. Without follow, an error is
// reported as it is. With follow, a broken stream (see resumable) is called
// again from the cursors of the last chunks printed, after a backoff, until
// the stream ends or b.giveUp passes without a chunk. An interrupt ends it
// with exit status 130.
func streamLogs(ctx context.Context, k syscallsv1connect.KernelClient, req *syscallsv1.LogsRequest, p *logsPrinter, b logsBackoff) error {
	req = proto.CloneOf(req)
	limit := req.LimitBytes
	var failing time.Time // when the current run of failures began
	delay := b.first
	for {
		n, err := logsOnce(ctx, k, req, p)
		if n > 0 {
			failing, delay = time.Time{}, b.first
		}
		if limit > 0 && req.LimitBytes <= 0 {
			return nil // the limit is reached
		}
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return exitStatus(exitInterrupted)
		case errors.As(err, new(printError)):
			return err
		case !req.Follow || !resumable(err):
			return callError("Logs", err)
		}
		if failing.IsZero() {
			failing = time.Now()
			fmt.Fprintf(p.e.stderr, "dcosctl: logs: %v; reconnecting\n", callError("stream broke", err))
		} else if time.Since(failing) > b.giveUp {
			return fmt.Errorf("Logs: gave up after %s of failed reconnects: %w", b.giveUp, callError("last error", err))
		}
		select {
		case <-ctx.Done():
			return exitStatus(exitInterrupted)
		case <-time.After(delay):
		}
		delay = min(2*delay, b.max)
	}
}

// printError is a failure to print (e.g. a closed pipe): it ends logs at
// once, follow or not.
type printError struct{ err error }

func (p printError) Error() string { return p.err.Error() }
func (p printError) Unwrap() error { return p.err }

// logsOnce makes one Logs call and prints its chunks, moving req's cursors
// (and its byte limit) past each chunk printed. It returns how many chunks
// it printed and why the stream ended (nil: the kernel ended it).
func logsOnce(ctx context.Context, k syscallsv1connect.KernelClient, req *syscallsv1.LogsRequest, p *logsPrinter) (int, error) {
	stream, err := k.Logs(ctx, connect.NewRequest(req))
	if err != nil {
		return 0, err
	}
	defer stream.Close()
	n := 0
	for stream.Receive() {
		ch := stream.Msg()
		if err := p.print(ch); err != nil {
			return n, printError{err}
		}
		n++
		if cur := ch.GetCursor(); cur != "" {
			if ch.GetStream() == syscallsv1.LogStream_LOG_STREAM_STDERR {
				req.StderrCursor = cur
			} else {
				req.StdoutCursor = cur
			}
		}
		if req.LimitBytes > 0 {
			req.LimitBytes -= int64(len(ch.GetData()))
			if req.LimitBytes <= 0 {
				return n, nil
			}
		}
	}
	return n, stream.Err()
}

// resumable reports whether a Logs stream that ended with err may be
// resumed: the kernel or the agent is unavailable (Unavailable), or the
// connection broke (an error that did not come from the server), but not
// a cancellation or a deadline.
func resumable(err error) bool {
	switch connect.CodeOf(err) {
	case connect.CodeUnavailable:
		return true
	case connect.CodeCanceled, connect.CodeDeadlineExceeded:
		return false
	}
	return !connect.IsWireError(err)
}
