package api

import (
	"context"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Issue 16's roles syscalls answer Unimplemented (errPending) until built.

// RoleSet implements syscallsv1connect.KernelHandler.
func (s *Server) RoleSet(context.Context, *connect.Request[pb.RoleSetRequest]) (*connect.Response[pb.RoleSetResponse], error) {
	return nil, errPending
}

// RoleList implements syscallsv1connect.KernelHandler.
func (s *Server) RoleList(context.Context, *connect.Request[pb.RoleListRequest]) (*connect.Response[pb.RoleListResponse], error) {
	return nil, errPending
}
