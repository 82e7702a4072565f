package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// sender bounds each send of a stream by s.writeTimeout (through the
// stream's http.ResponseController, when the door set one): a peer that
// stops reading has its stream reset instead of holding the handler.
// Between sends there is no deadline: an HTTP/2 stream is reset when its
// write deadline passes even with nothing to write, and a stream may be
// idle for long (a quiet log, an agent's AgentStreams).
func (s *Server) sender(ctx context.Context) func(send func() error) error {
	rc, _ := ctx.Value(controllerKey{}).(*http.ResponseController)
	return func(send func() error) error {
		if rc == nil || s.writeTimeout <= 0 {
			return send()
		}
		_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		err := send()
		_ = rc.SetWriteDeadline(time.Time{})
		return err
	}
}

// Logs implements syscallsv1connect.KernelHandler.
func (s *Server) Logs(ctx context.Context, r *connect.Request[pb.LogsRequest], st *connect.ServerStream[pb.LogsChunk]) error {
	sendWith := s.sender(ctx)
	if err := sendWith(func() error { return st.Send(nil) }); err != nil { // headers now
		return err
	}
	err := s.k.Logs(ctx, principal(ctx), r.Msg, func(c *pb.LogsChunk) error {
		return sendWith(func() error { return st.Send(c) })
	})
	s.trailerDeadline(ctx)
	return toConnect(err)
}

// Exec implements syscallsv1connect.KernelHandler.
func (s *Server) Exec(ctx context.Context, st *connect.BidiStream[pb.ExecInput, pb.ExecOutput]) error {
	first, err := st.Receive()
	if err != nil {
		return firstMessage(err, "start")
	}
	sendWith := s.sender(ctx)
	if err := sendWith(func() error { return st.Send(nil) }); err != nil {
		return err
	}
	err = s.k.Exec(ctx, principal(ctx), first.GetStart(), st.Receive, func(o *pb.ExecOutput) error {
		return sendWith(func() error { return st.Send(o) })
	})
	s.trailerDeadline(ctx)
	return toConnect(err)
}

// AgentStreams implements syscallsv1connect.KernelHandler.
func (s *Server) AgentStreams(ctx context.Context, r *connect.Request[pb.AgentStreamsRequest], st *connect.ServerStream[pb.StreamOpen]) error {
	sendWith := s.sender(ctx)
	if err := sendWith(func() error { return st.Send(nil) }); err != nil {
		return err
	}
	err := s.k.AgentStreams(ctx, principal(ctx), r.Msg, func(o *pb.StreamOpen) error {
		return sendWith(func() error { return st.Send(o) })
	})
	s.trailerDeadline(ctx)
	return toConnect(err)
}

// AgentRelay implements syscallsv1connect.KernelHandler.
func (s *Server) AgentRelay(ctx context.Context, st *connect.BidiStream[pb.RelayUp, pb.RelayDown]) error {
	first, err := st.Receive()
	if err != nil {
		return firstMessage(err, "stream_id")
	}
	sendWith := s.sender(ctx)
	if err := sendWith(func() error { return st.Send(nil) }); err != nil {
		return err
	}
	err = s.k.AgentRelay(ctx, principal(ctx), first, st.Receive, func(d *pb.RelayDown) error {
		return sendWith(func() error { return st.Send(d) })
	})
	s.trailerDeadline(ctx)
	return toConnect(err)
}

// firstMessage is the error of a bidirectional stream whose first message
// did not arrive.
func firstMessage(err error, field string) error {
	if ce := new(connect.Error); errors.As(err, &ce) {
		return ce
	}
	return connect.NewError(connect.CodeInvalidArgument, errors.New(field+": the first message is required: "+err.Error()))
}

// trailerDeadline bounds the write of a stream's end (its trailers, after
// the handler returns) by s.writeTimeout.
func (s *Server) trailerDeadline(ctx context.Context) {
	if rc, _ := ctx.Value(controllerKey{}).(*http.ResponseController); rc != nil && s.writeTimeout > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	}
}
