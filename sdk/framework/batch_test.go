package framework

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestClient_Batches: LaunchBatch launches through the SDK with a
// result per item; ReportTaskStatusBatch applies an agent's reports; a
// Fenced client fences every item of a LaunchBatch without mutating the
// caller's request, and a stale fence refuses every item.
func TestClient_Batches(t *testing.T) {
	t.Parallel()
	k := startKernel(t, nil)
	ctx := testCtx(t)
	agent, agentID := k.registerAgent(t)
	c := k.client(t, fwToken)
	al, err := c.Allocate(ctx, &pb.AllocateRequest{Count: 3, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	req := &pb.LaunchBatchRequest{}
	for _, a := range al.GetAllocations() {
		req.Launches = append(req.Launches, &pb.LaunchRequest{AllocationId: a.GetId(), Command: "true"})
	}
	first := &pb.LaunchBatchRequest{Launches: req.Launches[:2]}
	lb, err := c.LaunchBatch(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	var reports []*pb.ReportTaskStatusRequest
	for i, r := range lb.GetResults() {
		if r.GetCode() != "ok" {
			t.Fatalf("results[%d] = %v", i, r)
		}
		reports = append(reports, &pb.ReportTaskStatusRequest{TaskId: r.GetTask().GetId(), AgentId: agentID, State: pb.TaskState_TASK_STATE_RUNNING})
	}
	rb, err := agent.ReportTaskStatusBatch(ctx, &pb.ReportTaskStatusBatchRequest{Reports: reports})
	if err != nil || len(rb.GetResults()) != 2 || rb.GetResults()[0].GetCode() != "ok" || rb.GetResults()[1].GetCode() != "ok" {
		t.Fatalf("ReportTaskStatusBatch: %v, %v", rb, err)
	}

	f := c.Fenced(&pb.Fence{Election: "x", Epoch: 3})
	last := &pb.LaunchBatchRequest{Launches: req.Launches[2:]}
	orig := proto.Clone(last)
	got := fenced(f, last, func(m *pb.LaunchBatchRequest, fe *pb.Fence) {
		for _, l := range m.GetLaunches() {
			l.Fence = fe
		}
	})
	if got.GetLaunches()[0].GetFence().GetEpoch() != 3 {
		t.Fatalf("fenced batch %v", got)
	}
	fb, err := f.LaunchBatch(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(last, orig) {
		t.Fatalf("Fenced mutated the request: %v", last)
	}
	if r := fb.GetResults()[0]; r.GetCode() != "failed_precondition" || !strings.HasPrefix(r.GetMessage(), "launches[0].fence: ") {
		t.Fatalf("a launch fenced on an election that never was: %v", r)
	}
}
