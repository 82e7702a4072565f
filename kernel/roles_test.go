package kernel_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// cappedSnapshot is one 8-cpu agent, role capped (quota 2 cpus) holding
// 1 cpu, and pending: three 1-cpu requests of capped then one of role
// other (no quota).
func cappedSnapshot() *kernel.Snapshot {
	cpu := func(n int64) kernel.Resources { return kernel.Resources{MilliCPU: n * 1000, Mem: n << 30} }
	s := &kernel.Snapshot{
		Agents:      []kernel.AgentInfo{{ID: "agent-1", Total: cpu(8), Free: cpu(7)}},
		Allocations: []kernel.Granted{{ID: "a-1", Agent: 0, Owner: "fw", Role: "capped", Resources: cpu(1)}},
		Roles: []kernel.RoleInfo{
			{Name: "capped", Weight: 1, Usage: cpu(1), Quota: kernel.Resources{MilliCPU: 2000}},
			{Name: "other", Weight: 1},
		},
	}
	for i, role := range []string{"capped", "capped", "capped", "other"} {
		s.Requests = append(s.Requests, kernel.Request{ID: "a-" + string(rune('2'+i)), RequestID: "r-" + role, Owner: "fw", Role: role, Resources: cpu(1)})
	}
	return s
}

// TestJudge_QuotaWasm runs plugins/wasm/testdata/firstfit.wasm, a real
// WebAssembly policy that ignores roles and quotas, on a snapshot where
// role capped (quota 2 cpus) holds 1 cpu: the module places every request,
// and Judge accepts one more of capped, refuses the other two naming the
// role, the dimension and the quota, and still accepts role other's.
func TestJudge_QuotaWasm(t *testing.T) {
	t.Parallel()
	h := newWasmHost(t)
	p, err := h.Load(context.Background(), "firstfit", readTestdata(t, "firstfit.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	s := cappedSnapshot()
	d, err := p.Place(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Placements) != 4 {
		t.Fatalf("firstfit.wasm placed %d of 4 requests; the test needs a policy that ignores quotas", len(d.Placements))
	}
	j := kernel.Judge(s, d)
	want := []kernel.Placement{{Request: 0, Agent: 0}, {Request: 3, Agent: 0}}
	if !slices.Equal(j.Placements, want) {
		t.Fatalf("accepted %v, want %v (one more of capped, and other's)", j.Placements, want)
	}
	if len(j.Rejected) != 2 {
		t.Fatalf("rejected %q, want the two placements past the quota", j.Rejected)
	}
	for _, why := range j.Rejected {
		if !strings.Contains(why, "role capped") || !strings.Contains(why, "quota cpus=2 reached") {
			t.Errorf("refusal %q does not name the role, the dimension and the quota", why)
		}
	}
}

// TestFirstFit_Quota: the native first-fit never proposes a placement
// past a quota (Judge refuses nothing), and keeps placing other roles'
// requests after a capped one.
func TestFirstFit_Quota(t *testing.T) {
	t.Parallel()
	s := cappedSnapshot()
	d, err := kernel.FirstFit{}.Place(s)
	if err != nil {
		t.Fatal(err)
	}
	want := []kernel.Placement{{Request: 0, Agent: 0}, {Request: 3, Agent: 0}}
	if !slices.Equal(d.Placements, want) {
		t.Fatalf("first-fit placed %v, want %v", d.Placements, want)
	}
	if j := kernel.Judge(s, d); len(j.Rejected) != 0 {
		t.Fatalf("Judge refused first-fit's answers: %q", j.Rejected)
	}
}

// TestKernel_WasmQuotaOvercommit is issue 16's case: role capped has a
// quota of 2 cpus and a policy that ignores quotas (firstfit.wasm, in
// real wazero) is active. Three 1-cpu requests of capped: two are granted,
// the third stays pending with the quota's reason (in the response, the
// allocation and the ALLOCATION_PENDING event); the role stays at its
// quota; a request of another role is still placed.
func TestKernel_WasmQuotaOvercommit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := newWasmHost(t)
	mods := builtinModules()
	k, _ := e.startWith(t, kernel.Config{Loader: hostLoader{h, mods}, Builtins: mods,
		Roles: map[string]kernel.RoleConfig{"capped": {Quota: kernel.Resources{MilliCPU: 2000}}}})
	ctx := context.Background()
	if _, err := k.PolicyLoad(ctx, ops, &pb.PolicyLoadRequest{Name: "ignores-quotas", Wasm: readTestdata(t, "firstfit.wasm")}); err != nil {
		t.Fatal(err)
	}
	if a := active(k); a != "ignores-quotas" {
		t.Fatalf("active policy %q", a)
	}
	register(t, k, 8, 8<<30)
	start := k.Revision()
	resp, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Role: "capped", Count: 3, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	const reason = "role capped: quota cpus=2 reached"
	var granted, pending int
	for _, a := range resp.GetAllocations() {
		switch a.GetState() {
		case pb.AllocationState_ALLOCATION_STATE_GRANTED:
			granted++
		case pb.AllocationState_ALLOCATION_STATE_PENDING:
			pending++
			if a.GetPendingReason() != reason {
				t.Errorf("allocation %s pending reason %q, want %q", a.GetId(), a.GetPendingReason(), reason)
			}
		}
	}
	if granted != 2 || pending != 1 || resp.GetPendingReason() != reason {
		t.Fatalf("granted %d, pending %d, response reason %q; want 2, 1, %q", granted, pending, resp.GetPendingReason(), reason)
	}
	evs := collect(t, k, ops, &pb.WatchRequest{AfterRevision: start, Kinds: []pb.EventKind{pb.EventKind_EVENT_KIND_ALLOCATION_PENDING}}, 1)
	if evs[0].GetReason() != reason || evs[0].GetAllocation().GetPendingReason() != reason {
		t.Errorf("ALLOCATION_PENDING event: reason %q, allocation's %q", evs[0].GetReason(), evs[0].GetAllocation().GetPendingReason())
	}
	other, err := k.Allocate(ctx, fwB, &pb.AllocateRequest{Role: "other", Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}})
	if err != nil || other.GetAllocations()[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("role other's request: %v %v", other, err)
	}
	if a := active(k); a != "ignores-quotas" {
		t.Fatalf("refused placements must not fail the policy: active %q", a)
	}
	capped := roleOf(t, k, fwA, "capped")
	if u := capped.GetUsage().GetCpus(); u != 2 || capped.GetPending() != 1 || capped.GetQuota().GetCpus() != 2 {
		t.Fatalf("role capped: %v; want usage 2 cpus (its quota), 1 pending", capped)
	}
}

// roleOf returns role name from RoleList as p sees it.
func roleOf(t *testing.T, k *kernel.Kernel, p kernel.Principal, name string) *pb.Role {
	t.Helper()
	for _, r := range k.RoleList(context.Background(), p).GetRoles() {
		if r.GetName() == name {
			return r
		}
	}
	t.Fatalf("role %q not listed", name)
	return nil
}

func ptr[T any](v T) *T { return &v }

// TestKernel_RoleSetPersists: a RoleSet survives a restart on the same
// etcd and overrides the start-up settings field by field; a raised quota
// places the request it held, in the same call's cycle; a zero quota
// clears a start-up quota.
func TestKernel_RoleSetPersists(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	flags := kernel.Config{Roles: map[string]kernel.RoleConfig{
		"capped": {Weight: 2, Quota: kernel.Resources{MilliCPU: 1000}},
		"heavy":  {Weight: 5},
	}}
	k, stop := e.startWith(t, flags)
	ctx := context.Background()
	register(t, k, 8, 8<<30)
	resp, err := k.Allocate(ctx, fwA, &pb.AllocateRequest{Role: "capped", Count: 2, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetPendingReason(); got != "role capped: quota cpus=1 reached" {
		t.Fatalf("pending reason %q", got)
	}

	set, err := k.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "capped", Quota: &pb.Resources{Cpus: 3, MemBytes: 4 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	if r := set.GetRole(); r.GetWeight() != 2 || r.GetQuota().GetCpus() != 3 || r.GetUsage().GetCpus() != 2 || r.GetPending() != 0 {
		t.Fatalf("RoleSet answered %v; want weight 2 (start-up), quota 3 cpus, the held request placed (usage 2, none pending)", r)
	}
	if _, err := k.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "capped", Weight: ptr(3.0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "heavy", Quota: &pb.Resources{Ports: 4}}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "fresh", Weight: ptr(0.5)}); err != nil {
		t.Fatal(err)
	}
	want := map[string]*pb.Role{
		"capped": {Name: "capped", Weight: 3, Quota: &pb.Resources{Cpus: 3, MemBytes: 4 << 30}, Usage: &pb.Resources{Cpus: 2, MemBytes: 2 << 30}, CpuClass: ptr(pb.CpuClass_CPU_CLASS_NORMAL), Cpuset: ptr("")},
		"heavy":  {Name: "heavy", Weight: 5, Quota: &pb.Resources{Ports: 4}, Usage: &pb.Resources{}, CpuClass: ptr(pb.CpuClass_CPU_CLASS_NORMAL), Cpuset: ptr("")},
		"fresh":  {Name: "fresh", Weight: 0.5, Usage: &pb.Resources{}, CpuClass: ptr(pb.CpuClass_CPU_CLASS_NORMAL), Cpuset: ptr("")},
	}
	checkRoles := func(when string, k *kernel.Kernel) {
		t.Helper()
		got := k.RoleList(ctx, fwB).GetRoles()
		names := make([]string, len(got))
		for i, r := range got {
			names[i] = r.GetName()
			if w := want[r.GetName()]; !proto.Equal(r, w) {
				t.Errorf("%s: role %v, want %v", when, r, w)
			}
		}
		if !slices.Equal(names, []string{"capped", "fresh", "heavy"}) {
			t.Errorf("%s: roles %v, want capped, fresh, heavy (sorted)", when, names)
		}
	}
	checkRoles("before restart", k)
	stop()

	k2, stop2 := e.startWith(t, flags)
	checkRoles("after restart", k2)
	// A zero quota clears the start-up one for good.
	if _, err := k2.RoleSet(ctx, ops, &pb.RoleSetRequest{Name: "capped", Quota: &pb.Resources{}}); err != nil {
		t.Fatal(err)
	}
	stop2()
	k3, _ := e.startWith(t, flags)
	if r := roleOf(t, k3, ops, "capped"); r.GetQuota() != nil || r.GetWeight() != 3 {
		t.Fatalf("after clearing the quota and a restart: %v; want no quota, weight 3", r)
	}
	resp, err = k3.Allocate(ctx, fwA, &pb.AllocateRequest{Role: "capped", Count: 4, Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}})
	if err != nil || resp.GetPendingReason() != "" {
		t.Fatalf("with no quota, 4 more cpus on the 8-cpu agent: %v %v", resp, err)
	}
}

// TestKernel_RoleSetRefused: bad input is InvalidArgument naming the
// field; a framework or an agent calling RoleSet is PermissionDenied;
// nothing is written either way.
func TestKernel_RoleSetRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k, _ := e.start(t)
	ctx := context.Background()
	rev := k.Revision()
	bad := []struct {
		name  string
		req   *pb.RoleSetRequest
		field string
	}{
		{"no name", &pb.RoleSetRequest{Weight: ptr(1.0)}, "name: required"},
		{"bad name", &pb.RoleSetRequest{Name: "-x y", Weight: ptr(1.0)}, "name: "},
		{"nothing to set", &pb.RoleSetRequest{Name: "web"}, "weight: nothing to set"},
		{"zero weight", &pb.RoleSetRequest{Name: "web", Weight: ptr(0.0)}, "weight: "},
		{"negative weight", &pb.RoleSetRequest{Name: "web", Weight: ptr(-1.0)}, "weight: "},
		{"NaN weight", &pb.RoleSetRequest{Name: "web", Weight: ptr(math.NaN())}, "weight: "},
		{"infinite weight", &pb.RoleSetRequest{Name: "web", Weight: ptr(math.Inf(1))}, "weight: "},
		{"negative cpus", &pb.RoleSetRequest{Name: "web", Quota: &pb.Resources{Cpus: -1}}, "quota.cpus: "},
		{"NaN cpus", &pb.RoleSetRequest{Name: "web", Quota: &pb.Resources{Cpus: math.NaN()}}, "quota.cpus: "},
		{"negative mem", &pb.RoleSetRequest{Name: "web", Quota: &pb.Resources{MemBytes: -1}}, "quota.mem_bytes: "},
		{"negative disk", &pb.RoleSetRequest{Name: "web", Quota: &pb.Resources{DiskBytes: -1}}, "quota.disk_bytes: "},
		{"negative ports", &pb.RoleSetRequest{Name: "web", Quota: &pb.Resources{Ports: -1}}, "quota.ports: "},
		{"unknown cpu class", &pb.RoleSetRequest{Name: "web", CpuClass: ptr(pb.CpuClass(7))}, "cpu_class: "},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := k.RoleSet(ctx, ops, tc.req)
			if kernel.CodeOf(err) != kernel.InvalidArgument || !strings.HasPrefix(err.Error(), tc.field) {
				t.Fatalf("RoleSet(%v): %v; want InvalidArgument %q…", tc.req, err, tc.field)
			}
		})
	}
	for _, p := range []kernel.Principal{fwA, {Name: "agent-tok", Role: kernel.RoleAgent}} {
		if _, err := k.RoleSet(ctx, p, &pb.RoleSetRequest{Name: "web", Weight: ptr(2.0)}); kernel.CodeOf(err) != kernel.PermissionDenied {
			t.Errorf("RoleSet by %v: %v; want PermissionDenied", p, err)
		}
	}
	if k.Revision() != rev || len(k.RoleList(ctx, fwA).GetRoles()) != 0 {
		t.Fatalf("refused calls wrote: revision %d→%d, roles %v", rev, k.Revision(), k.RoleList(ctx, fwA).GetRoles())
	}
}
