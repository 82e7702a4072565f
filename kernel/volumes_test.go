package kernel

import (
	"slices"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// claimReq asks for one small instance of role with volume claims.
func claimReq(role string, vs ...*pb.VolumeClaim) *pb.AllocateRequest {
	return &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: mi, DiskBytes: 8 * mi}, Role: role, Volumes: vs}
}

func TestTable_VolumeLifecycle(t *testing.T) {
	withDisk := func(r *pb.RegisterAgentRequest) *pb.RegisterAgentRequest {
		r.Resources.DiskBytes = 1024 * mi
		return r
	}
	tb := cluster(t, withDisk(agentReq(4, 1024, nil)), withDisk(agentReq(4, 1024, nil)))
	disk := func(agent string) int64 { return tb.agents[agent].GetAllocated().GetDiskBytes() }

	// Created with the allocation that first claims it: placed with it,
	// its disk held by the volume, not by the allocation.
	if _, err := tb.checkVolumeClaims(fwA, claimReq("db", &pb.VolumeClaim{Name: "data", SizeBytes: 64 * mi})); err != nil {
		t.Fatal(err)
	}
	as, c := allocate(tb, fwA, claimReq("db", &pb.VolumeClaim{Name: "data", SizeBytes: 64 * mi}))
	a1 := as[0]
	if a1.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
		t.Fatalf("allocation = %v", a1)
	}
	agent := a1.GetAgentId()
	v := tb.volumes["data"]
	if v.GetAgentId() != agent || v.GetRole() != "db" || v.GetOwner() != fwA.Name || v.GetAllocationId() != a1.GetId() {
		t.Errorf("volume = %v", v)
	}
	if a1.GetResources().GetDiskBytes() != 8*mi || disk(agent) != 72*mi {
		t.Errorf("allocation disk %d, agent allocated %d; want 8 MiB and 72 MiB", a1.GetResources().GetDiskBytes(), disk(agent))
	}
	if !hasEvent(c, pb.EventKind_EVENT_KIND_VOLUME_CREATED) || c.Volumes["data"] == nil {
		t.Error("no VOLUME_CREATED event or volume change")
	}

	// Launch mounts only what the allocation claims; the kernel fills in
	// role and size.
	k, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: a1.GetId(), Command: "x",
		Volumes: []*pb.VolumeMount{{Name: "data", Path: "data"}}}, t0, newChanges())
	if err != nil {
		t.Fatal(err)
	}
	if m := k.GetVolumes(); len(m) != 1 || m[0].GetRole() != "db" || m[0].GetSizeBytes() != 64*mi {
		t.Errorf("task volumes = %v", m)
	}
	if _, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: a1.GetId(), Command: "x",
		Volumes: []*pb.VolumeMount{{Name: "other", Path: "o"}}}, t0, newChanges()); CodeOf(err) != FailedPrecondition {
		t.Errorf("Launch with an unclaimed volume: %v, want FailedPrecondition", err)
	}
	if err := tb.DestroyVolume(fwA, "data", t0, newChanges()); CodeOf(err) != FailedPrecondition {
		t.Errorf("DestroyVolume while claimed: %v, want FailedPrecondition", err)
	}

	// The volume outlives its allocation, with its disk.
	if err := tb.Revoke(fwA, a1.GetId(), "done", t0, newChanges()); err != nil {
		t.Fatal(err)
	}
	if v := tb.volumes["data"]; v == nil || v.GetAllocationId() != "" || disk(agent) != 64*mi {
		t.Fatalf("after revoke: volume %v, agent disk %d; want it free, 64 MiB held", v, disk(agent))
	}

	// Another framework or role cannot claim or destroy it.
	for _, tt := range []struct {
		name string
		p    Principal
		role string
	}{{"another framework", fwB, "db"}, {"another role", fwA, "web"}} {
		if _, err := tb.checkVolumeClaims(tt.p, claimReq(tt.role, &pb.VolumeClaim{Name: "data"})); CodeOf(err) != PermissionDenied {
			t.Errorf("claim by %s: %v, want PermissionDenied", tt.name, err)
		}
	}
	if err := tb.DestroyVolume(fwB, "data", t0, newChanges()); CodeOf(err) != PermissionDenied {
		t.Errorf("DestroyVolume by another framework: %v, want PermissionDenied", err)
	}
	if _, err := tb.checkVolumeClaims(fwA, claimReq("db", &pb.VolumeClaim{Name: "nope"})); CodeOf(err) != NotFound {
		t.Errorf("claim of an unknown volume without a size: %v, want NotFound", err)
	}

	// The owner's next allocation of the role claims it and lands on its
	// agent, even where another agent is emptier.
	req := claimReq("db", &pb.VolumeClaim{Name: "data"})
	if _, err := tb.checkVolumeClaims(fwA, req); err != nil {
		t.Fatal(err)
	}
	as, _ = allocate(tb, fwA, req)
	a2 := as[0]
	if a2.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED || a2.GetAgentId() != agent {
		t.Fatalf("claiming allocation = %v, want granted on %s", a2, agent)
	}
	if cs := a2.GetConstraints(); len(cs) != 1 || cs[0].GetLabel() != AgentLabel || cs[0].GetOp() != pb.Constraint_OP_EQUALS || cs[0].GetValues()[0] != agent {
		t.Errorf("claiming allocation's constraints = %v, want %s EQUALS %s", cs, AgentLabel, agent)
	}
	// The pin is an ordinary constraint: with the volume's agent full,
	// a claim stays pending although the other agent has room.
	tb.agents[agent].Total.MemBytes = 0
	tb.order = nil
	held := claimReq("db", &pb.VolumeClaim{Name: "data"})
	held.Volumes = nil
	held.Constraints = a2.GetConstraints()
	if as, _ := allocate(tb, fwA, held); as[0].GetState() != pb.AllocationState_ALLOCATION_STATE_PENDING {
		t.Errorf("pinned allocation on a full agent = %v, want pending", as[0])
	} else if err := tb.Revoke(fwA, as[0].GetId(), "", t0, newChanges()); err != nil {
		t.Fatal(err)
	}
	tb.agents[agent].Total.MemBytes = 1024 * mi
	tb.order = nil
	if _, err := tb.checkVolumeClaims(fwA, req); CodeOf(err) != FailedPrecondition {
		t.Errorf("a second claim while claimed: %v, want FailedPrecondition", err)
	}
	if err := tb.Revoke(fwA, a2.GetId(), "done", t0, newChanges()); err != nil {
		t.Fatal(err)
	}

	// Destroy frees the disk.
	c = newChanges()
	if err := tb.DestroyVolume(fwA, "data", t0, c); err != nil {
		t.Fatal(err)
	}
	if tb.volumes["data"] != nil || disk(agent) != 0 || !hasEvent(c, pb.EventKind_EVENT_KIND_VOLUME_DESTROYED) {
		t.Errorf("after destroy: volume %v, agent disk %d", tb.volumes["data"], disk(agent))
	}
	if err := tb.DestroyVolume(fwA, "data", t0, newChanges()); err != nil {
		t.Errorf("DestroyVolume again: %v", err)
	}
}

func TestTable_VolumeOfPendingAllocation(t *testing.T) {
	tb := cluster(t) // no agents: stays pending
	req := claimReq("db", &pb.VolumeClaim{Name: "data", SizeBytes: 64 * mi})
	as, _ := allocate(tb, fwA, req)
	if as[0].GetResources().GetDiskBytes() != 72*mi {
		t.Errorf("pending allocation disk = %d, want its own and the new volume's", as[0].GetResources().GetDiskBytes())
	}
	if err := tb.Revoke(fwA, as[0].GetId(), "", t0, newChanges()); err != nil {
		t.Fatal(err)
	}
	if v := tb.volumes["data"]; v != nil {
		t.Errorf("a volume never placed outlived its allocation: %v", v)
	}
}

func TestTable_VolumesRestoreAndReconcile(t *testing.T) {
	st := &State{
		Agents:  []*pb.Agent{{Id: "agent-1", Total: &pb.Resources{DiskBytes: 1024 * mi}}},
		Volumes: []*pb.Volume{{Name: "data", Role: "db", AgentId: "agent-1", SizeBytes: 64 * mi, Owner: "fw-a"}},
	}
	tb := Restore(st, t0)
	if d := tb.agents["agent-1"].GetAllocated().GetDiskBytes(); d != 64*mi {
		t.Errorf("restored agent disk = %d, want the volume's 64 MiB", d)
	}
	c := newChanges()
	r := agentReq(1, 1024, nil)
	r.AgentId = "agent-1"
	r.Resources.DiskBytes = 1024 * mi
	r.Volumes = []*pb.Volume{{Name: "data", Role: "db", SizeBytes: 64 * mi}, {Name: "lost", Role: "web", SizeBytes: 32 * mi}}
	resp, err := tb.Register(ops, r, t0, c)
	if err != nil {
		t.Fatal(err)
	}
	// The one the kernel records there is kept, with the kernel's owner;
	// the one it does not know is not adopted but deleted: the agent
	// cannot say who owns it.
	if v := tb.volumes["data"]; v.GetOwner() != "fw-a" || v.GetAgentId() != "agent-1" {
		t.Errorf("known volume after registration = %v", v)
	}
	if v := tb.volumes["lost"]; v != nil || !slices.Equal(resp.GetDestroyVolumes(), []string{"lost"}) {
		t.Errorf("reported unknown volume = %v, destroy_volumes %v; want not adopted, told to delete", v, resp.GetDestroyVolumes())
	}
	if d := tb.agents["agent-1"].GetAllocated().GetDiskBytes(); d != 64*mi {
		t.Errorf("agent disk after registration = %d, want the known volume's 64 MiB", d)
	}
	if got := tb.agents["agent-1"].GetLabels()[AgentLabel]; got != "agent-1" {
		t.Errorf("agent label %s = %q", AgentLabel, got)
	}
}

func hasEvent(c *Changes, k pb.EventKind) bool {
	for _, e := range c.Events {
		if e.GetKind() == k && e.GetVolume() != nil {
			return true
		}
	}
	return false
}

func TestValidateVolumes(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"ok", ValidateAllocate(claimReq("db", &pb.VolumeClaim{Name: "data", SizeBytes: 8 * mi}))},
		{"bad name", ValidateAllocate(claimReq("db", &pb.VolumeClaim{Name: "../x", SizeBytes: 8 * mi}))},
		{"too small", ValidateAllocate(claimReq("db", &pb.VolumeClaim{Name: "data", SizeBytes: 1}))},
		{"twice", ValidateAllocate(claimReq("db", &pb.VolumeClaim{Name: "d"}, &pb.VolumeClaim{Name: "d"}))},
		{"count", ValidateAllocate(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1}, Count: 2, Volumes: []*pb.VolumeClaim{{Name: "d"}}})},
		{"mount ok", ValidateLaunch(&pb.LaunchRequest{AllocationId: "a-1", Command: "x", Volumes: []*pb.VolumeMount{{Name: "d", Path: "a/b"}}})},
		{"mount absolute", ValidateLaunch(&pb.LaunchRequest{AllocationId: "a-1", Command: "x", Volumes: []*pb.VolumeMount{{Name: "d", Path: "/etc"}}})},
		{"mount escapes", ValidateLaunch(&pb.LaunchRequest{AllocationId: "a-1", Command: "x", Volumes: []*pb.VolumeMount{{Name: "d", Path: "../x"}}})},
		{"mounts overlap", ValidateLaunch(&pb.LaunchRequest{AllocationId: "a-1", Command: "x", Volumes: []*pb.VolumeMount{{Name: "d", Path: "a"}, {Name: "e", Path: "a/b"}}})},
		{"mount sets role", ValidateLaunch(&pb.LaunchRequest{AllocationId: "a-1", Command: "x", Volumes: []*pb.VolumeMount{{Name: "d", Path: "a", Role: "x"}}})},
	}
	for _, tt := range tests {
		wantOK := tt.name == "ok" || tt.name == "mount ok"
		if (tt.err == nil) != wantOK {
			t.Errorf("%s: err = %v, want ok %v", tt.name, tt.err, wantOK)
		}
	}
}

// TestTable_VolumeDestroyedWhileAgentAway: a volume destroyed while its
// agent was down is not adopted back when the agent reports it: the
// agent is told to delete it; the tombstone goes once the agent no longer
// reports it, and never hides a new volume of the same name.
func TestTable_VolumeDestroyedWhileAgentAway(t *testing.T) {
	st := &State{
		Agents:  []*pb.Agent{{Id: "agent-1", Total: &pb.Resources{Cpus: 4, MemBytes: 1024 * mi, DiskBytes: 1024 * mi}}},
		Volumes: []*pb.Volume{{Name: "data", Role: "db", AgentId: "agent-1", SizeBytes: 64 * mi, Owner: "fw-a"}},
	}
	tb := Restore(st, t0)
	c := newChanges()
	if err := tb.DestroyVolume(fwA, "data", t0, c); err != nil {
		t.Fatal(err)
	}
	if c.DestroyedVolumes["data"] == nil {
		t.Fatal("no tombstone written")
	}
	register := func(reported ...string) *pb.RegisterAgentResponse {
		t.Helper()
		r := agentReq(4, 1024, nil)
		r.AgentId, r.Resources.DiskBytes = "agent-1", 1024*mi
		for _, n := range reported {
			r.Volumes = append(r.Volumes, &pb.Volume{Name: n, Role: "db", SizeBytes: 64 * mi})
		}
		resp, err := tb.Register(ops, r, t0, newChanges())
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := register("data"); len(resp.GetDestroyVolumes()) != 1 || tb.volumes["data"] != nil {
		t.Errorf("agent back with a destroyed volume: destroy_volumes %v, record %v; want it told to delete, not adopted", resp.GetDestroyVolumes(), tb.volumes["data"])
	}
	if resp := register(); len(resp.GetDestroyVolumes()) != 0 || tb.destroyed["data"] != nil {
		t.Errorf("agent without it: destroy_volumes %v, tombstone %v; want both gone", resp.GetDestroyVolumes(), tb.destroyed["data"])
	}
	// A tombstone does not outlive a new volume of its name.
	if err := tb.DestroyVolume(ops, "nope", t0, newChanges()); err != nil {
		t.Fatal(err)
	}
	tb.destroyed["data"] = &pb.Volume{Name: "data", AgentId: "agent-1"}
	allocate(tb, fwA, claimReq("db", &pb.VolumeClaim{Name: "data", SizeBytes: 64 * mi}))
	if resp := register("data"); len(resp.GetDestroyVolumes()) != 0 || tb.volumes["data"] == nil {
		t.Errorf("a new volume of a destroyed name: destroy_volumes %v, record %v; want it kept", resp.GetDestroyVolumes(), tb.volumes["data"])
	}
}
