package kernel_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/plugins/policies"
	"github.com/dcos-kernel/dcos/plugins/wasm"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// These tests run real WebAssembly policies (plugins/wasm on wazero, the
// built-in modules of plugins/policies and plugins/wasm/testdata) under
// the kernel: its validation of a deliberately wrong policy, and the
// built-ins end to end on an embedded etcd store.

// hostLoader is the kernel's PolicyLoader over a wasm.Host, as cmd/dcosd
// wires it (internal/daemon): the built-in modules, byte for byte under
// their own name, load trusted (no per-loop deadline checks); anything
// else loads interruptible.
type hostLoader struct {
	h       *wasm.Host
	builtin map[string][]byte
}

func (l hostLoader) Load(ctx context.Context, name string, mod []byte) (kernel.LoadedPolicy, error) {
	load := l.h.Load
	if shipped, ok := l.builtin[name]; ok && bytes.Equal(shipped, mod) {
		load = l.h.LoadTrusted
	}
	p, err := load(ctx, name, mod)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return p, nil
}

// newWasmHost is a real wazero host with its own compilation cache. Its
// deadline is generous: the race detector and a shared machine slow the
// host side, and the deadline is not under test here.
func newWasmHost(t *testing.T) *wasm.Host {
	t.Helper()
	h, err := wasm.NewHost(context.Background(), wasm.HostConfig{CacheDir: t.TempDir(), Deadline: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../plugins/wasm/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// builtinModules is Config.Builtins as cmd/dcosd fills it.
func builtinModules() map[string][]byte {
	m := map[string][]byte{}
	for _, n := range policies.Names() {
		m[n], _ = policies.Builtin(n)
	}
	return m
}

// startWasm runs a kernel on e's store with a wasm host as its loader,
// the built-in modules and def as the default policy.
func startWasm(t *testing.T, e *env, h *wasm.Host, def string) *kernel.Kernel {
	t.Helper()
	mods := builtinModules()
	k, err := kernel.New(context.Background(), kernel.Config{Store: e.store, HeartbeatTimeout: time.Hour,
		Loader: hostLoader{h, mods}, Builtins: mods, DefaultPolicy: def})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { k.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return k
}

// randomSnapshot is a small cluster for seed: 0–5 agents (zone a–c, some
// unlabelled), granted allocations of mixed priorities, and 1–30 pending
// requests of mixed priorities (highest first, as the kernel orders them),
// some constrained by zone.
func randomSnapshot(seed uint64) *kernel.Snapshot {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	s := &kernel.Snapshot{Seed: seed}
	shapes := []kernel.Resources{{MilliCPU: 2000, Mem: 4 << 30}, {MilliCPU: 4000, Mem: 8 << 30}, {MilliCPU: 8000, Mem: 16 << 30}}
	zones := []string{"a", "b", "c"}
	for i := range rng.IntN(6) {
		a := kernel.AgentInfo{ID: fmt.Sprintf("agent-%d", i+1), Total: shapes[rng.IntN(len(shapes))]}
		if rng.IntN(4) > 0 {
			a.Labels = map[string]string{"zone": zones[rng.IntN(len(zones))]}
		}
		a.Free = a.Total
		s.Agents = append(s.Agents, a)
	}
	roles := []string{"", "batch", "web"}
	prios := []int32{-5, 0, 3, 10, 20}
	for i := range rng.IntN(12) {
		if len(s.Agents) == 0 {
			break
		}
		ai := rng.IntN(len(s.Agents))
		r := kernel.Resources{MilliCPU: int64(500 * (1 + rng.IntN(4))), Mem: int64(1+rng.IntN(4)) << 30}
		if !s.Agents[ai].Free.Fits(r) {
			continue
		}
		s.Agents[ai].Free = s.Agents[ai].Free.Sub(r)
		s.Allocations = append(s.Allocations, kernel.Granted{ID: fmt.Sprintf("g-%d", i), Agent: ai, Owner: "fw",
			Role: roles[rng.IntN(len(roles))], Priority: prios[rng.IntN(len(prios))], Resources: r})
	}
	for i := range 1 + rng.IntN(30) {
		r := kernel.Request{ID: fmt.Sprintf("a-%d", i), RequestID: fmt.Sprintf("r-%d", i/3), Owner: "fw",
			Role: roles[rng.IntN(len(roles))], Priority: prios[rng.IntN(len(prios))],
			Resources: kernel.Resources{MilliCPU: int64(250 * (1 + rng.IntN(12))), Mem: int64(256*(1+rng.IntN(16))) << 20}}
		switch rng.IntN(5) {
		case 0:
			r.Constraints = []*pb.Constraint{{Op: pb.Constraint_OP_EQUALS, Label: "zone", Values: []string{zones[rng.IntN(len(zones))]}}}
		case 1:
			r.Constraints = []*pb.Constraint{{Op: pb.Constraint_OP_NOT_EQUALS, Label: "zone", Values: []string{"b"}}}
		case 2:
			r.Constraints = []*pb.Constraint{{Op: pb.Constraint_OP_IN, Label: "zone", Values: []string{"a", "c"}}}
		}
		s.Requests = append(s.Requests, r)
	}
	slices.SortStableFunc(s.Requests, func(x, y kernel.Request) int { return int(y.Priority) - int(x.Priority) })
	names := map[string]bool{}
	for _, r := range s.Requests {
		names[r.Role] = true
	}
	for _, g := range s.Allocations {
		names[g.Role] = true
	}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range names {
			if n != "" && !yield(n) {
				return
			}
		}
	}) {
		s.Roles = append(s.Roles, kernel.RoleInfo{Name: n, Weight: 1})
	}
	return s
}

// wantJudgement is the rule of docs/policy-abi.md, written out
// independently of kernel.Judge: a revocation is accepted when the
// decision places a request of strictly higher priority on the
// allocation's agent; then each placement, in order, is accepted when it
// names a request not yet placed and an agent whose labels meet the
// request's constraints and whose free resources (plus what the accepted
// revocations free, less the placements accepted before it) fit it.
func wantJudgement(s *kernel.Snapshot, d *kernel.Decision) (revs []int, placements []kernel.Placement) {
	seen := map[int]bool{}
	for _, i := range d.Revocations {
		if i >= 0 && i < len(s.Allocations) && !seen[i] {
			seen[i] = true
			revs = append(revs, i)
		}
	}
	for {
		free := make([]kernel.Resources, len(s.Agents))
		for i, a := range s.Agents {
			free[i] = a.Free
		}
		for _, i := range revs {
			free[s.Allocations[i].Agent] = free[s.Allocations[i].Agent].Add(s.Allocations[i].Resources)
		}
		placements = nil
		placed := map[int]bool{}
		top := map[int]int32{}
		for _, p := range d.Placements {
			if p.Request < 0 || p.Request >= len(s.Requests) || p.Agent < 0 || p.Agent >= len(s.Agents) || placed[p.Request] {
				continue
			}
			r := s.Requests[p.Request]
			if !kernel.Matches(s.Agents[p.Agent].Labels, r.Constraints) || !free[p.Agent].Fits(r.Resources) {
				continue
			}
			free[p.Agent] = free[p.Agent].Sub(r.Resources)
			placed[p.Request] = true
			placements = append(placements, p)
			if t, ok := top[p.Agent]; !ok || r.Priority > t {
				top[p.Agent] = r.Priority
			}
		}
		var keep []int
		for _, i := range revs {
			if t, ok := top[s.Allocations[i].Agent]; ok && t > s.Allocations[i].Priority {
				keep = append(keep, i)
			}
		}
		if len(keep) == len(revs) {
			return revs, placements
		}
		revs = keep
	}
}

// TestJudge_OvercommitModule runs testdata/overcommit.wasm (every request
// on agent 0, every allocation revoked) through the real host on random
// snapshots: the kernel must refuse every placement that would over-commit
// or break a constraint and every revocation not backed by a
// higher-priority placement, and accept exactly what the ABI's rule
// allows.
func TestJudge_OvercommitModule(t *testing.T) {
	t.Parallel()
	h := newWasmHost(t)
	p, err := h.Load(context.Background(), "overcommit", readTestdata(t, "overcommit.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]int{} // kind of refusal → count, over all seeds
	var accepted, unbacked int
	for seed := uint64(1); seed <= 300; seed++ {
		s := randomSnapshot(seed)
		d, err := p.Place(s)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		// The module does what it says.
		if len(d.Placements) != len(s.Requests) || len(d.Revocations) != len(s.Allocations) || len(d.Never) != 0 {
			t.Fatalf("seed %d: %d placements, %d revocations, %d never for %d requests, %d allocations",
				seed, len(d.Placements), len(d.Revocations), len(d.Never), len(s.Requests), len(s.Allocations))
		}
		for i, pl := range d.Placements {
			if pl != (kernel.Placement{Request: i, Agent: 0}) || (i < len(d.Revocations) && d.Revocations[i] != i) {
				t.Fatalf("seed %d: decision %+v", seed, d)
			}
		}

		j := kernel.Judge(s, d)
		wantRevs, wantPlacements := wantJudgement(s, d)
		if !slices.Equal(j.Revocations, wantRevs) || !slices.Equal(j.Placements, wantPlacements) {
			t.Fatalf("seed %d: accepted revocations %v, placements %v; want %v, %v", seed, j.Revocations, j.Placements, wantRevs, wantPlacements)
		}
		if n := len(d.Placements) - len(j.Placements) + len(d.Revocations) - len(j.Revocations); len(j.Rejected) != n {
			t.Fatalf("seed %d: %d refusals reported for %d refused answers: %v", seed, len(j.Rejected), n, j.Rejected)
		}
		for i, f := range j.Free {
			if f.MilliCPU < 0 || f.Mem < 0 || f.Disk < 0 {
				t.Fatalf("seed %d: agent %s over-committed: %v free", seed, s.Agents[i].ID, f)
			}
		}
		for _, pl := range j.Placements {
			if !kernel.Matches(s.Agents[pl.Agent].Labels, s.Requests[pl.Request].Constraints) {
				t.Fatalf("seed %d: accepted %+v against its constraints", seed, pl)
			}
			if !j.Placed[pl.Request] {
				t.Fatalf("seed %d: accepted %+v not marked placed", seed, pl)
			}
		}
		accepted += len(j.Placements) + len(j.Revocations)
		for _, why := range j.Rejected {
			switch {
			case strings.Contains(why, "with only"):
				refused["capacity"]++
			case strings.Contains(why, "against its constraints"):
				refused["constraints"]++
			case strings.Contains(why, "places nothing of higher priority"):
				refused["revocation"]++
			case strings.Contains(why, "names agent 0 of 0"):
				refused["no agents"]++
			default:
				t.Fatalf("seed %d: unexpected refusal %q", seed, why)
			}
		}
		// Every accepted revocation is backed by an accepted placement of
		// higher priority on its agent.
		for _, i := range j.Revocations {
			g := s.Allocations[i]
			backed := false
			for _, pl := range j.Placements {
				backed = backed || (pl.Agent == g.Agent && s.Requests[pl.Request].Priority > g.Priority)
			}
			if !backed {
				unbacked++
			}
		}
	}
	t.Logf("accepted %d answers; refused %v", accepted, refused)
	if unbacked != 0 {
		t.Fatalf("%d accepted revocations are not backed by an accepted higher-priority placement", unbacked)
	}
	for _, kind := range []string{"capacity", "constraints", "revocation", "no agents"} {
		if refused[kind] == 0 {
			t.Errorf("no %s refusal in 300 snapshots: the test exercises too little", kind)
		}
	}
	if accepted == 0 {
		t.Error("nothing accepted in 300 snapshots: the test exercises too little")
	}
}

// TestKernel_WasmRefusesOvercommit loads overcommit.wasm into a kernel
// running drf: its dry-run on the live snapshot gives answers the kernel
// refuses, so the load is refused, nothing changes, and drf keeps
// allocating.
func TestKernel_WasmRefusesOvercommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := startWasm(t, e, newWasmHost(t), "drf")
	ctx := context.Background()
	register(t, k, 4, 4<<30)
	if r, err := k.Allocate(ctx, fwA, alloc(4, 2<<30)); err != nil || r.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("fill the agent: %v %v", r, err)
	}
	if r, err := k.Allocate(ctx, fwA, alloc(1, 1<<30)); err != nil || r.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_PENDING {
		t.Fatalf("pending request: %v %v", r, err)
	}
	start := k.Revision()
	mod := readTestdata(t, "overcommit.wasm")

	tr, err := k.PolicyTest(ctx, ops, &pb.PolicyTestRequest{Wasm: mod})
	if err != nil || len(tr.GetRejected()) == 0 || tr.GetCandidatePlaced() != 0 {
		t.Fatalf("policy test of overcommit.wasm: %v %v, want refused answers and nothing placed", tr, err)
	}
	_, err = k.PolicyLoad(ctx, ops, &pb.PolicyLoadRequest{Name: "overcommit", Wasm: mod})
	if kernel.CodeOf(err) != kernel.InvalidArgument || !strings.Contains(err.Error(), "would refuse") {
		t.Fatalf("load overcommit.wasm: %v, want InvalidArgument: ... answers the kernel would refuse", err)
	}
	t.Logf("refused: %v", err)
	if a := active(k); a != "drf" || k.Revision() != start {
		t.Fatalf("after a refused load: active %q, revision %d→%d", a, start, k.Revision())
	}
	for _, p := range k.PolicyList(ctx, ops).GetPolicies() {
		if p.GetName() == "overcommit" {
			t.Fatalf("a refused module is listed: %v", p)
		}
	}
	// drf still allocates: a second agent takes the pending request.
	second := register(t, k, 4, 4<<30)
	evs := collect(t, k, ops, &pb.WatchRequest{AfterRevision: start, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED}}, 1)
	if got := evs[0].GetAllocation().GetAgentId(); got != second {
		t.Fatalf("pending request granted on %q, want %s", got, second)
	}
}

// TestKernel_WasmPriorityPreempts runs the priority module: a
// higher-priority request takes the place of a low-priority allocation
// that fills the only agent. The kernel revokes the low one (PREEMPTED),
// kills its task, and grants the high one, in that order.
func TestKernel_WasmPriorityPreempts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := startWasm(t, e, newWasmHost(t), "")
	ctx := context.Background()
	if _, err := k.PolicyUse(ctx, ops, &pb.PolicyUseRequest{Name: "priority"}); err != nil || active(k) != "priority" {
		t.Fatalf("use priority: %v, active %q", err, active(k))
	}
	agent := register(t, k, 4, 8<<30)
	low, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 3, MemBytes: 4 << 30}, Priority: 1})
	if err != nil || low.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("low-priority allocation: %v %v", low, err)
	}
	lowID := low.GetAllocations()[0].GetId()
	task, err := k.Launch(ctx, fwA, &pb.LaunchRequest{AllocationId: lowID, Command: "sleep", Args: []string{"3600"}})
	if err != nil {
		t.Fatal(err)
	}
	start := k.Revision()

	high, err := k.Allocate(ctx, fwB, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 2, MemBytes: 2 << 30}, Priority: 10})
	if err != nil {
		t.Fatal(err)
	}
	ha := high.GetAllocations()[0]
	if ha.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED || ha.GetAgentId() != agent {
		t.Fatalf("high-priority allocation: %v", ha)
	}
	evs := collect(t, k, ops, &pb.WatchRequest{AfterRevision: start}, 3)
	kinds := make([]pb.EventKind, len(evs))
	for i, ev := range evs {
		kinds[i] = ev.GetKind()
	}
	want := []pb.EventKind{pb.EventKind_EVENT_KIND_TASK_STATE, pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED, pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED}
	if !slices.Equal(kinds, want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	if ts := evs[0].GetTask(); ts.GetId() != task.GetTask().GetId() || ts.GetState() != pb.TaskState_TASK_STATE_KILLED || !strings.HasPrefix(ts.GetReason(), "PREEMPTED") {
		t.Errorf("task event: %v", ts)
	}
	if rv := evs[1]; rv.GetAllocation().GetId() != lowID || !strings.HasPrefix(rv.GetReason(), "PREEMPTED") {
		t.Errorf("revoke event: allocation %s, reason %q; want %s, PREEMPTED…", rv.GetAllocation().GetId(), rv.GetReason(), lowID)
	}
	if g := evs[2].GetAllocation(); g.GetId() != ha.GetId() || g.GetOwner() != "fw-b" || g.GetAgentId() != agent {
		t.Errorf("grant event: %v", g)
	}
	t.Logf("revoked %s: %s", lowID, evs[1].GetReason())
	for _, a := range k.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations() {
		if a.GetId() == lowID {
			t.Errorf("the preempted allocation is still listed: %v", a)
		}
	}
}

// TestKernel_WasmDRFPaperExample runs the drf module on the DRF paper's
// two users (Ghodsi et al. §4): one 9-cpu, 18-GiB agent; framework A
// (role A) asks for <1 cpu, 4 GiB> tasks, framework B (role B) for
// <3 cpu, 1 GiB>. Both wait until the agent registers, and one cycle
// gives A 3 and B 2 (dominant shares 2/3 each).
func TestKernel_WasmDRFPaperExample(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := startWasm(t, e, newWasmHost(t), "")
	ctx := context.Background()
	if _, err := k.PolicyUse(ctx, ops, &pb.PolicyUseRequest{Name: "drf"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		p    kernel.Principal
		role string
		cpus float64
		mem  int64
	}{{fwA, "A", 1, 4 << 30}, {fwB, "B", 3, 1 << 30}} {
		resp, err := k.Allocate(ctx, r.p, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: r.cpus, MemBytes: r.mem}, Count: 10, Role: r.role})
		if err != nil || resp.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_PENDING {
			t.Fatalf("allocate for %s: %v %v", r.role, resp, err)
		}
	}
	start := k.Revision()
	register(t, k, 9, 18<<30)
	evs := collect(t, k, ops, &pb.WatchRequest{AfterRevision: start, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED}}, 5)
	perRole := map[string]int{}
	for _, ev := range evs {
		perRole[ev.GetAllocation().GetRole()]++
	}
	granted := map[string]int{}
	for _, a := range k.ListAllocations(ctx, ops, &pb.ListAllocationsRequest{}).GetAllocations() {
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
			granted[a.GetRole()]++
		}
	}
	if perRole["A"] != 3 || perRole["B"] != 2 || granted["A"] != 3 || granted["B"] != 2 || len(granted) != 2 {
		t.Fatalf("granted per role: events %v, listed %v; want A 3, B 2", perRole, granted)
	}
}
