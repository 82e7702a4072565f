package contract

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// StorageClient is a StorageDriver that calls a storage driver plugin over
// gRPC. Errors are mapped as NetClient maps them.
type StorageClient struct {
	rpc  pluginsv1.StorageDriverClient
	done context.Context
}

var _ StorageDriver = (*StorageClient)(nil)

// NewStorageClient returns a client over conn. done is a context cancelled
// when the plugin process exits (go-plugin passes one to GRPCClient); pass
// context.Background() for a connection with no process behind it.
func NewStorageClient(done context.Context, conn grpc.ClientConnInterface) *StorageClient {
	return &StorageClient{rpc: pluginsv1.NewStorageDriverClient(conn), done: done}
}

// PrepareSandbox implements StorageDriver.
func (c *StorageClient) PrepareSandbox(ctx context.Context, containerID string, sizeBytes int64) (*Sandbox, error) {
	resp, err := c.rpc.PrepareSandbox(ctx, &pluginsv1.PrepareSandboxRequest{ContainerId: containerID, SizeBytes: sizeBytes})
	if err != nil {
		return nil, fromStatus(c.done, "prepare sandbox", err)
	}
	if resp.GetSandbox() == nil {
		return nil, fmt.Errorf("prepare sandbox: plugin returned no sandbox")
	}
	s := sandboxFromProto(resp.GetSandbox())
	return &s, nil
}

// CleanupSandbox implements StorageDriver.
func (c *StorageClient) CleanupSandbox(ctx context.Context, containerID string) error {
	_, err := c.rpc.CleanupSandbox(ctx, &pluginsv1.CleanupSandboxRequest{ContainerId: containerID})
	return fromStatus(c.done, "cleanup sandbox", err)
}

// CreateVolume implements StorageDriver.
func (c *StorageClient) CreateVolume(ctx context.Context, req VolumeRequest) (*Volume, error) {
	resp, err := c.rpc.CreateVolume(ctx, &pluginsv1.CreateVolumeRequest{Id: req.ID, Role: req.Role, SizeBytes: req.SizeBytes})
	if err != nil {
		return nil, fromStatus(c.done, "create volume", err)
	}
	if resp.GetVolume() == nil {
		return nil, fmt.Errorf("create volume: plugin returned no volume")
	}
	v := volumeFromProto(resp.GetVolume())
	return &v, nil
}

// DestroyVolume implements StorageDriver.
func (c *StorageClient) DestroyVolume(ctx context.Context, volumeID string) error {
	_, err := c.rpc.DestroyVolume(ctx, &pluginsv1.DestroyVolumeRequest{Id: volumeID})
	return fromStatus(c.done, "destroy volume", err)
}

// ListVolumes implements StorageDriver.
func (c *StorageClient) ListVolumes(ctx context.Context) ([]Volume, error) {
	resp, err := c.rpc.ListVolumes(ctx, &pluginsv1.ListVolumesRequest{})
	if err != nil {
		return nil, fromStatus(c.done, "list volumes", err)
	}
	vs := make([]Volume, 0, len(resp.GetVolumes()))
	for _, v := range resp.GetVolumes() {
		vs = append(vs, volumeFromProto(v))
	}
	return vs, nil
}

// Mount implements StorageDriver.
func (c *StorageClient) Mount(ctx context.Context, req MountRequest) (*Mount, error) {
	resp, err := c.rpc.Mount(ctx, &pluginsv1.MountRequest{
		ContainerId: req.ContainerID, VolumeId: req.VolumeID, HostPath: req.HostPath, Target: req.Target, ReadOnly: req.ReadOnly,
	})
	if err != nil {
		return nil, fromStatus(c.done, "mount", err)
	}
	if resp.GetMount() == nil {
		return nil, fmt.Errorf("mount: plugin returned no mount")
	}
	m := mountFromProto(resp.GetMount())
	return &m, nil
}

// Unmount implements StorageDriver.
func (c *StorageClient) Unmount(ctx context.Context, containerID, target string) error {
	_, err := c.rpc.Unmount(ctx, &pluginsv1.UnmountRequest{ContainerId: containerID, Target: target})
	return fromStatus(c.done, "unmount", err)
}

// Recover implements StorageDriver.
func (c *StorageClient) Recover(ctx context.Context, sandboxes []Sandbox) error {
	req := &pluginsv1.StorageRecoverRequest{Sandboxes: make([]*pluginsv1.Sandbox, 0, len(sandboxes))}
	for i := range sandboxes {
		req.Sandboxes = append(req.Sandboxes, sandboxToProto(&sandboxes[i]))
	}
	_, err := c.rpc.Recover(ctx, req)
	return fromStatus(c.done, "storage recover", err)
}
