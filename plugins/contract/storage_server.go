package contract

import (
	"context"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// storageServer serves a StorageDriver over gRPC, mapping the contract's
// sentinels to gRPC codes.
type storageServer struct {
	pluginsv1.UnimplementedStorageDriverServer
	impl StorageDriver
}

var _ pluginsv1.StorageDriverServer = (*storageServer)(nil)

func (s *storageServer) PrepareSandbox(ctx context.Context, req *pluginsv1.PrepareSandboxRequest) (*pluginsv1.PrepareSandboxResponse, error) {
	sb, err := s.impl.PrepareSandbox(ctx, req.GetContainerId(), req.GetSizeBytes())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginsv1.PrepareSandboxResponse{Sandbox: sandboxToProto(sb)}, nil
}

func (s *storageServer) CleanupSandbox(ctx context.Context, req *pluginsv1.CleanupSandboxRequest) (*pluginsv1.CleanupSandboxResponse, error) {
	err := s.impl.CleanupSandbox(ctx, req.GetContainerId())
	return &pluginsv1.CleanupSandboxResponse{}, toStatus(err)
}

func (s *storageServer) CreateVolume(ctx context.Context, req *pluginsv1.CreateVolumeRequest) (*pluginsv1.CreateVolumeResponse, error) {
	v, err := s.impl.CreateVolume(ctx, VolumeRequest{ID: req.GetId(), Role: req.GetRole(), SizeBytes: req.GetSizeBytes()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginsv1.CreateVolumeResponse{Volume: volumeToProto(v)}, nil
}

func (s *storageServer) DestroyVolume(ctx context.Context, req *pluginsv1.DestroyVolumeRequest) (*pluginsv1.DestroyVolumeResponse, error) {
	err := s.impl.DestroyVolume(ctx, req.GetId())
	return &pluginsv1.DestroyVolumeResponse{}, toStatus(err)
}

func (s *storageServer) ListVolumes(ctx context.Context, _ *pluginsv1.ListVolumesRequest) (*pluginsv1.ListVolumesResponse, error) {
	vs, err := s.impl.ListVolumes(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &pluginsv1.ListVolumesResponse{Volumes: make([]*pluginsv1.Volume, 0, len(vs))}
	for i := range vs {
		resp.Volumes = append(resp.Volumes, volumeToProto(&vs[i]))
	}
	return resp, nil
}

func (s *storageServer) Mount(ctx context.Context, req *pluginsv1.MountRequest) (*pluginsv1.MountResponse, error) {
	m, err := s.impl.Mount(ctx, MountRequest{
		ContainerID: req.GetContainerId(), VolumeID: req.GetVolumeId(), HostPath: req.GetHostPath(), Target: req.GetTarget(), ReadOnly: req.GetReadOnly(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pluginsv1.MountResponse{Mount: mountToProto(m)}, nil
}

func (s *storageServer) Unmount(ctx context.Context, req *pluginsv1.UnmountRequest) (*pluginsv1.UnmountResponse, error) {
	err := s.impl.Unmount(ctx, req.GetContainerId(), req.GetTarget())
	return &pluginsv1.UnmountResponse{}, toStatus(err)
}

func (s *storageServer) Recover(ctx context.Context, req *pluginsv1.StorageRecoverRequest) (*pluginsv1.StorageRecoverResponse, error) {
	sandboxes := make([]Sandbox, 0, len(req.GetSandboxes()))
	for _, sb := range req.GetSandboxes() {
		sandboxes = append(sandboxes, sandboxFromProto(sb))
	}
	err := s.impl.Recover(ctx, sandboxes)
	return &pluginsv1.StorageRecoverResponse{}, toStatus(err)
}
