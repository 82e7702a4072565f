package contract

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// DriverClient is a Driver that calls a driver plugin over gRPC. Errors wrap
// the contract's sentinels (ErrTaskNotFound, ErrNotSupported,
// ErrHandleVersion) as the plugin returned them, and ErrPluginExited once the
// plugin process is gone: a call to a dead plugin fails, it does not hang.
//
// It also implements ImageDriver (images_client.go) over the same
// connection: against a plugin that does not serve images those calls
// return ErrNotSupported (Capabilities.Images says which it is), and
// ExecDriver (exec_client.go) likewise (Capabilities.Exec).
type DriverClient struct {
	rpc    pluginsv1.DriverClient
	images pluginsv1.ImageDriverClient
	done   context.Context

	execMu    sync.Mutex
	exec      bool // Capabilities.Exec, once execKnown
	execKnown bool
}

var _ Driver = (*DriverClient)(nil)

// NewDriverClient returns a client over conn. done is a context cancelled when
// the plugin process exits (go-plugin passes one to GRPCClient); pass
// context.Background() for a connection with no process behind it.
func NewDriverClient(done context.Context, conn grpc.ClientConnInterface) *DriverClient {
	return &DriverClient{rpc: pluginsv1.NewDriverClient(conn), images: pluginsv1.NewImageDriverClient(conn), done: done}
}

// Capabilities implements Driver.
func (c *DriverClient) Capabilities(ctx context.Context) (*Capabilities, error) {
	resp, err := c.rpc.Capabilities(ctx, &pluginsv1.CapabilitiesRequest{})
	if err != nil {
		return nil, fromStatus(c.done, "capabilities", err)
	}
	return capabilitiesFromProto(resp.GetCapabilities()), nil
}

// Fingerprint implements Driver.
func (c *DriverClient) Fingerprint(ctx context.Context) (*Fingerprint, error) {
	resp, err := c.rpc.Fingerprint(ctx, &pluginsv1.FingerprintRequest{})
	if err != nil {
		return nil, fromStatus(c.done, "fingerprint", err)
	}
	h := Health(resp.GetHealth())
	if resp.GetHealth() == pluginsv1.Health_HEALTH_UNSPECIFIED {
		h = HealthUndetected
	}
	return &Fingerprint{Health: h, HealthDescription: resp.GetHealthDescription(), Attributes: resp.GetAttributes()}, nil
}

// StartTask implements Driver.
func (c *DriverClient) StartTask(ctx context.Context, cfg *TaskConfig) (*TaskHandle, error) {
	resp, err := c.rpc.StartTask(ctx, &pluginsv1.StartTaskRequest{Config: taskConfigToProto(cfg)})
	if err != nil {
		return nil, fromStatus(c.done, "start task", err)
	}
	return handleFromProto(resp.GetHandle()), nil
}

// WaitTask implements Driver.
func (c *DriverClient) WaitTask(ctx context.Context, taskID string) (*ExitResult, error) {
	resp, err := c.rpc.WaitTask(ctx, &pluginsv1.WaitTaskRequest{TaskId: taskID})
	if err != nil {
		return nil, fromStatus(c.done, "wait task", err)
	}
	if resp.GetResult() == nil {
		return &ExitResult{}, nil
	}
	return exitFromProto(resp.GetResult()), nil
}

// StopTask implements Driver.
func (c *DriverClient) StopTask(ctx context.Context, taskID string, timeout time.Duration, signal string) error {
	_, err := c.rpc.StopTask(ctx, &pluginsv1.StopTaskRequest{TaskId: taskID, Timeout: durationpb.New(timeout), Signal: signal})
	return fromStatus(c.done, "stop task", err)
}

// DestroyTask implements Driver.
func (c *DriverClient) DestroyTask(ctx context.Context, taskID string, force bool) error {
	_, err := c.rpc.DestroyTask(ctx, &pluginsv1.DestroyTaskRequest{TaskId: taskID, Force: force})
	return fromStatus(c.done, "destroy task", err)
}

// InspectTask implements Driver.
func (c *DriverClient) InspectTask(ctx context.Context, taskID string) (*TaskStatus, error) {
	resp, err := c.rpc.InspectTask(ctx, &pluginsv1.InspectTaskRequest{TaskId: taskID})
	if err != nil {
		return nil, fromStatus(c.done, "inspect task", err)
	}
	return statusFromProto(resp.GetStatus()), nil
}

// TaskStats implements Driver.
func (c *DriverClient) TaskStats(ctx context.Context, taskID string) (*TaskUsage, error) {
	resp, err := c.rpc.TaskStats(ctx, &pluginsv1.TaskStatsRequest{TaskId: taskID})
	if err != nil {
		return nil, fromStatus(c.done, "task stats", err)
	}
	return usageFromProto(resp.GetUsage()), nil
}

// SignalTask implements Driver.
func (c *DriverClient) SignalTask(ctx context.Context, taskID string, sig string) error {
	_, err := c.rpc.SignalTask(ctx, &pluginsv1.SignalTaskRequest{TaskId: taskID, Signal: sig})
	return fromStatus(c.done, "signal task", err)
}

// RecoverTask implements Driver.
func (c *DriverClient) RecoverTask(ctx context.Context, handle *TaskHandle) error {
	_, err := c.rpc.RecoverTask(ctx, &pluginsv1.RecoverTaskRequest{Handle: handleToProto(handle)})
	return fromStatus(c.done, "recover task", err)
}
