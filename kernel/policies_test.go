package kernel_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// byteLoader is a policy engine for kernel tests: the module bytes name a
// native behaviour. plugins/wasm is the real engine; these tests are about
// what the kernel does with any engine's policies.
type byteLoader struct{ loads []string }

type testPolicy struct {
	name string
	kernel.Policy
	fail *bool
}

func (p *testPolicy) Name() string { return p.name }
func (p *testPolicy) Place(s *kernel.Snapshot) (*kernel.Decision, error) {
	if p.fail != nil && *p.fail {
		return nil, errors.New("trap: unreachable")
	}
	return p.Policy.Place(s)
}
func (p *testPolicy) Close(context.Context) error { return nil }

// lastFit places each request on the last agent with room.
type lastFit struct{}

func (lastFit) Name() string { return "last-fit" }
func (lastFit) Place(s *kernel.Snapshot) (*kernel.Decision, error) {
	d := &kernel.Decision{}
	free := make([]kernel.Resources, len(s.Agents))
	for i, a := range s.Agents {
		free[i] = a.Free
	}
	for ri, r := range s.Requests {
		for ai := len(free) - 1; ai >= 0; ai-- {
			if free[ai].Fits(r.Resources) {
				free[ai] = free[ai].Sub(r.Resources)
				d.Placements = append(d.Placements, kernel.Placement{Request: ri, Agent: ai})
				break
			}
		}
	}
	return d, nil
}

// overcommit places every request on agent 0.
type overcommit struct{}

func (overcommit) Name() string { return "overcommit" }
func (overcommit) Place(s *kernel.Snapshot) (*kernel.Decision, error) {
	d := &kernel.Decision{}
	for i := range s.Requests {
		d.Placements = append(d.Placements, kernel.Placement{Request: i})
	}
	return d, nil
}

var failNow bool

func (l *byteLoader) Load(_ context.Context, name string, wasm []byte) (kernel.LoadedPolicy, error) {
	l.loads = append(l.loads, name)
	switch string(wasm) {
	case "last-fit":
		return &testPolicy{name: name, Policy: lastFit{}}, nil
	case "first-fit":
		return &testPolicy{name: name, Policy: kernel.FirstFit{}}, nil
	case "flaky":
		return &testPolicy{name: name, Policy: lastFit{}, fail: &failNow}, nil
	case "overcommit":
		return &testPolicy{name: name, Policy: overcommit{}}, nil
	}
	return nil, errors.New("missing export dcos_place")
}

func startWithLoader(t *testing.T, e *env, l *byteLoader) (*kernel.Kernel, func()) {
	t.Helper()
	k, err := kernel.New(context.Background(), kernel.Config{Store: e.store, HeartbeatTimeout: time.Hour,
		Loader: l, Builtins: map[string][]byte{"builtin-last": []byte("last-fit")}, DefaultPolicy: "builtin-last"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return k, stop
}

func agentOf(t *testing.T, k *kernel.Kernel, req *pb.AllocateRequest) string {
	t.Helper()
	r, err := k.Allocate(context.Background(), fwA, req)
	if err != nil {
		t.Fatal(err)
	}
	return r.GetAllocations()[0].GetAgentId()
}

func active(k *kernel.Kernel) string {
	for _, p := range k.PolicyList(context.Background(), ops).GetPolicies() {
		if p.GetActive() {
			return p.GetName()
		}
	}
	return ""
}

func TestKernel_PolicyLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	l := &byteLoader{}
	k, stop := startWithLoader(t, e, l)
	ctx := context.Background()
	register(t, k, 4, 1<<30)
	register(t, k, 4, 1<<30)
	small := alloc(0.1, 1<<20)
	if got := agentOf(t, k, small); got != "agent-2" || active(k) != "builtin-last" {
		t.Fatalf("default built-in: placed on %s, active %s", got, active(k))
	}
	if _, err := k.Allocate(ctx, fwA, alloc(100, 1)); err != nil { // stays pending: no agent has 100 cpus
		t.Fatal(err)
	}
	start := k.Revision()

	// Refused modules change nothing.
	for _, bad := range []struct{ name, wasm, want string }{
		{"x", "garbage", "missing export dcos_place"},
		{"x", "overcommit", "would refuse"},
		{"builtin-last", "first-fit", "built-in"},
		{"bad name!", "first-fit", "name"},
	} {
		_, err := k.PolicyLoad(ctx, ops, &pb.PolicyLoadRequest{Name: bad.name, Wasm: []byte(bad.wasm)})
		if kernel.CodeOf(err) != kernel.InvalidArgument || !strings.Contains(err.Error(), bad.want) {
			t.Fatalf("load %s/%s: %v, want InvalidArgument mentioning %q", bad.name, bad.wasm, err, bad.want)
		}
	}
	if active(k) != "builtin-last" || k.Revision() != start {
		t.Fatalf("a refused load changed something: active %s, revision %d→%d", active(k), start, k.Revision())
	}

	// Test shows the difference without changing anything.
	tr, err := k.PolicyTest(ctx, ops, &pb.PolicyTestRequest{Wasm: []byte("first-fit")})
	if err != nil || tr.GetPending() != 1 || tr.GetActivePolicy() != "builtin-last" || k.Revision() != start {
		t.Fatalf("test: %v %v", tr, err)
	}
	tr, err = k.PolicyTest(ctx, ops, &pb.PolicyTestRequest{Wasm: []byte("overcommit")})
	if err != nil || len(tr.GetRejected()) != 1 || len(tr.GetDiffs()) != 0 {
		t.Fatalf("test of an over-committing policy: %v %v", tr, err)
	}

	// Load swaps, with an event, and persists.
	lr, err := k.PolicyLoad(ctx, ops, &pb.PolicyLoadRequest{Name: "ff", Wasm: []byte("first-fit")})
	if err != nil || !lr.GetPolicy().GetActive() || lr.GetPolicy().GetSha256() == "" {
		t.Fatalf("load: %v %v", lr, err)
	}
	if got := agentOf(t, k, small); got != "agent-1" {
		t.Fatalf("after load placed on %s, want agent-1 (first-fit)", got)
	}
	evs := collect(t, k, ops, &pb.WatchRequest{AfterRevision: start, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_POLICY_SWAPPED}}, 1)
	if evs[0].GetPolicy().GetName() != "ff" || !strings.Contains(evs[0].GetReason(), "loaded by ops") {
		t.Fatalf("swap event %v", evs[0])
	}

	// A restarted kernel runs the loaded module, read back from the store.
	stop()
	k, _ = startWithLoader(t, e, l)
	if active(k) != "ff" || l.loads[len(l.loads)-1] != "ff" {
		t.Fatalf("after restart active %s, loads %v", active(k), l.loads)
	}
	if got := agentOf(t, k, small); got != "agent-1" {
		t.Fatalf("after restart placed on %s", got)
	}

	// Rollback returns to the built-in; use picks by name.
	if _, err := k.PolicyRollback(ctx, ops, &pb.PolicyRollbackRequest{}); err != nil || active(k) != "builtin-last" {
		t.Fatalf("rollback: %v, active %s", err, active(k))
	}
	if _, err := k.PolicyUse(ctx, ops, &pb.PolicyUseRequest{Name: "ff"}); err != nil || active(k) != "ff" {
		t.Fatalf("use: %v, active %s", err, active(k))
	}
	if _, err := k.PolicyUse(ctx, ops, &pb.PolicyUseRequest{Name: "nope"}); kernel.CodeOf(err) != kernel.NotFound {
		t.Fatalf("use of an unknown policy: %v", err)
	}
}

func TestKernel_PolicyFailureFallsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := startWithLoader(t, e, &byteLoader{})
	ctx := context.Background()
	register(t, k, 4, 1<<30)
	register(t, k, 4, 1<<30)
	agentOf(t, k, alloc(0.1, 1<<20)) // builtin-last completes a cycle: the last good policy
	if _, err := k.PolicyLoad(ctx, ops, &pb.PolicyLoadRequest{Name: "flaky", Wasm: []byte("flaky")}); err != nil {
		t.Fatal(err)
	}
	start := k.Revision()
	failNow = true
	t.Cleanup(func() { failNow = false })
	// The cycle fails on flaky, falls back to builtin-last, and still places.
	if got := agentOf(t, k, alloc(0.1, 1<<20)); got != "agent-2" {
		t.Fatalf("placed on %q after the policy failed", got)
	}
	evs := collect(t, k, ops, &pb.WatchRequest{AfterRevision: start, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_POLICY_FAILED}}, 1)
	if !strings.Contains(evs[0].GetReason(), "trap: unreachable") || !strings.Contains(evs[0].GetReason(), "falling back to builtin-last") {
		t.Fatalf("failure event: %q", evs[0].GetReason())
	}
	if active(k) != "builtin-last" {
		t.Fatalf("active after fallback: %s", active(k))
	}
}

// TestKernel_FailedPolicyLoadChangesNothing: the policy runtime changes
// with the table — a PolicyLoad whose commit fails leaves the module the
// name had compiled and running, not the refused one.
func TestKernel_FailedPolicyLoadChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	l := &byteLoader{}
	k, _ := startWithLoader(t, e, l)
	ctx := context.Background()
	register(t, k, 4, 1<<30)
	register(t, k, 4, 1<<30)
	small := alloc(0.1, 1<<20)
	first, err := k.PolicyLoad(ctx, ops, &pb.PolicyLoadRequest{Name: "mine", Wasm: []byte("first-fit")})
	if err != nil {
		t.Fatal(err)
	}
	if got := agentOf(t, k, small); got != "agent-1" {
		t.Fatalf("mine (first-fit) placed on %s, want agent-1", got)
	}
	e.store.fail.Store(true)
	if _, err := k.PolicyLoad(ctx, ops, &pb.PolicyLoadRequest{Name: "mine", Wasm: []byte("last-fit")}); kernel.CodeOf(err) != kernel.Unavailable {
		t.Fatalf("PolicyLoad with a failing commit: %v, want Unavailable", err)
	}
	for _, p := range k.PolicyList(ctx, ops).GetPolicies() {
		if p.GetName() == "mine" && (p.GetSha256() != first.GetPolicy().GetSha256() || !p.GetActive()) {
			t.Errorf("after the failed load: mine = %v, want active with sha %s", p, first.GetPolicy().GetSha256())
		}
	}
	for i := range 3 {
		if got := agentOf(t, k, small); got != "agent-1" {
			t.Fatalf("allocation %d after the failed load placed on %s: the refused module (last-fit) runs", i, got)
		}
	}
}
