package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Log and exec streams (issue 15, docs/agent.md "Logs and exec"): a
// client asks the kernel, which checks who may and pushes a StreamOpen
// down the agent's AgentStreams call. The agent answers each with an
// AgentRelay call of its own (bidirectional, HTTP/2): its first message
// names the stream, then the agent sends the stream's data (logs.go,
// execstream.go) or one RelayError, and closes its side; the kernel sends
// exec input. The relay's end, from the kernel's side, cancels what the
// agent does for the stream (a reader stops, an exec'd command is
// killed).

// relayChunk is the most data one RelayUp carries.
const relayChunk = 32 << 10

// relayDrain bounds how long a relay whose agent side is done waits for
// the kernel to end the call (having read everything the agent sent).
const relayDrain = 10 * time.Second

// streamsLoop holds AgentStreams open and serves each StreamOpen in a
// goroutine of its own, reopening the call with backoff when it ends,
// until ctx ends.
func (a *Agent) streamsLoop(ctx context.Context) {
	bo := newBackoff()
	for {
		stream, err := a.streamClient.AgentStreams(ctx, connect.NewRequest(&syscallsv1.AgentStreamsRequest{AgentId: a.ID()}))
		if err == nil {
			for stream.Receive() {
				bo.reset()
				open := stream.Msg()
				a.wg.Go(func() { a.serveStream(ctx, open) })
			}
			err = stream.Err()
			stream.Close()
		}
		if ctx.Err() != nil {
			return
		}
		d := bo.next()
		a.log.Warn("log and exec streams call ended; reopening", "in", d, "err", err)
		if !sleep(ctx, d) {
			return
		}
	}
}

// relay is the agent's side of one AgentRelay call. send is safe for
// concurrent use.
type relay struct {
	call   *connect.BidiStreamForClient[syscallsv1.RelayUp, syscallsv1.RelayDown]
	cancel context.CancelFunc // ends the stream's work: the relay is gone

	mu sync.Mutex // serialises sends
}

// send sends up; an error means the relay is gone, and cancels the
// stream's work.
func (r *relay) send(up *syscallsv1.RelayUp) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.call.Send(up); err != nil {
		r.cancel()
		return fmt.Errorf("relay send: %w", err)
	}
	return nil
}

// serveStream opens the relay of open and serves it until it is done or
// the relay ends.
func (a *Agent) serveStream(ctx context.Context, open *syscallsv1.StreamOpen) {
	kind := streamKind(open)
	a.metrics.streamOpened(kind)
	defer a.metrics.streamClosed(kind)

	ctx, cancel := context.WithCancel(ctx)
	r := &relay{call: a.streamClient.AgentRelay(ctx), cancel: cancel}
	if err := r.send(&syscallsv1.RelayUp{StreamId: open.GetStreamId()}); err != nil {
		cancel()
		r.call.CloseResponse()
		a.log.Warn("cannot open the relay of a stream", "stream", open.GetStreamId(), "kind", kind, "err", err)
		return
	}
	// The only receiver: exec input goes to in; the relay's end (the
	// kernel ended the call: its client went away, or it read all the
	// agent sent) cancels ctx.
	in := make(chan *syscallsv1.ExecInput, 64)
	received := make(chan struct{})
	a.wg.Go(func() {
		defer close(received)
		defer cancel()
		for {
			down, err := r.call.Receive()
			if err != nil {
				return
			}
			if x := down.GetExec(); x != nil && kind == "exec" {
				select {
				case in <- x:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	defer func() {
		cancel()
		<-received // Receive returns once ctx is cancelled
		r.call.CloseResponse()
	}()

	var err error
	switch kind {
	case "logs":
		err = a.serveLogs(ctx, r, open.GetLogs())
	case "exec":
		err = a.serveExec(ctx, r, open.GetExec(), in)
	default:
		err = connect.NewError(connect.CodeInvalidArgument, errors.New("stream open: exactly one of logs and exec must be set"))
	}
	if err != nil && ctx.Err() == nil {
		code, msg := connect.CodeOf(err), err.Error()
		var ce *connect.Error
		if errors.As(err, &ce) {
			msg = ce.Message()
		}
		a.log.Info("stream failed", "stream", open.GetStreamId(), "kind", kind, "code", code, "err", msg)
		r.send(&syscallsv1.RelayUp{Error: &syscallsv1.RelayError{Code: int32(code), Message: msg}}) // a failure means the relay is gone
	}
	if ctx.Err() != nil {
		return // the relay is gone: nobody reads the rest
	}
	r.call.CloseRequest()
	t := time.NewTimer(relayDrain)
	defer t.Stop()
	select {
	case <-received:
	case <-ctx.Done():
	case <-t.C:
		a.log.Warn("kernel did not end a finished stream's relay", "stream", open.GetStreamId(), "after", relayDrain)
	}
}

// streamKind names what open asks for: "logs", "exec", or "" (neither or
// both).
func streamKind(open *syscallsv1.StreamOpen) string {
	switch {
	case open.GetLogs() != nil && open.GetExec() == nil:
		return "logs"
	case open.GetExec() != nil && open.GetLogs() == nil:
		return "exec"
	}
	return ""
}

// streamErr is an error of a stream, relayed to its client with code.
func streamErr(code connect.Code, format string, args ...any) error {
	return connect.NewError(code, fmt.Errorf(format, args...))
}
