package api_test

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/kclient"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestServer_Batches: LaunchBatch and ReportTaskStatusBatch through the
// front door: allowed to the roles of Launch and ReportTaskStatus only,
// per-item results over the wire, the batch bounds as InvalidArgument.
func TestServer_Batches(t *testing.T) {
	t.Parallel()
	url, _ := serve(t)
	ctx := context.Background()
	fw, ag := kclient.New(url, "framework-a-token-0123456"), kclient.New(url, "agent-token-0123456789abc")

	if _, err := ag.LaunchBatch(ctx, connect.NewRequest(&pb.LaunchBatchRequest{Launches: []*pb.LaunchRequest{{AllocationId: "a-1", Command: "x"}}})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("an agent's LaunchBatch: %v, want PermissionDenied", err)
	}
	if _, err := fw.ReportTaskStatusBatch(ctx, connect.NewRequest(&pb.ReportTaskStatusBatchRequest{Reports: []*pb.ReportTaskStatusRequest{{TaskId: "t-1", AgentId: "g-1", State: pb.TaskState_TASK_STATE_RUNNING}}})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("a framework's ReportTaskStatusBatch: %v, want PermissionDenied", err)
	}
	if _, err := fw.LaunchBatch(ctx, connect.NewRequest(&pb.LaunchBatchRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "launches") {
		t.Errorf("an empty LaunchBatch: %v, want InvalidArgument naming launches", err)
	}

	reg, err := ag.RegisterAgent(ctx, connect.NewRequest(&pb.RegisterAgentRequest{Hostname: "h", Resources: &pb.Resources{Cpus: 2, MemBytes: 1 << 30}}))
	if err != nil {
		t.Fatal(err)
	}
	agent := reg.Msg.GetAgentId()
	al, err := fw.Allocate(ctx, connect.NewRequest(&pb.AllocateRequest{Count: 2, Resources: &pb.Resources{Cpus: 0.5, MemBytes: 1 << 20}}))
	if err != nil {
		t.Fatal(err)
	}
	var launches []*pb.LaunchRequest
	for _, a := range al.Msg.GetAllocations() {
		launches = append(launches, &pb.LaunchRequest{AllocationId: a.GetId(), Command: "true"})
	}
	launches = append(launches, &pb.LaunchRequest{AllocationId: "a-404", Command: "true"})
	lb, err := fw.LaunchBatch(ctx, connect.NewRequest(&pb.LaunchBatchRequest{Launches: launches}))
	if err != nil {
		t.Fatal(err)
	}
	res := lb.Msg.GetResults()
	if len(res) != 3 || res[0].GetCode() != "ok" || res[1].GetCode() != "ok" || res[2].GetCode() != "not_found" || !strings.HasPrefix(res[2].GetMessage(), "launches[2].allocation_id: ") {
		t.Fatalf("LaunchBatch results %v", res)
	}
	var reports []*pb.ReportTaskStatusRequest
	for _, r := range res[:2] {
		for _, s := range []pb.TaskState{pb.TaskState_TASK_STATE_STARTING, pb.TaskState_TASK_STATE_RUNNING, pb.TaskState_TASK_STATE_FINISHED} {
			reports = append(reports, &pb.ReportTaskStatusRequest{TaskId: r.GetTask().GetId(), AgentId: agent, State: s})
		}
	}
	rb, err := ag.ReportTaskStatusBatch(ctx, connect.NewRequest(&pb.ReportTaskStatusBatchRequest{Reports: reports}))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rb.Msg.GetResults() {
		if r.GetCode() != "ok" {
			t.Errorf("report %d: %v", i, r)
		}
	}
	if rb.Msg.GetRevision() <= lb.Msg.GetRevision() {
		t.Errorf("reports at revision %d, not after the launches' %d", rb.Msg.GetRevision(), lb.Msg.GetRevision())
	}
	ts, err := fw.ListTasks(ctx, connect.NewRequest(&pb.ListTasksRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(ts.Msg.GetTasks()) != 2 {
		t.Errorf("ListTasks: %d tasks, want the 2 launched", len(ts.Msg.GetTasks()))
	}
	for _, task := range ts.Msg.GetTasks() {
		if task.GetState() != pb.TaskState_TASK_STATE_FINISHED {
			t.Errorf("task %s is %v, want FINISHED", task.GetId(), task.GetState())
		}
	}
}
