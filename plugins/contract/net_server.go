package contract

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// netServer serves a NetDriver over gRPC, mapping the contract's sentinels
// to gRPC codes. A request the contract's types cannot hold (a malformed
// address, a port above 65535) is refused with codes.InvalidArgument before
// it reaches the implementation.
type netServer struct {
	pluginsv1.UnimplementedNetDriverServer
	impl NetDriver
}

var _ pluginsv1.NetDriverServer = (*netServer)(nil)

func (s *netServer) Setup(ctx context.Context, req *pluginsv1.NetSetupRequest) (*pluginsv1.NetSetupResponse, error) {
	ports, err := portsFromProto(req.GetPorts())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	st, err := s.impl.Setup(ctx, NetworkRequest{ContainerID: req.GetContainerId(), Mode: NetworkMode(req.GetMode()), Ports: ports})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginsv1.NetSetupResponse{Status: networkStatusToProto(st)}, nil
}

func (s *netServer) Teardown(ctx context.Context, req *pluginsv1.NetTeardownRequest) (*pluginsv1.NetTeardownResponse, error) {
	err := s.impl.Teardown(ctx, req.GetContainerId())
	return &pluginsv1.NetTeardownResponse{}, toStatus(err)
}

func (s *netServer) Status(ctx context.Context, req *pluginsv1.NetStatusRequest) (*pluginsv1.NetStatusResponse, error) {
	st, err := s.impl.Status(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginsv1.NetStatusResponse{Status: networkStatusToProto(st)}, nil
}

func (s *netServer) Recover(ctx context.Context, req *pluginsv1.NetRecoverRequest) (*pluginsv1.NetRecoverResponse, error) {
	containers := make([]NetworkStatus, 0, len(req.GetContainers()))
	for _, pb := range req.GetContainers() {
		st, err := networkStatusFromProto(pb)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "container %q: %v", pb.GetContainerId(), err)
		}
		containers = append(containers, *st)
	}
	err := s.impl.Recover(ctx, containers)
	return &pluginsv1.NetRecoverResponse{}, toStatus(err)
}

func (s *netServer) ConfigureNode(ctx context.Context, req *pluginsv1.NetConfigureNodeRequest) (*pluginsv1.NetConfigureNodeResponse, error) {
	cfg, err := nodeConfigFromProto(req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	err = s.impl.ConfigureNode(ctx, cfg)
	return &pluginsv1.NetConfigureNodeResponse{}, toStatus(err)
}

func (s *netServer) GC(ctx context.Context, req *pluginsv1.NetGCRequest) (*pluginsv1.NetGCResponse, error) {
	removed, err := s.impl.GC(ctx, req.GetLive())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginsv1.NetGCResponse{Removed: removed}, nil
}

func (s *netServer) RemoveNode(ctx context.Context, _ *pluginsv1.NetRemoveNodeRequest) (*pluginsv1.NetRemoveNodeResponse, error) {
	err := s.impl.RemoveNode(ctx)
	return &pluginsv1.NetRemoveNodeResponse{}, toStatus(err)
}
