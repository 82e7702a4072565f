package api

import (
	"context"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// The coordination syscalls: elections and framework state, served by
// kernel/coord.go. A compare-and-swap that lost is Aborted.

// Campaign implements syscallsv1connect.KernelHandler.
func (s *Server) Campaign(ctx context.Context, r *connect.Request[pb.CampaignRequest]) (*connect.Response[pb.CampaignResponse], error) {
	return reply(s.k.Campaign(ctx, principal(ctx), r.Msg))
}

// Resign implements syscallsv1connect.KernelHandler.
func (s *Server) Resign(ctx context.Context, r *connect.Request[pb.ResignRequest]) (*connect.Response[pb.ResignResponse], error) {
	return reply(s.k.Resign(ctx, principal(ctx), r.Msg))
}

// Leader implements syscallsv1connect.KernelHandler.
func (s *Server) Leader(ctx context.Context, r *connect.Request[pb.LeaderRequest]) (*connect.Response[pb.LeaderResponse], error) {
	return reply(s.k.Leader(ctx, principal(ctx), r.Msg))
}

// StateGet implements syscallsv1connect.KernelHandler.
func (s *Server) StateGet(ctx context.Context, r *connect.Request[pb.StateGetRequest]) (*connect.Response[pb.StateGetResponse], error) {
	return reply(s.k.StateGet(ctx, principal(ctx), r.Msg))
}

// StatePut implements syscallsv1connect.KernelHandler.
func (s *Server) StatePut(ctx context.Context, r *connect.Request[pb.StatePutRequest]) (*connect.Response[pb.StatePutResponse], error) {
	return reply(s.k.StatePut(ctx, principal(ctx), r.Msg))
}

// StateDelete implements syscallsv1connect.KernelHandler.
func (s *Server) StateDelete(ctx context.Context, r *connect.Request[pb.StateDeleteRequest]) (*connect.Response[pb.StateDeleteResponse], error) {
	return reply(s.k.StateDelete(ctx, principal(ctx), r.Msg))
}

// StateList implements syscallsv1connect.KernelHandler.
func (s *Server) StateList(ctx context.Context, r *connect.Request[pb.StateListRequest]) (*connect.Response[pb.StateListResponse], error) {
	return reply(s.k.StateList(ctx, principal(ctx), r.Msg))
}
