package api

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// The syscalls of issue 16 that are being built: each answers
// Unimplemented until its file replaces its method here.

var errPending = connect.NewError(connect.CodeUnimplemented, errors.New("not implemented yet"))

// RoleSet implements syscallsv1connect.KernelHandler.
func (s *Server) RoleSet(context.Context, *connect.Request[pb.RoleSetRequest]) (*connect.Response[pb.RoleSetResponse], error) {
	return nil, errPending
}

// RoleList implements syscallsv1connect.KernelHandler.
func (s *Server) RoleList(context.Context, *connect.Request[pb.RoleListRequest]) (*connect.Response[pb.RoleListResponse], error) {
	return nil, errPending
}

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

// AgentDrain implements syscallsv1connect.KernelHandler.
func (s *Server) AgentDrain(context.Context, *connect.Request[pb.AgentDrainRequest]) (*connect.Response[pb.AgentDrainResponse], error) {
	return nil, errPending
}

// ClusterInfo implements syscallsv1connect.KernelHandler.
func (s *Server) ClusterInfo(context.Context, *connect.Request[pb.ClusterInfoRequest]) (*connect.Response[pb.ClusterInfoResponse], error) {
	return nil, errPending
}
