package framework

// One method per syscall of the ABI (syscalls/v1), in the syscall table's
// order. Each takes and returns the ABI's messages, fails over and retries
// as Client says, and never mutates its request (a Fenced client clones
// it). Watch is in watch.go.

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

type kc = syscallsv1connect.KernelClient

// Allocate calls the Allocate syscall: asks for resources (count instances of one size). Retried after Unavailable, it may allocate twice: label allocations and reconcile.
func (c *Client) Allocate(ctx context.Context, r *pb.AllocateRequest) (*pb.AllocateResponse, error) {
	r = fenced(c, r, func(m *pb.AllocateRequest, f *pb.Fence) { m.Fence = f })
	return call(ctx, c, "Allocate", r, func(k kc) func(context.Context, *connect.Request[pb.AllocateRequest]) (*connect.Response[pb.AllocateResponse], error) {
		return k.Allocate
	})
}

// Launch calls the Launch syscall: starts a task in a granted allocation. Retried after Unavailable, it may launch twice: label tasks and reconcile.
func (c *Client) Launch(ctx context.Context, r *pb.LaunchRequest) (*pb.LaunchResponse, error) {
	r = fenced(c, r, func(m *pb.LaunchRequest, f *pb.Fence) { m.Fence = f })
	return call(ctx, c, "Launch", r, func(k kc) func(context.Context, *connect.Request[pb.LaunchRequest]) (*connect.Response[pb.LaunchResponse], error) {
		return k.Launch
	})
}

// Revoke calls the Revoke syscall: takes back an allocation or a task; idempotent.
func (c *Client) Revoke(ctx context.Context, r *pb.RevokeRequest) (*pb.RevokeResponse, error) {
	r = fenced(c, r, func(m *pb.RevokeRequest, f *pb.Fence) { m.Fence = f })
	return call(ctx, c, "Revoke", r, func(k kc) func(context.Context, *connect.Request[pb.RevokeRequest]) (*connect.Response[pb.RevokeResponse], error) {
		return k.Revoke
	})
}

// KeepAlive calls the KeepAlive syscall: renews allocation leases.
func (c *Client) KeepAlive(ctx context.Context, r *pb.KeepAliveRequest) (*pb.KeepAliveResponse, error) {
	return call(ctx, c, "KeepAlive", r, func(k kc) func(context.Context, *connect.Request[pb.KeepAliveRequest]) (*connect.Response[pb.KeepAliveResponse], error) {
		return k.KeepAlive
	})
}

// RegisterAgent calls the RegisterAgent syscall: (agents only) joins a node.
func (c *Client) RegisterAgent(ctx context.Context, r *pb.RegisterAgentRequest) (*pb.RegisterAgentResponse, error) {
	return call(ctx, c, "RegisterAgent", r, func(k kc) func(context.Context, *connect.Request[pb.RegisterAgentRequest]) (*connect.Response[pb.RegisterAgentResponse], error) {
		return k.RegisterAgent
	})
}

// Heartbeat calls the Heartbeat syscall: (agents only) says the agent is alive.
func (c *Client) Heartbeat(ctx context.Context, r *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	return call(ctx, c, "Heartbeat", r, func(k kc) func(context.Context, *connect.Request[pb.HeartbeatRequest]) (*connect.Response[pb.HeartbeatResponse], error) {
		return k.Heartbeat
	})
}

// ReportTaskStatus calls the ReportTaskStatus syscall: (agents only) reports a task's state.
func (c *Client) ReportTaskStatus(ctx context.Context, r *pb.ReportTaskStatusRequest) (*pb.ReportTaskStatusResponse, error) {
	return call(ctx, c, "ReportTaskStatus", r, func(k kc) func(context.Context, *connect.Request[pb.ReportTaskStatusRequest]) (*connect.Response[pb.ReportTaskStatusResponse], error) {
		return k.ReportTaskStatus
	})
}

// ListAgents calls the ListAgents syscall: lists the agents.
func (c *Client) ListAgents(ctx context.Context, r *pb.ListAgentsRequest) (*pb.ListAgentsResponse, error) {
	return call(ctx, c, "ListAgents", r, func(k kc) func(context.Context, *connect.Request[pb.ListAgentsRequest]) (*connect.Response[pb.ListAgentsResponse], error) {
		return k.ListAgents
	})
}

// ListAllocations calls the ListAllocations syscall: lists the live allocations the caller may see (a framework: its own).
func (c *Client) ListAllocations(ctx context.Context, r *pb.ListAllocationsRequest) (*pb.ListAllocationsResponse, error) {
	return call(ctx, c, "ListAllocations", r, func(k kc) func(context.Context, *connect.Request[pb.ListAllocationsRequest]) (*connect.Response[pb.ListAllocationsResponse], error) {
		return k.ListAllocations
	})
}

// ListTasks calls the ListTasks syscall: lists the tasks the caller may see.
func (c *Client) ListTasks(ctx context.Context, r *pb.ListTasksRequest) (*pb.ListTasksResponse, error) {
	return call(ctx, c, "ListTasks", r, func(k kc) func(context.Context, *connect.Request[pb.ListTasksRequest]) (*connect.Response[pb.ListTasksResponse], error) {
		return k.ListTasks
	})
}

// PolicyLoad calls the PolicyLoad syscall: (operators only) loads and activates a policy.
func (c *Client) PolicyLoad(ctx context.Context, r *pb.PolicyLoadRequest) (*pb.PolicyLoadResponse, error) {
	return call(ctx, c, "PolicyLoad", r, func(k kc) func(context.Context, *connect.Request[pb.PolicyLoadRequest]) (*connect.Response[pb.PolicyLoadResponse], error) {
		return k.PolicyLoad
	})
}

// PolicyTest calls the PolicyTest syscall: (operators only) dry-runs a policy.
func (c *Client) PolicyTest(ctx context.Context, r *pb.PolicyTestRequest) (*pb.PolicyTestResponse, error) {
	return call(ctx, c, "PolicyTest", r, func(k kc) func(context.Context, *connect.Request[pb.PolicyTestRequest]) (*connect.Response[pb.PolicyTestResponse], error) {
		return k.PolicyTest
	})
}

// PolicyList calls the PolicyList syscall: lists the policies.
func (c *Client) PolicyList(ctx context.Context, r *pb.PolicyListRequest) (*pb.PolicyListResponse, error) {
	return call(ctx, c, "PolicyList", r, func(k kc) func(context.Context, *connect.Request[pb.PolicyListRequest]) (*connect.Response[pb.PolicyListResponse], error) {
		return k.PolicyList
	})
}

// PolicyUse calls the PolicyUse syscall: (operators only) activates a loaded policy.
func (c *Client) PolicyUse(ctx context.Context, r *pb.PolicyUseRequest) (*pb.PolicyUseResponse, error) {
	return call(ctx, c, "PolicyUse", r, func(k kc) func(context.Context, *connect.Request[pb.PolicyUseRequest]) (*connect.Response[pb.PolicyUseResponse], error) {
		return k.PolicyUse
	})
}

// PolicyRollback calls the PolicyRollback syscall: (operators only) re-activates the previous policy.
func (c *Client) PolicyRollback(ctx context.Context, r *pb.PolicyRollbackRequest) (*pb.PolicyRollbackResponse, error) {
	return call(ctx, c, "PolicyRollback", r, func(k kc) func(context.Context, *connect.Request[pb.PolicyRollbackRequest]) (*connect.Response[pb.PolicyRollbackResponse], error) {
		return k.PolicyRollback
	})
}

// ListVolumes calls the ListVolumes syscall: lists persistent volumes.
func (c *Client) ListVolumes(ctx context.Context, r *pb.ListVolumesRequest) (*pb.ListVolumesResponse, error) {
	return call(ctx, c, "ListVolumes", r, func(k kc) func(context.Context, *connect.Request[pb.ListVolumesRequest]) (*connect.Response[pb.ListVolumesResponse], error) {
		return k.ListVolumes
	})
}

// DestroyVolume calls the DestroyVolume syscall: deletes a persistent volume; idempotent.
func (c *Client) DestroyVolume(ctx context.Context, r *pb.DestroyVolumeRequest) (*pb.DestroyVolumeResponse, error) {
	return call(ctx, c, "DestroyVolume", r, func(k kc) func(context.Context, *connect.Request[pb.DestroyVolumeRequest]) (*connect.Response[pb.DestroyVolumeResponse], error) {
		return k.DestroyVolume
	})
}

// Campaign calls the Campaign syscall: asks to lead (or renews leadership of) an election; see Elector.
func (c *Client) Campaign(ctx context.Context, r *pb.CampaignRequest) (*pb.CampaignResponse, error) {
	return call(ctx, c, "Campaign", r, func(k kc) func(context.Context, *connect.Request[pb.CampaignRequest]) (*connect.Response[pb.CampaignResponse], error) {
		return k.Campaign
	})
}

// Resign calls the Resign syscall: gives up leadership of an epoch; idempotent.
func (c *Client) Resign(ctx context.Context, r *pb.ResignRequest) (*pb.ResignResponse, error) {
	return call(ctx, c, "Resign", r, func(k kc) func(context.Context, *connect.Request[pb.ResignRequest]) (*connect.Response[pb.ResignResponse], error) {
		return k.Resign
	})
}

// Leader calls the Leader syscall: returns an election's holder and epoch.
func (c *Client) Leader(ctx context.Context, r *pb.LeaderRequest) (*pb.LeaderResponse, error) {
	return call(ctx, c, "Leader", r, func(k kc) func(context.Context, *connect.Request[pb.LeaderRequest]) (*connect.Response[pb.LeaderResponse], error) {
		return k.Leader
	})
}

// StateGet calls the StateGet syscall: reads one key of the caller's state (NotFound when missing).
func (c *Client) StateGet(ctx context.Context, r *pb.StateGetRequest) (*pb.StateGetResponse, error) {
	return call(ctx, c, "StateGet", r, func(k kc) func(context.Context, *connect.Request[pb.StateGetRequest]) (*connect.Response[pb.StateGetResponse], error) {
		return k.StateGet
	})
}

// StatePut calls the StatePut syscall: writes a key, optionally compare-and-swap (Aborted on a mismatch).
func (c *Client) StatePut(ctx context.Context, r *pb.StatePutRequest) (*pb.StatePutResponse, error) {
	r = fenced(c, r, func(m *pb.StatePutRequest, f *pb.Fence) { m.Fence = f })
	return call(ctx, c, "StatePut", r, func(k kc) func(context.Context, *connect.Request[pb.StatePutRequest]) (*connect.Response[pb.StatePutResponse], error) {
		return k.StatePut
	})
}

// StateDelete calls the StateDelete syscall: deletes a key (same conditions as StatePut).
func (c *Client) StateDelete(ctx context.Context, r *pb.StateDeleteRequest) (*pb.StateDeleteResponse, error) {
	r = fenced(c, r, func(m *pb.StateDeleteRequest, f *pb.Fence) { m.Fence = f })
	return call(ctx, c, "StateDelete", r, func(k kc) func(context.Context, *connect.Request[pb.StateDeleteRequest]) (*connect.Response[pb.StateDeleteResponse], error) {
		return k.StateDelete
	})
}

// StateList calls the StateList syscall: lists the keys under a prefix, in key order.
func (c *Client) StateList(ctx context.Context, r *pb.StateListRequest) (*pb.StateListResponse, error) {
	return call(ctx, c, "StateList", r, func(k kc) func(context.Context, *connect.Request[pb.StateListRequest]) (*connect.Response[pb.StateListResponse], error) {
		return k.StateList
	})
}

// LaunchBatch calls the LaunchBatch syscall: starts up to 1,000 tasks in
// one call and one commit, each item checked as Launch; the results are
// per item, in order (an item's failure is its result's code, not the
// call's error). A fenced client fences every item. Retried after
// Unavailable, it may launch twice: label tasks and reconcile.
func (c *Client) LaunchBatch(ctx context.Context, r *pb.LaunchBatchRequest) (*pb.LaunchBatchResponse, error) {
	r = fenced(c, r, func(m *pb.LaunchBatchRequest, f *pb.Fence) {
		for _, l := range m.GetLaunches() {
			l.Fence = proto.Clone(f).(*pb.Fence)
		}
	})
	return call(ctx, c, "LaunchBatch", r, func(k kc) func(context.Context, *connect.Request[pb.LaunchBatchRequest]) (*connect.Response[pb.LaunchBatchResponse], error) {
		return k.LaunchBatch
	})
}

// ReportTaskStatusBatch calls the ReportTaskStatusBatch syscall: (agents
// only) applies up to 1,000 task status reports, in order, in one commit;
// the results are per item.
func (c *Client) ReportTaskStatusBatch(ctx context.Context, r *pb.ReportTaskStatusBatchRequest) (*pb.ReportTaskStatusBatchResponse, error) {
	return call(ctx, c, "ReportTaskStatusBatch", r, func(k kc) func(context.Context, *connect.Request[pb.ReportTaskStatusBatchRequest]) (*connect.Response[pb.ReportTaskStatusBatchResponse], error) {
		return k.ReportTaskStatusBatch
	})
}
