package api

import (
	"context"
	"errors"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// The coordination syscalls (issue 13) are served by kernel/coord.go once
// it lands; until then they answer Unimplemented.
var errCoordination = connect.NewError(connect.CodeUnimplemented, errors.New("coordination syscalls are not implemented yet"))

// Campaign implements syscallsv1connect.KernelHandler.
func (s *Server) Campaign(context.Context, *connect.Request[pb.CampaignRequest]) (*connect.Response[pb.CampaignResponse], error) {
	return nil, errCoordination
}

// Resign implements syscallsv1connect.KernelHandler.
func (s *Server) Resign(context.Context, *connect.Request[pb.ResignRequest]) (*connect.Response[pb.ResignResponse], error) {
	return nil, errCoordination
}

// Leader implements syscallsv1connect.KernelHandler.
func (s *Server) Leader(context.Context, *connect.Request[pb.LeaderRequest]) (*connect.Response[pb.LeaderResponse], error) {
	return nil, errCoordination
}

// StateGet implements syscallsv1connect.KernelHandler.
func (s *Server) StateGet(context.Context, *connect.Request[pb.StateGetRequest]) (*connect.Response[pb.StateGetResponse], error) {
	return nil, errCoordination
}

// StatePut implements syscallsv1connect.KernelHandler.
func (s *Server) StatePut(context.Context, *connect.Request[pb.StatePutRequest]) (*connect.Response[pb.StatePutResponse], error) {
	return nil, errCoordination
}

// StateDelete implements syscallsv1connect.KernelHandler.
func (s *Server) StateDelete(context.Context, *connect.Request[pb.StateDeleteRequest]) (*connect.Response[pb.StateDeleteResponse], error) {
	return nil, errCoordination
}

// StateList implements syscallsv1connect.KernelHandler.
func (s *Server) StateList(context.Context, *connect.Request[pb.StateListRequest]) (*connect.Response[pb.StateListResponse], error) {
	return nil, errCoordination
}
