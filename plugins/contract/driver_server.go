package contract

import (
	"context"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// driverServer serves a Driver over gRPC, mapping the contract's sentinels to
// gRPC codes.
type driverServer struct {
	pluginsv1.UnimplementedDriverServer
	impl Driver
}

var _ pluginsv1.DriverServer = (*driverServer)(nil)

func (s *driverServer) Capabilities(ctx context.Context, _ *pluginsv1.CapabilitiesRequest) (*pluginsv1.CapabilitiesResponse, error) {
	c, err := s.impl.Capabilities(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	pc := capabilitiesToProto(c)
	if pc != nil {
		// Images says what DriverPlugin registered: the truth, whatever
		// the implementation claims.
		_, pc.Images = s.impl.(ImageDriver)
		_, pc.Exec = s.impl.(ExecDriver)
	}
	return &pluginsv1.CapabilitiesResponse{Capabilities: pc}, nil
}

func (s *driverServer) Fingerprint(ctx context.Context, _ *pluginsv1.FingerprintRequest) (*pluginsv1.FingerprintResponse, error) {
	f, err := s.impl.Fingerprint(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if f == nil {
		return &pluginsv1.FingerprintResponse{}, nil
	}
	return &pluginsv1.FingerprintResponse{Health: pluginsv1.Health(f.Health), HealthDescription: f.HealthDescription, Attributes: f.Attributes}, nil
}

func (s *driverServer) StartTask(ctx context.Context, req *pluginsv1.StartTaskRequest) (*pluginsv1.StartTaskResponse, error) {
	h, err := s.impl.StartTask(ctx, taskConfigFromProto(req.GetConfig()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginsv1.StartTaskResponse{Handle: handleToProto(h)}, nil
}

func (s *driverServer) WaitTask(ctx context.Context, req *pluginsv1.WaitTaskRequest) (*pluginsv1.WaitTaskResponse, error) {
	r, err := s.impl.WaitTask(ctx, req.GetTaskId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginsv1.WaitTaskResponse{Result: exitToProto(r)}, nil
}

func (s *driverServer) StopTask(ctx context.Context, req *pluginsv1.StopTaskRequest) (*pluginsv1.StopTaskResponse, error) {
	err := s.impl.StopTask(ctx, req.GetTaskId(), req.GetTimeout().AsDuration(), req.GetSignal())
	return &pluginsv1.StopTaskResponse{}, toStatus(err)
}

func (s *driverServer) DestroyTask(ctx context.Context, req *pluginsv1.DestroyTaskRequest) (*pluginsv1.DestroyTaskResponse, error) {
	err := s.impl.DestroyTask(ctx, req.GetTaskId(), req.GetForce())
	return &pluginsv1.DestroyTaskResponse{}, toStatus(err)
}

func (s *driverServer) InspectTask(ctx context.Context, req *pluginsv1.InspectTaskRequest) (*pluginsv1.InspectTaskResponse, error) {
	st, err := s.impl.InspectTask(ctx, req.GetTaskId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginsv1.InspectTaskResponse{Status: statusToProto(st)}, nil
}

func (s *driverServer) TaskStats(ctx context.Context, req *pluginsv1.TaskStatsRequest) (*pluginsv1.TaskStatsResponse, error) {
	u, err := s.impl.TaskStats(ctx, req.GetTaskId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginsv1.TaskStatsResponse{Usage: usageToProto(u)}, nil
}

func (s *driverServer) SignalTask(ctx context.Context, req *pluginsv1.SignalTaskRequest) (*pluginsv1.SignalTaskResponse, error) {
	err := s.impl.SignalTask(ctx, req.GetTaskId(), req.GetSignal())
	return &pluginsv1.SignalTaskResponse{}, toStatus(err)
}

func (s *driverServer) RecoverTask(ctx context.Context, req *pluginsv1.RecoverTaskRequest) (*pluginsv1.RecoverTaskResponse, error) {
	err := s.impl.RecoverTask(ctx, handleFromProto(req.GetHandle()))
	return &pluginsv1.RecoverTaskResponse{}, toStatus(err)
}
