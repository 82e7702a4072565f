package kernel_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestKernel_GangSurvivesRestart: a gang waiting on a real etcd store is
// still a gang after the kernel restarts, and starts whole, all its
// instances granted at one revision, once an agent with room joins; a bad
// min_count is refused naming the field.
func TestKernel_GangSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	k, stop := e.start(t)
	register(t, k, 2, 1<<30)
	req := &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}, Count: 4, Gang: &pb.Gang{}}
	resp, err := k.Allocate(ctx, fwA, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range resp.GetAllocations() {
		if a.GetState() != pb.AllocationState_ALLOCATION_STATE_PENDING || a.GetGangMin() != 4 {
			t.Fatalf("gang of 4 on 2 cpus: %s is %v with gang_min %d", a.GetId(), a.GetState(), a.GetGangMin())
		}
	}
	if why := resp.GetPendingReason(); !strings.HasPrefix(why, "gang of 4 (min 4): 2 fit now; insufficient cpus on 1 agent") {
		t.Fatalf("pending reason %q", why)
	}
	bad := &pb.AllocateRequest{Resources: req.GetResources(), Count: 4, Gang: &pb.Gang{MinCount: 5}}
	if _, err := k.Allocate(ctx, fwA, bad); kernel.CodeOf(err) != kernel.InvalidArgument || !strings.Contains(err.Error(), "gang.min_count") {
		t.Fatalf("min_count 5 of 4: %v", err)
	}
	stop()

	k2, _ := e.start(t)
	for _, a := range k2.ListAllocations(ctx, fwA, &pb.ListAllocationsRequest{}).GetAllocations() {
		if a.GetGangMin() != 4 || a.GetState() != pb.AllocationState_ALLOCATION_STATE_PENDING {
			t.Fatalf("after restart: %s is %v with gang_min %d", a.GetId(), a.GetState(), a.GetGangMin())
		}
	}
	from := k2.Revision()
	register(t, k2, 2, 1<<30)
	grants := collect(t, k2, ops, &pb.WatchRequest{AfterRevision: from, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED}}, 4)
	for _, ev := range grants {
		if ev.GetRevision() != grants[0].GetRevision() {
			t.Fatalf("gang granted over several revisions: %d and %d", grants[0].GetRevision(), ev.GetRevision())
		}
		if ev.GetAllocation().GetRequestId() != resp.GetAllocations()[0].GetRequestId() {
			t.Fatalf("granted %s, not of the gang", ev.GetAllocation().GetId())
		}
	}
}
