package policytest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

// Check validates d against b: what the kernel enforces (indices in range,
// no request placed twice, constraints honoured, no agent over-committed
// given the accepted revocations, no role taken past a capped dimension
// of its quota (its usage less its revoked allocations, plus the
// placements before; kernel.Judge's rule), a revocation only where the
// decision places a request of strictly higher priority on that agent,
// no allocation revoked twice) and what the built-in policies promise on top
// (every request is placed or has a verdict, and the verdict is Never
// exactly when no admitted agent's total fits the request). It returns
// every violation found, joined.
func Check(b *policy.Batch, d *policy.Decision) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	free := make([]policy.Resources, len(b.Agents))
	for i := range b.Agents {
		free[i] = b.Agents[i].Free
	}
	top := map[uint32]int32{}
	for _, p := range d.Placements {
		if int(p.Request) < len(b.Requests) && int(p.Agent) < len(b.Agents) {
			if pr, ok := top[p.Agent]; !ok || b.Requests[p.Request].Priority > pr {
				top[p.Agent] = b.Requests[p.Request].Priority
			}
		}
	}
	usage := make([]policy.Resources, len(b.Roles))
	for i := range b.Roles {
		usage[i] = b.Roles[i].Usage
	}
	revoked := map[uint32]bool{}
	for _, i := range d.Revocations {
		if int(i) >= len(b.Allocations) || revoked[i] {
			bad("revocation %d of %d allocations (or twice)", i, len(b.Allocations))
			continue
		}
		revoked[i] = true
		g := b.Allocations[i]
		if pr, ok := top[g.Agent]; !ok || pr <= g.Priority {
			bad("revocation %d (priority %d on agent %d) places nothing of higher priority there", i, g.Priority, g.Agent)
			continue
		}
		free[g.Agent] = free[g.Agent].Add(g.Resources)
		if int(g.Role) < len(usage) {
			usage[g.Role] = usage[g.Role].Sub(g.Resources)
		}
	}
	fate := make([]int, len(b.Requests)) // 0 none, 1 placed, 2 unplaced
	for _, p := range d.Placements {
		if int(p.Request) >= len(b.Requests) || int(p.Agent) >= len(b.Agents) {
			bad("placement %v out of range", p)
			continue
		}
		if fate[p.Request] != 0 {
			bad("request %d placed twice", p.Request)
			continue
		}
		fate[p.Request] = 1
		r, a := &b.Requests[p.Request], &b.Agents[p.Agent]
		if !r.Feasible(a) {
			bad("request %d placed on agent %d against its constraints", p.Request, p.Agent)
		}
		if !free[p.Agent].Fits(r.Resources) {
			bad("request %d (%v) placed on agent %d with %v free: over-committed", p.Request, r.Resources, p.Agent, free[p.Agent])
		}
		free[p.Agent] = free[p.Agent].Sub(r.Resources)
		if int(r.Role) < len(usage) {
			u, q := usage[r.Role].Add(r.Resources), b.Roles[r.Role].Quota
			if q.MilliCPU > 0 && u.MilliCPU > q.MilliCPU || q.Mem > 0 && u.Mem > q.Mem ||
				q.Disk > 0 && u.Disk > q.Disk || q.Ports > 0 && u.Ports > q.Ports {
				bad("request %d (%v) takes role %s to %v, past its quota %v", p.Request, r.Resources, b.Roles[r.Role].Name, u, q)
			}
			usage[r.Role] = u
		}
	}
	for _, u := range d.Unplaced {
		if int(u.Request) >= len(b.Requests) {
			bad("unplaced request %d out of range", u.Request)
			continue
		}
		if fate[u.Request] != 0 {
			bad("request %d unplaced and placed, or unplaced twice", u.Request)
			continue
		}
		fate[u.Request] = 2
		if never := Never(b, int(u.Request)); u.Verdict != policy.NotNow && u.Verdict != policy.Never {
			bad("request %d has verdict %d", u.Request, u.Verdict)
		} else if never != (u.Verdict == policy.Never) {
			bad("request %d has verdict %d, but never=%v", u.Request, u.Verdict, never)
		}
	}
	for i, f := range fate {
		if f == 0 {
			bad("request %d neither placed nor given a verdict", i)
		}
	}
	return errors.Join(errs...)
}

// Never reports whether no agent admitted by request r's constraints has
// total resources r fits in, by brute force.
func Never(b *policy.Batch, r int) bool {
	for i := range b.Agents {
		if b.Requests[r].Feasible(&b.Agents[i]) && b.Agents[i].Total.Fits(b.Requests[r].Resources) {
			return false
		}
	}
	return true
}

// Place runs f on b and returns the decision, failing t on an error.
func Place(t testing.TB, f policy.Func, b *policy.Batch) *policy.Decision {
	t.Helper()
	var d policy.Decision
	if err := f(b, &d); err != nil {
		t.Fatalf("policy: %v", err)
	}
	return &d
}

// Properties runs f on random clusters for a fixed set of seeds and checks
// that every decision passes Check, that f leaves the batch as it was, and
// that the same batch gives the same decision (on a fresh copy, too).
func Properties(t *testing.T, f policy.Func) {
	t.Helper()
	sizes := []Size{
		{Agents: 1, Requests: 5, Roles: 1, Allocations: 2},
		{Agents: 7, Requests: 40, Roles: 2, Allocations: 10},
		{Agents: 50, Requests: 300, Roles: 3, Allocations: 120},
		{Agents: 200, Requests: 150, Roles: 4, Allocations: 400},
	}
	for _, size := range sizes {
		for seed := uint64(1); seed <= 12; seed++ {
			t.Run(fmt.Sprintf("%dx%d/seed=%d", size.Agents, size.Requests, seed), func(t *testing.T) {
				b := Random(seed, size)
				orig := Clone(b)
				d := Place(t, f, b)
				if err := Check(b, d); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(b, orig) {
					t.Fatal("the policy modified its batch")
				}
				if d2 := Place(t, f, b); !reflect.DeepEqual(d, d2) {
					t.Fatalf("same batch, different decision:\n%+v\n%+v", d, d2)
				}
				if d3 := Place(t, f, Clone(b)); !reflect.DeepEqual(d, d3) {
					t.Fatalf("copy of the batch, different decision:\n%+v\n%+v", d, d3)
				}
			})
		}
	}
}

// Wire runs the registered policy on b natively through the module's
// codec (policy.Run), as the wasm module would, and decodes its answer.
func Wire(t testing.TB, b *policy.Batch) *policy.Decision {
	t.Helper()
	var e policy.Encoder
	var d policy.Decision
	if err := policy.DecodeDecision(policy.Run(e.EncodeBatch(b)), &d); err != nil {
		t.Fatalf("policy.Run: %v", err)
	}
	return &d
}

// SameDecision reports whether two decisions say the same, with nil and
// empty slices equal.
func SameDecision(a, b *policy.Decision) bool {
	return len(a.Placements) == len(b.Placements) && len(a.Revocations) == len(b.Revocations) && len(a.Unplaced) == len(b.Unplaced) &&
		(len(a.Placements) == 0 || reflect.DeepEqual(a.Placements, b.Placements)) &&
		(len(a.Revocations) == 0 || reflect.DeepEqual(a.Revocations, b.Revocations)) &&
		(len(a.Unplaced) == 0 || reflect.DeepEqual(a.Unplaced, b.Unplaced))
}
