package policies_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	pt "github.com/dcos-kernel/dcos/plugins/policies/internal/policytest"
	"github.com/dcos-kernel/dcos/plugins/wasm"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// cDRF is drf's algorithm written in C (internal/cdrf/drf.c, compiled by
// clang; see the file for the command): a non-Go guest of the same
// algorithm, to tell Go's wasm code from the ABI's cost in benchmarks.
const cDRF = "internal/cdrf/drf.wasm"

// TestCDRF_SameAsGo checks that the C drf decides exactly as the Go
// source on random clusters, so that benchmarking it against native drf
// compares one algorithm.
func TestCDRF_SameAsGo(t *testing.T) {
	mod, err := os.ReadFile(cDRF)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := wasm.NewHost(ctx, wasm.HostConfig{Deadline: testDeadline})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	p, err := h.LoadTrusted(ctx, "c-drf", mod)
	if err != nil {
		t.Fatal(err)
	}
	if p.Wants() != 0 {
		t.Fatalf("c-drf wants %b, want 0", p.Wants())
	}
	sizes := []pt.Size{
		{Agents: 1, Requests: 5, Roles: 1, Allocations: 2},
		{Agents: 7, Requests: 40, Roles: 2, Allocations: 10},
		{Agents: 50, Requests: 300, Roles: 3, Allocations: 120},
		{Agents: 200, Requests: 150, Roles: 4, Allocations: 400},
		{Agents: 30, Requests: 200, Roles: 3, Fill: 0.9},
	}
	for _, size := range sizes {
		for seed := uint64(1); seed <= 8; seed++ {
			t.Run(fmt.Sprintf("%dx%d/seed=%d", size.Agents, size.Requests, seed), func(t *testing.T) {
				b := pt.Random(seed, size)
				want := pt.KernelDecision(pt.Place(t, native["drf"], pt.Normalize(b)))
				s := pt.Snapshot(b)
				for range 2 { // the second call has its agents flagged unchanged
					got, err := p.Place(s)
					if err != nil {
						t.Fatal(err)
					}
					if diff := pt.DiffDecisions(got, want); diff != "" {
						t.Fatalf("C and Go drf differ: %s", diff)
					}
				}
			})
		}
	}
	t.Run("big", func(t *testing.T) {
		b := pt.Big(1)
		var d policy.Decision
		if err := native["drf"](pt.Normalize(b), &d); err != nil {
			t.Fatal(err)
		}
		got, err := p.Place(pt.Snapshot(b))
		if err != nil {
			t.Fatal(err)
		}
		if diff := pt.DiffDecisions(got, pt.KernelDecision(&d)); diff != "" {
			t.Fatalf("C and Go drf differ on the big batch: %s", diff)
		}
	})
}
