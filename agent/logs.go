package agent

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/logfile"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Task logs: the executor's supervisor writes each task's stdout and
// stderr as rotated logs (package logfile) at sandbox/stdout and
// sandbox/stderr; the agent only reads them, for a Logs stream.

// errLimit stops a logs stream whose limit_bytes is reached.
var errLimit = errors.New("logs: limit_bytes reached")

// logTarget returns the sandbox of task id, which the agent runs or ran
// (its sandbox still exists), and a channel closed once the task has
// ended.
func (a *Agent) logTarget(id string) (string, <-chan struct{}, error) {
	if err := validTaskID(id); err != nil {
		return "", nil, streamErr(connect.CodeInvalidArgument, "task_id: %v", err)
	}
	a.mu.Lock()
	tk := a.tasks[id]
	var sandbox string
	var exited <-chan struct{}
	if tk != nil {
		sandbox, exited = tk.sandbox, tk.exited
	}
	a.mu.Unlock()
	if tk != nil {
		if sandbox == "" {
			return "", nil, streamErr(connect.CodeFailedPrecondition, "task %s has no sandbox yet: it is starting", id)
		}
		return sandbox, exited, nil
	}
	ended := make(chan struct{})
	close(ended)
	a.retainMu.Lock()
	sb := a.retained[id]
	a.retainMu.Unlock()
	if sb != nil {
		return sb.Path, ended, nil
	}
	if a.storage == "" {
		// Plain sandboxes stay after their task is forgotten.
		p := filepath.Join(a.sandboxDir, id)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p, ended, nil
		}
	}
	return "", nil, streamErr(connect.CodeNotFound, "task %s is not on agent %s", id, a.ID())
}

// logStream is one stream a Logs request reads.
type logStream struct {
	which     syscallsv1.LogStream
	name      string // file name in the sandbox
	rd        *logfile.Reader
	at        logfile.Cursor // where to read next
	truncated bool           // the next chunk follows a gap
}

// serveLogs sends task req.task_id's logs as req asks, up r.
func (a *Agent) serveLogs(ctx context.Context, r *relay, req *syscallsv1.LogsRequest) error {
	sandbox, exited, err := a.logTarget(req.GetTaskId())
	if err != nil {
		return err
	}
	if req.GetLimitBytes() < 0 {
		return streamErr(connect.CodeInvalidArgument, "limit_bytes %d: must not be negative", req.GetLimitBytes())
	}
	if req.Tail != nil && req.GetTail() < 0 {
		return streamErr(connect.CodeInvalidArgument, "tail %d: must not be negative", req.GetTail())
	}
	if req.GetSince() != nil && (req.GetSince().CheckValid() != nil || req.GetSince().AsDuration() < 0) {
		return streamErr(connect.CodeInvalidArgument, "since %v: want a duration not negative", req.GetSince())
	}
	which := req.GetStreams()
	if len(which) == 0 {
		which = []syscallsv1.LogStream{syscallsv1.LogStream_LOG_STREAM_STDOUT}
	}
	var streams []*logStream
	defer func() {
		for _, s := range streams {
			s.rd.Close()
		}
	}()
	for _, w := range which {
		if slices.ContainsFunc(streams, func(s *logStream) bool { return s.which == w }) {
			continue
		}
		s := &logStream{which: w}
		cursor, field := req.GetStdoutCursor(), "stdout_cursor"
		switch w {
		case syscallsv1.LogStream_LOG_STREAM_STDOUT:
			s.name = "stdout"
		case syscallsv1.LogStream_LOG_STREAM_STDERR:
			s.name = "stderr"
			cursor, field = req.GetStderrCursor(), "stderr_cursor"
		default:
			return streamErr(connect.CodeInvalidArgument, "streams: %v: want LOG_STREAM_STDOUT or LOG_STREAM_STDERR", w)
		}
		if s.rd, err = logfile.Open(sandbox, s.name); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return streamErr(connect.CodeFailedPrecondition, "task %s has no sandbox yet: it is starting", req.GetTaskId())
			}
			return streamErr(connect.CodeInternal, "logs of task %s: %v", req.GetTaskId(), err)
		}
		streams = append(streams, s)
		if err := s.start(req, cursor, field); err != nil {
			return err
		}
	}
	out := &logSender{r: r, limited: req.GetLimitBytes() > 0, left: req.GetLimitBytes()}
	if !req.GetFollow() {
		for _, s := range streams {
			if err := s.readToEnd(out); err != nil {
				return limitOK(err)
			}
		}
		return nil
	}
	// One follower per stream; the first error (or the limit) stops all.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(streams))
	for _, s := range streams {
		a.wg.Go(func() { errs <- s.follow(ctx, exited, out) })
	}
	var first error
	for range streams {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return limitOK(first)
}

// limitOK turns reaching limit_bytes into a normal end.
func limitOK(err error) error {
	if errors.Is(err, errLimit) {
		return nil
	}
	return err
}

// start sets where s starts: at cursor (field names it) if set; else at
// the later of req's tail and since; else at the stream's start (a start
// rotated away makes the first chunk truncated).
func (s *logStream) start(req *syscallsv1.LogsRequest, cursor, field string) error {
	var err error
	switch {
	case cursor != "":
		c, perr := logfile.ParseCursor(cursor)
		if perr != nil {
			return streamErr(connect.CodeInvalidArgument, "%s: %v", field, perr)
		}
		s.at = c
		if err := s.check(); errors.Is(err, logfile.ErrBadCursor) {
			return streamErr(connect.CodeInvalidArgument, "%s %s: %v", field, cursor, err)
		} else if err != nil {
			return err
		}
	case req.Tail != nil || req.GetSince() != nil:
		if req.Tail != nil {
			if s.at, err = s.rd.Tail(int(min(req.GetTail(), int64(1<<31-1)))); err != nil {
				return streamErr(connect.CodeInternal, "%s: %v", s.name, err)
			}
		}
		if req.GetSince() != nil {
			c, err := s.rd.Since(time.Now().Add(-req.GetSince().AsDuration()))
			if err != nil {
				return streamErr(connect.CodeInternal, "%s: %v", s.name, err)
			}
			if c.Gen > s.at.Gen || (c.Gen == s.at.Gen && c.Off > s.at.Off) {
				s.at = c
			}
		}
	default:
		s.at = logfile.Cursor{Gen: 1}
		if err := s.check(); errors.Is(err, logfile.ErrBadCursor) {
			s.at = logfile.Cursor{} // nothing written yet: the first generation, when there is one
		} else if err != nil {
			return err
		}
	}
	return nil
}

// check checks that s.at is in the stream, moving it past a gap the cap
// deleted (the next chunk is then truncated). Errors match
// logfile.ErrBadCursor for a cursor not in the stream.
func (s *logStream) check() error {
	_, _, err := s.rd.Read(s.at, nil)
	var te *logfile.TruncatedError
	switch {
	case errors.As(err, &te):
		s.at, s.truncated = te.Resume, true
		return nil
	case err == nil || err == io.EOF:
		return nil
	case errors.Is(err, logfile.ErrBadCursor):
		return err
	default:
		return streamErr(connect.CodeInternal, "%s: %v", s.name, err)
	}
}

// readToEnd sends s from s.at to its current end.
func (s *logStream) readToEnd(out *logSender) error {
	buf := make([]byte, relayChunk)
	for {
		n, next, err := s.rd.Read(s.at, buf)
		var te *logfile.TruncatedError
		switch {
		case err == io.EOF:
			return nil
		case errors.As(err, &te):
			s.at, s.truncated = te.Resume, true
			continue
		case err != nil:
			return streamErr(connect.CodeInternal, "%s: %v", s.name, err)
		}
		if err := out.send(s, buf[:n], next); err != nil {
			return err
		}
	}
}

// follow sends s from s.at as it grows, across rotations, until the task
// has ended (exited is closed) and s is read to its end, or ctx ends.
func (s *logStream) follow(ctx context.Context, exited <-chan struct{}, out *logSender) error {
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-exited:
			stop()
		case <-fctx.Done():
		}
	}()
	for {
		err := s.rd.Follow(fctx, s.at, func(b []byte, next logfile.Cursor) error {
			return out.send(s, b, next)
		})
		var te *logfile.TruncatedError
		switch {
		case errors.As(err, &te):
			s.at, s.truncated = te.Resume, true
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case fctx.Err() != nil: // the task ended: send what it wrote last
			return s.readToEnd(out)
		case errors.Is(err, errLimit):
			return err
		case err != nil:
			var ce *connect.Error
			if errors.As(err, &ce) {
				return err
			}
			return streamErr(connect.CodeInternal, "%s: %v", s.name, err)
		}
	}
}

// logSender sends chunks of a Logs stream's streams up its relay, each at
// most relayChunk bytes, and stops after limit_bytes. Safe for concurrent
// use (a follower per stream).
type logSender struct {
	r       *relay
	limited bool // limit_bytes was set

	mu   sync.Mutex
	left int64 // bytes still allowed, when limited
}

// send sends data of s, which ends at cursor end (one generation), and
// moves s past it. It returns errLimit once the limit is reached, or the
// relay's error.
func (o *logSender) send(s *logStream, data []byte, end logfile.Cursor) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	limited := o.limited
	if limited && o.left == 0 {
		return errLimit
	}
	var err error
	if limited && int64(len(data)) >= o.left {
		end.Off -= int64(len(data)) - o.left
		data = data[:o.left]
		err = errLimit
	}
	for len(data) > 0 {
		n := min(len(data), relayChunk)
		at := logfile.Cursor{Gen: end.Gen, Off: end.Off - int64(len(data)-n)}
		if serr := o.r.send(&syscallsv1.RelayUp{Logs: &syscallsv1.LogsChunk{
			Stream: s.which, Data: data[:n], Cursor: at.String(), Truncated: s.truncated,
		}}); serr != nil {
			return serr
		}
		s.at, s.truncated = at, false
		data = data[n:]
		if limited {
			o.left -= int64(n)
		}
	}
	if err == nil {
		s.at = end
	}
	return err
}
