package contract

import (
	"context"

	"google.golang.org/grpc"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// IsolatorClient is an Isolator that calls an isolator plugin over gRPC.
// Errors are mapped as DriverClient maps them.
type IsolatorClient struct {
	rpc  pluginsv1.IsolatorClient
	done context.Context
}

var _ Isolator = (*IsolatorClient)(nil)

// NewIsolatorClient returns a client over conn. done is a context cancelled when
// the plugin process exits (go-plugin passes one to GRPCClient); pass
// context.Background() for a connection with no process behind it.
func NewIsolatorClient(done context.Context, conn grpc.ClientConnInterface) *IsolatorClient {
	return &IsolatorClient{rpc: pluginsv1.NewIsolatorClient(conn), done: done}
}

// Prepare implements Isolator.
func (c *IsolatorClient) Prepare(ctx context.Context, containerID string, limits Resources) (*LaunchInfo, error) {
	resp, err := c.rpc.Prepare(ctx, &pluginsv1.PrepareRequest{ContainerId: containerID, Limits: resourcesToProto(limits)})
	if err != nil {
		return nil, fromStatus(c.done, "prepare", err)
	}
	return &LaunchInfo{Cgroups: resp.GetCgroups(), Env: resp.GetEnv()}, nil
}

// Isolate implements Isolator.
func (c *IsolatorClient) Isolate(ctx context.Context, containerID string, pid int) error {
	_, err := c.rpc.Isolate(ctx, &pluginsv1.IsolateRequest{ContainerId: containerID, Pid: int32(pid)})
	return fromStatus(c.done, "isolate", err)
}

// Update implements Isolator.
func (c *IsolatorClient) Update(ctx context.Context, containerID string, limits Resources) error {
	_, err := c.rpc.Update(ctx, &pluginsv1.UpdateRequest{ContainerId: containerID, Limits: resourcesToProto(limits)})
	return fromStatus(c.done, "update", err)
}

// Usage implements Isolator.
func (c *IsolatorClient) Usage(ctx context.Context, containerID string) (*TaskUsage, error) {
	resp, err := c.rpc.Usage(ctx, &pluginsv1.UsageRequest{ContainerId: containerID})
	if err != nil {
		return nil, fromStatus(c.done, "usage", err)
	}
	return usageFromProto(resp.GetUsage()), nil
}

// Watch implements Isolator. It returns once the plugin's watch is in place,
// so no limitation caused after it returns is missed. The channel closes when ctx is done, the
// container is cleaned up, or the stream fails (e.g. the plugin exited).
func (c *IsolatorClient) Watch(ctx context.Context, containerID string) (<-chan Limitation, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.rpc.Watch(ctx, &pluginsv1.WatchRequest{ContainerId: containerID})
	if err != nil {
		cancel()
		return nil, fromStatus(c.done, "watch", err)
	}
	// Return only once the plugin's watch is in place (or has failed).
	md, err := stream.Header()
	if err == nil && len(md.Get(watchReadyKey)) == 0 {
		_, err = stream.Recv() // the stream ended without a watch: its status
	}
	if err != nil {
		cancel()
		return nil, fromStatus(c.done, "watch", err)
	}
	ch := make(chan Limitation)
	go func() {
		defer cancel()
		defer close(ch)
		for {
			l, err := stream.Recv()
			if err != nil { // io.EOF, ctx done, or the plugin exited
				return
			}
			select {
			case ch <- Limitation{ContainerID: l.GetContainerId(), Reason: LimitationReason(l.GetReason()), Message: l.GetMessage(), At: timeFromProto(l.GetAt())}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// Cleanup implements Isolator.
func (c *IsolatorClient) Cleanup(ctx context.Context, containerID string) error {
	_, err := c.rpc.Cleanup(ctx, &pluginsv1.CleanupRequest{ContainerId: containerID})
	return fromStatus(c.done, "cleanup", err)
}

// Recover implements Isolator.
func (c *IsolatorClient) Recover(ctx context.Context, containers []ContainerState) error {
	req := &pluginsv1.RecoverRequest{Containers: make([]*pluginsv1.ContainerState, 0, len(containers))}
	for _, s := range containers {
		req.Containers = append(req.Containers, &pluginsv1.ContainerState{ContainerId: s.ContainerID, Pid: int32(s.PID), Limits: resourcesToProto(s.Limits)})
	}
	_, err := c.rpc.Recover(ctx, req)
	return fromStatus(c.done, "recover", err)
}
