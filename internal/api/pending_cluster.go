package api

import (
	"context"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Issue 16's cluster syscalls answer Unimplemented (errPending) until built.

// ClusterInfo implements syscallsv1connect.KernelHandler.
func (s *Server) ClusterInfo(context.Context, *connect.Request[pb.ClusterInfoRequest]) (*connect.Response[pb.ClusterInfoResponse], error) {
	return nil, errPending
}
