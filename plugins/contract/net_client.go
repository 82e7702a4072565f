package contract

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// NetClient is a NetDriver that calls a net driver plugin over gRPC. Errors
// wrap the contract's sentinels (ErrTaskNotFound, ErrNotSupported,
// ErrConflict, ErrExhausted) as the plugin returned them, and
// ErrPluginExited once the plugin process is gone: a call to a dead plugin
// fails, it does not hang.
type NetClient struct {
	rpc  pluginsv1.NetDriverClient
	done context.Context
}

var _ NetDriver = (*NetClient)(nil)

// NewNetClient returns a client over conn. done is a context cancelled when
// the plugin process exits (go-plugin passes one to GRPCClient); pass
// context.Background() for a connection with no process behind it.
func NewNetClient(done context.Context, conn grpc.ClientConnInterface) *NetClient {
	return &NetClient{rpc: pluginsv1.NewNetDriverClient(conn), done: done}
}

// Setup implements NetDriver.
func (c *NetClient) Setup(ctx context.Context, req NetworkRequest) (*NetworkStatus, error) {
	resp, err := c.rpc.Setup(ctx, &pluginsv1.NetSetupRequest{ContainerId: req.ContainerID, Mode: string(req.Mode), Ports: portsToProto(req.Ports)})
	if err != nil {
		return nil, fromStatus(c.done, "net setup", err)
	}
	return c.status("net setup", resp.GetStatus())
}

// Teardown implements NetDriver.
func (c *NetClient) Teardown(ctx context.Context, containerID string) error {
	_, err := c.rpc.Teardown(ctx, &pluginsv1.NetTeardownRequest{ContainerId: containerID})
	return fromStatus(c.done, "net teardown", err)
}

// Status implements NetDriver.
func (c *NetClient) Status(ctx context.Context, containerID string) (*NetworkStatus, error) {
	resp, err := c.rpc.Status(ctx, &pluginsv1.NetStatusRequest{ContainerId: containerID})
	if err != nil {
		return nil, fromStatus(c.done, "net status", err)
	}
	return c.status("net status", resp.GetStatus())
}

func (c *NetClient) status(op string, pb *pluginsv1.NetworkStatus) (*NetworkStatus, error) {
	if pb == nil {
		return nil, fmt.Errorf("%s: plugin returned no status", op)
	}
	s, err := networkStatusFromProto(pb)
	if err != nil {
		return nil, fmt.Errorf("%s: plugin returned a bad status: %w", op, err)
	}
	return s, nil
}

// Recover implements NetDriver.
func (c *NetClient) Recover(ctx context.Context, containers []NetworkStatus) error {
	req := &pluginsv1.NetRecoverRequest{Containers: make([]*pluginsv1.NetworkStatus, 0, len(containers))}
	for i := range containers {
		req.Containers = append(req.Containers, networkStatusToProto(&containers[i]))
	}
	_, err := c.rpc.Recover(ctx, req)
	return fromStatus(c.done, "net recover", err)
}

// ConfigureNode implements NetDriver.
func (c *NetClient) ConfigureNode(ctx context.Context, cfg NodeConfig) error {
	_, err := c.rpc.ConfigureNode(ctx, nodeConfigToProto(cfg))
	return fromStatus(c.done, "net configure node", err)
}

// RemoveNode implements NetDriver.
func (c *NetClient) RemoveNode(ctx context.Context) error {
	_, err := c.rpc.RemoveNode(ctx, &pluginsv1.NetRemoveNodeRequest{})
	return fromStatus(c.done, "net remove node", err)
}

// GC implements NetDriver.
func (c *NetClient) GC(ctx context.Context, live []string) ([]string, error) {
	resp, err := c.rpc.GC(ctx, &pluginsv1.NetGCRequest{Live: live})
	if err != nil {
		return nil, fromStatus(c.done, "net gc", err)
	}
	return resp.GetRemoved(), nil
}
