package api

import (
	"context"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Issue 16's drain syscalls answer Unimplemented (errPending) until built.

// AgentDrain implements syscallsv1connect.KernelHandler.
func (s *Server) AgentDrain(context.Context, *connect.Request[pb.AgentDrainRequest]) (*connect.Response[pb.AgentDrainResponse], error) {
	return nil, errPending
}
