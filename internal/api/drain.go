package api

import (
	"context"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// AgentDrain implements syscallsv1connect.KernelHandler (operators only;
// see kernel.Kernel.AgentDrain).
func (s *Server) AgentDrain(ctx context.Context, r *connect.Request[pb.AgentDrainRequest]) (*connect.Response[pb.AgentDrainResponse], error) {
	return reply(s.k.AgentDrain(ctx, principal(ctx), r.Msg))
}
