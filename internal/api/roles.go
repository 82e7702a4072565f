package api

import (
	"context"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// RoleSet implements syscallsv1connect.KernelHandler (operators only; see
// kernel.Kernel.RoleSet).
func (s *Server) RoleSet(ctx context.Context, r *connect.Request[pb.RoleSetRequest]) (*connect.Response[pb.RoleSetResponse], error) {
	return reply(s.k.RoleSet(ctx, principal(ctx), r.Msg))
}

// RoleList implements syscallsv1connect.KernelHandler (operators and
// frameworks; see kernel.Kernel.RoleList).
func (s *Server) RoleList(ctx context.Context, _ *connect.Request[pb.RoleListRequest]) (*connect.Response[pb.RoleListResponse], error) {
	return reply(s.k.RoleList(ctx, principal(ctx)), nil)
}
