package kernel_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestKernel_PendingLimit: a framework's 30,001st pending allocation with
// the limit set to 30,000 is ResourceExhausted naming the limit; other
// roles, other frameworks and operators are not affected; one bulk revoke
// frees all of them, after which the framework may allocate again.
func TestKernel_PendingLimit(t *testing.T) {
	const limit = 30_000
	e := newEnv(t)
	k, _ := e.startWith(t, kernel.Config{MaxPending: limit, RoleMaxPending: map[string]int{"small": 2}})
	ctx := context.Background()
	big := func(n int32) *pb.AllocateRequest { // no agents: stays pending
		r := alloc(0.1, 1<<20)
		r.Count = n
		return r
	}
	for i := 0; i < limit/kernel.MaxCount; i++ {
		if _, err := k.Allocate(ctx, fwA, big(kernel.MaxCount)); err != nil {
			t.Fatalf("allocate batch %d: %v", i, err)
		}
	}
	_, err := k.Allocate(ctx, fwA, big(1))
	if kernel.CodeOf(err) != kernel.ResourceExhausted || !strings.Contains(err.Error(), "the limit is 30000") {
		t.Fatalf("allocation %d: got %v (%v), want ResourceExhausted naming the limit", limit+1, kernel.CodeOf(err), err)
	}
	if got := len(k.ListAllocations(ctx, fwA, &pb.ListAllocationsRequest{}).GetAllocations()); got != limit {
		t.Fatalf("a refused Allocate changed the table: %d allocations, want %d", got, limit)
	}
	// Another framework, and an operator, still allocate.
	for _, p := range []kernel.Principal{fwB, ops} {
		if _, err := k.Allocate(ctx, p, big(1)); err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
	}
	// A per-role cap applies to that role only.
	small := big(2)
	small.Role = "small"
	if _, err := k.Allocate(ctx, fwB, small); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Allocate(ctx, fwB, small); kernel.CodeOf(err) != kernel.ResourceExhausted {
		t.Fatalf("role small over its cap of 2: got %v", err)
	}

	// fw-a cannot bulk-revoke fw-b's; its own bulk revoke frees all 30,000.
	if _, err := k.Revoke(ctx, fwA, &pb.RevokeRequest{All: true, Owner: "fw-b"}); kernel.CodeOf(err) != kernel.PermissionDenied {
		t.Fatalf("fw-a revoking fw-b's allocations: got %v, want PermissionDenied", err)
	}
	res, err := k.Revoke(ctx, fwA, &pb.RevokeRequest{All: true, Pending: true, Reason: "cleanup"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GetRevokedIds()) != limit {
		t.Fatalf("bulk revoke took back %d allocations, want %d", len(res.GetRevokedIds()), limit)
	}
	if got := len(k.ListAllocations(ctx, fwA, &pb.ListAllocationsRequest{}).GetAllocations()); got != 0 {
		t.Fatalf("%d of fw-a's allocations left after the bulk revoke", got)
	}
	if got := len(k.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations()); got != 4 {
		t.Fatalf("others' allocations: %d left, want 4 (fw-b's three and the operator's)", got)
	}
	if _, err := k.Allocate(ctx, fwA, big(1)); err != nil {
		t.Fatalf("allocate after the bulk revoke: %v", err)
	}
}

// TestKernel_PendingLimitRestored: the pending counts are rebuilt from the
// store when a kernel starts.
func TestKernel_PendingLimitRestored(t *testing.T) {
	e := newEnv(t)
	cfg := kernel.Config{MaxPending: 3}
	k, stop := e.startWith(t, cfg)
	ctx := context.Background()
	r := alloc(0.1, 1<<20)
	r.Count = 3
	if _, err := k.Allocate(ctx, fwA, r); err != nil {
		t.Fatal(err)
	}
	stop()
	k, _ = e.startWith(t, cfg)
	if _, err := k.Allocate(ctx, fwA, alloc(0.1, 1<<20)); kernel.CodeOf(err) != kernel.ResourceExhausted {
		t.Fatalf("after a restart: got %v, want ResourceExhausted", err)
	}
}

func TestKernel_RevokeAllValidation(t *testing.T) {
	e := newEnv(t)
	k, _ := e.start(t)
	ctx := context.Background()
	for name, tt := range map[string]struct {
		req   *pb.RevokeRequest
		field string
	}{
		"id and all":        {&pb.RevokeRequest{Id: "a-1", All: true}, "id:"},
		"role without all":  {&pb.RevokeRequest{Id: "a-1", Role: "web"}, "all:"},
		"owner without all": {&pb.RevokeRequest{Owner: "x"}, "all:"},
		"bad role":          {&pb.RevokeRequest{All: true, Role: "no spaces"}, "role:"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := k.Revoke(ctx, ops, tt.req)
			if kernel.CodeOf(err) != kernel.InvalidArgument || !strings.HasPrefix(err.Error(), tt.field) {
				t.Fatalf("got %v, want InvalidArgument naming %s", err, tt.field)
			}
		})
	}
	// Nothing to revoke is not an error.
	res, err := k.Revoke(ctx, fwA, &pb.RevokeRequest{All: true})
	if err != nil || len(res.GetRevokedIds()) != 0 {
		t.Fatalf("empty bulk revoke: %v, %v", res, err)
	}
}
