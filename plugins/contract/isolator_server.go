package contract

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// watchReadyKey is the header the server of Watch sends once the
// implementation's watch is in place.
const watchReadyKey = "dcos-watch-ready"

// isolatorServer serves an Isolator over gRPC, mapping the contract's
// sentinels to gRPC codes.
type isolatorServer struct {
	pluginsv1.UnimplementedIsolatorServer
	impl Isolator
}

var _ pluginsv1.IsolatorServer = (*isolatorServer)(nil)

func (s *isolatorServer) Prepare(ctx context.Context, req *pluginsv1.PrepareRequest) (*pluginsv1.PrepareResponse, error) {
	li, err := s.impl.Prepare(ctx, req.GetContainerId(), resourcesFromProto(req.GetLimits()))
	if err != nil {
		return nil, toStatus(err)
	}
	if li == nil {
		li = &LaunchInfo{}
	}
	return &pluginsv1.PrepareResponse{Cgroups: li.Cgroups, Env: li.Env}, nil
}

func (s *isolatorServer) Isolate(ctx context.Context, req *pluginsv1.IsolateRequest) (*pluginsv1.IsolateResponse, error) {
	err := s.impl.Isolate(ctx, req.GetContainerId(), int(req.GetPid()))
	return &pluginsv1.IsolateResponse{}, toStatus(err)
}

func (s *isolatorServer) Update(ctx context.Context, req *pluginsv1.UpdateRequest) (*pluginsv1.UpdateResponse, error) {
	err := s.impl.Update(ctx, req.GetContainerId(), resourcesFromProto(req.GetLimits()))
	return &pluginsv1.UpdateResponse{}, toStatus(err)
}

func (s *isolatorServer) Usage(ctx context.Context, req *pluginsv1.UsageRequest) (*pluginsv1.UsageResponse, error) {
	u, err := s.impl.Usage(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginsv1.UsageResponse{Usage: usageToProto(u)}, nil
}

func (s *isolatorServer) Watch(req *pluginsv1.WatchRequest, stream grpc.ServerStreamingServer[pluginsv1.Limitation]) error {
	ctx := stream.Context()
	ch, err := s.impl.Watch(ctx, req.GetContainerId())
	if err != nil {
		return toStatus(err)
	}
	// Tell the client the watch is in place, so that a limitation caused
	// after its Watch returns is not missed.
	if err := stream.SendHeader(metadata.Pairs(watchReadyKey, "1")); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-ch:
			if !ok {
				return nil
			}
			if err := stream.Send(&pluginsv1.Limitation{ContainerId: l.ContainerID, Reason: pluginsv1.LimitationReason(l.Reason), Message: l.Message, At: timeToProto(l.At)}); err != nil {
				return err
			}
		}
	}
}

func (s *isolatorServer) Cleanup(ctx context.Context, req *pluginsv1.CleanupRequest) (*pluginsv1.CleanupResponse, error) {
	err := s.impl.Cleanup(ctx, req.GetContainerId())
	return &pluginsv1.CleanupResponse{}, toStatus(err)
}

func (s *isolatorServer) Recover(ctx context.Context, req *pluginsv1.RecoverRequest) (*pluginsv1.RecoverResponse, error) {
	states := make([]ContainerState, 0, len(req.GetContainers()))
	for _, c := range req.GetContainers() {
		states = append(states, ContainerState{ContainerID: c.GetContainerId(), PID: int(c.GetPid()), Limits: resourcesFromProto(c.GetLimits())})
	}
	err := s.impl.Recover(ctx, states)
	return &pluginsv1.RecoverResponse{}, toStatus(err)
}
