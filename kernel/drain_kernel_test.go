package kernel_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestKernel_AgentDrain drives a drain through the loop and real etcd:
// frameworks see AGENT_DRAINING, the deadline revokes with "drained",
// the agent stays draining across a kernel restart, and undrain is seen.
func TestKernel_AgentDrain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	k, stop := e.startWith(t, kernel.Config{Tick: 20 * time.Millisecond})
	id := register(t, k, 4, 1<<30)
	a, err := k.Allocate(ctx, fwA, alloc(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	start := k.Revision()

	if _, err := k.AgentDrain(ctx, fwA, &pb.AgentDrainRequest{AgentId: id}); kernel.CodeOf(err) != kernel.PermissionDenied {
		t.Fatalf("framework drain: %v, want PermissionDenied", err)
	}
	if _, err := k.AgentDrain(ctx, ops, &pb.AgentDrainRequest{AgentId: "agent-77"}); kernel.CodeOf(err) != kernel.NotFound {
		t.Fatalf("unknown agent: %v, want NotFound", err)
	}
	resp, err := k.AgentDrain(ctx, ops, &pb.AgentDrainRequest{AgentId: id, Deadline: durationpb.New(200 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetAgent().GetDraining() || resp.GetAgent().GetDrainDeadline() == nil || resp.GetRevision() <= start {
		t.Fatalf("drain answered %v", resp)
	}
	// A new request stays pending while the only agent drains.
	b, err := k.Allocate(ctx, fwB, alloc(1, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if s := b.GetAllocations()[0].GetState(); s != pb.AllocationState_ALLOCATION_STATE_PENDING {
		t.Fatalf("allocation on a draining cluster: %v", s)
	}

	// fw-a (a framework) sees the drain, then its allocation revoked.
	evs := collect(t, k, fwA, &pb.WatchRequest{AfterRevision: start, Kinds: []pb.EventKind{
		pb.EventKind_EVENT_KIND_AGENT_DRAINING, pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED}}, 2)
	if evs[0].GetKind() != pb.EventKind_EVENT_KIND_AGENT_DRAINING || evs[0].GetAgent().GetId() != id {
		t.Fatalf("first event %v", evs[0])
	}
	if got := evs[1].GetAllocation(); got.GetId() != a.GetAllocations()[0].GetId() || got.GetRevokeReason() != kernel.DrainedReason {
		t.Fatalf("revoked %v, want %s with reason drained", got, a.GetAllocations()[0].GetId())
	}

	stop()
	k2, _ := e.startWith(t, kernel.Config{Tick: 20 * time.Millisecond})
	ags := k2.ListAgents(ctx, ops).GetAgents()
	if len(ags) != 1 || !ags[0].GetDraining() || ags[0].GetDrainDeadline() == nil {
		t.Fatalf("after restart: %v", ags)
	}
	before := k2.Revision()
	if _, err := k2.AgentDrain(ctx, ops, &pb.AgentDrainRequest{AgentId: id, Undrain: true}); err != nil {
		t.Fatal(err)
	}
	evs = collect(t, k2, fwB, &pb.WatchRequest{AfterRevision: before, Kinds: []pb.EventKind{
		pb.EventKind_EVENT_KIND_AGENT_UNDRAINED, pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED}}, 2)
	if evs[0].GetKind() != pb.EventKind_EVENT_KIND_AGENT_UNDRAINED || evs[0].GetAgent().GetDraining() {
		t.Fatalf("undrain event %v", evs[0])
	}
	if evs[1].GetAllocation().GetId() != b.GetAllocations()[0].GetId() {
		t.Fatalf("granted %v, want the pending one", evs[1].GetAllocation())
	}
	// Undrain again: a no-op success.
	if _, err := k2.AgentDrain(ctx, ops, &pb.AgentDrainRequest{AgentId: id, Undrain: true}); err != nil {
		t.Fatal(err)
	}
}
