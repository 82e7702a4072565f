package api

import (
	"context"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Issue 16's tokens syscalls answer Unimplemented (errPending) until built.

// TokenCreate implements syscallsv1connect.KernelHandler.
func (s *Server) TokenCreate(context.Context, *connect.Request[pb.TokenCreateRequest]) (*connect.Response[pb.TokenCreateResponse], error) {
	return nil, errPending
}

// TokenList implements syscallsv1connect.KernelHandler.
func (s *Server) TokenList(context.Context, *connect.Request[pb.TokenListRequest]) (*connect.Response[pb.TokenListResponse], error) {
	return nil, errPending
}

// TokenRevoke implements syscallsv1connect.KernelHandler.
func (s *Server) TokenRevoke(context.Context, *connect.Request[pb.TokenRevokeRequest]) (*connect.Response[pb.TokenRevokeResponse], error) {
	return nil, errPending
}

// AgentJoin implements syscallsv1connect.KernelHandler.
func (s *Server) AgentJoin(context.Context, *connect.Request[pb.AgentJoinRequest]) (*connect.Response[pb.AgentJoinResponse], error) {
	return nil, errPending
}
