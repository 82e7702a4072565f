package api

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var errStreamsTODO = connect.NewError(connect.CodeUnimplemented, errors.New("not yet"))

// Logs implements syscallsv1connect.KernelHandler.
func (s *Server) Logs(context.Context, *connect.Request[pb.LogsRequest], *connect.ServerStream[pb.LogsChunk]) error {
	return errStreamsTODO
}

// Exec implements syscallsv1connect.KernelHandler.
func (s *Server) Exec(context.Context, *connect.BidiStream[pb.ExecInput, pb.ExecOutput]) error {
	return errStreamsTODO
}

// AgentStreams implements syscallsv1connect.KernelHandler.
func (s *Server) AgentStreams(context.Context, *connect.Request[pb.AgentStreamsRequest], *connect.ServerStream[pb.StreamOpen]) error {
	return errStreamsTODO
}

// AgentRelay implements syscallsv1connect.KernelHandler.
func (s *Server) AgentRelay(context.Context, *connect.BidiStream[pb.RelayUp, pb.RelayDown]) error {
	return errStreamsTODO
}
