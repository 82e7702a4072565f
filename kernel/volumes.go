package kernel

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Persistent volumes: disk on one agent that outlives tasks and
// allocations, owned by a role (and the principal that created it). A
// volume is created by the allocation that first claims its name (its size
// is part of the allocation's disk for placement, then held by the volume
// on the agent until it is destroyed) and claimed by later allocations of
// its role and owner, which are pinned to its agent by the constraint
// AgentLabel EQUALS <agent id>: every agent carries that label, so the
// policies place them without knowing about volumes. At most one live
// allocation claims a volume at a time.

// AgentLabel is the label the kernel sets on every agent to its id; the
// constraint that pins a claim to its volume's agent uses it. An agent
// cannot set it itself.
const AgentLabel = "dcos.agent"

// Bounds on volumes.
const (
	MaxVolumes    = 16      // volume claims per Allocate, mounts per Launch
	MinVolumeSize = 4 << 20 // the storage driver's smallest volume
)

// volumeNameRE is a volume's name: it names files and mount sources on
// its agent.
var volumeNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// validateVolumeClaims checks an Allocate's volumes.
func validateVolumeClaims(r *pb.AllocateRequest) error {
	vs := r.GetVolumes()
	if len(vs) == 0 {
		return nil
	}
	if len(vs) > MaxVolumes {
		return fieldError("volumes", "at most %d, got %d", MaxVolumes, len(vs))
	}
	if r.GetCount() > 1 {
		return fieldError("count", "an allocation with volumes has one instance, got %d", r.GetCount())
	}
	seen := map[string]bool{}
	for i, v := range vs {
		f := fmt.Sprintf("volumes[%d]", i)
		if !volumeNameRE.MatchString(v.GetName()) {
			return fieldError(f+".name", "want [a-z0-9][a-z0-9._-]*, at most 63 bytes, got %q", clip(v.GetName()))
		}
		if seen[v.GetName()] {
			return fieldError(f+".name", "%q claimed twice", v.GetName())
		}
		seen[v.GetName()] = true
		if s := v.GetSizeBytes(); s != 0 && (s < MinVolumeSize || s > MaxBytes) {
			return fieldError(f+".size_bytes", "must be 0 (an existing volume) or in [%d, %d], got %d", MinVolumeSize, int64(MaxBytes), s)
		}
	}
	return nil
}

// validateVolumeMounts checks a Launch's volumes.
func validateVolumeMounts(ms []*pb.VolumeMount) error {
	if len(ms) > MaxVolumes {
		return fieldError("volumes", "at most %d, got %d", MaxVolumes, len(ms))
	}
	paths := map[string]bool{}
	for i, m := range ms {
		f := fmt.Sprintf("volumes[%d]", i)
		if !volumeNameRE.MatchString(m.GetName()) {
			return fieldError(f+".name", "want [a-z0-9][a-z0-9._-]*, at most 63 bytes, got %q", clip(m.GetName()))
		}
		p := m.GetPath()
		if p == "" || len(p) > MaxStringLen || path.IsAbs(p) || path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../") {
			return fieldError(f+".path", "want a clean path relative to the sandbox, got %q", clip(p))
		}
		for q := range paths {
			if q == p || strings.HasPrefix(p, q+"/") || strings.HasPrefix(q, p+"/") {
				return fieldError(f+".path", "%q overlaps %q", p, q)
			}
		}
		paths[p] = true
		if m.GetRole() != "" || m.GetSizeBytes() != 0 {
			return fieldError(f, "role and size_bytes are the kernel's to set")
		}
	}
	return nil
}

// checkVolumeClaims checks r's volume claims for p and returns the agent
// the claimed volumes pin the allocation to ("" for none).
func (t *Table) checkVolumeClaims(p Principal, r *pb.AllocateRequest) (pin string, err error) {
	for _, vc := range r.GetVolumes() {
		v := t.volumes[vc.GetName()]
		if v == nil {
			if vc.GetSizeBytes() == 0 {
				return "", errorf(NotFound, "volumes: no volume %q (give size_bytes to create it)", vc.GetName())
			}
			continue
		}
		if err := volumeAccess(p, v, r.GetRole()); err != nil {
			return "", err
		}
		if s := vc.GetSizeBytes(); s != 0 && s != v.GetSizeBytes() {
			return "", errorf(FailedPrecondition, "volumes: volume %q has %d bytes, not %d", v.GetName(), v.GetSizeBytes(), s)
		}
		if v.GetAllocationId() != "" {
			return "", errorf(FailedPrecondition, "volumes: volume %q is claimed by allocation %s", v.GetName(), v.GetAllocationId())
		}
		if v.GetAgentId() == "" {
			return "", errorf(FailedPrecondition, "volumes: volume %q is not placed yet", v.GetName())
		}
		if pin != "" && pin != v.GetAgentId() {
			return "", errorf(FailedPrecondition, "volumes: the claimed volumes are on different agents (%s, %s)", pin, v.GetAgentId())
		}
		pin = v.GetAgentId()
	}
	return pin, nil
}

// claimVolumes records a's volume claims, which checkVolumeClaims
// accepted: existing volumes are claimed (a is pinned to their agent), new
// ones created on no agent yet, their sizes added to a's disk.
func (t *Table) claimVolumes(p Principal, r *pb.AllocateRequest, a *pb.Allocation, now time.Time, c *Changes) {
	pin, _ := t.checkVolumeClaims(p, r)
	res := FromProto(a.GetResources())
	for _, vc := range r.GetVolumes() {
		t.claims[a.GetId()] = append(t.claims[a.GetId()], vc.GetName())
		if v := t.volumes[vc.GetName()]; v != nil {
			v.AllocationId = a.GetId()
			c.Volumes[v.GetName()] = v
			continue
		}
		if t.destroyed[vc.GetName()] != nil { // a new volume of an old name: its data is not to be destroyed
			delete(t.destroyed, vc.GetName())
			c.DestroyedVolumes[vc.GetName()] = nil
		}
		v := &pb.Volume{Name: vc.GetName(), Role: r.GetRole(), SizeBytes: vc.GetSizeBytes(), AllocationId: a.GetId(),
			Owner: p.Name, Created: timestamppb.New(now)}
		t.volumes[v.GetName()] = v
		c.Volumes[v.GetName()] = v
		res.Disk += v.GetSizeBytes()
	}
	a.Resources = res.Proto()
	if pin != "" {
		a.Constraints = append(slices.Clone(a.GetConstraints()), &pb.Constraint{Label: AgentLabel, Op: pb.Constraint_OP_EQUALS, Values: []string{pin}})
	}
}

// volumeAccess checks that p may claim or destroy v for role (empty: any).
func volumeAccess(p Principal, v *pb.Volume, role string) error {
	if p.Role == RoleFramework && v.GetOwner() != p.Name {
		return errorf(PermissionDenied, "volumes: volume %q belongs to another framework", v.GetName())
	}
	if role != "" && v.GetRole() != role {
		return errorf(PermissionDenied, "volumes: volume %q belongs to role %q, not %q", v.GetName(), v.GetRole(), role)
	}
	return nil
}

// grantVolumes places the volumes a creates on agentID: their disk moves
// from a's resources to the volumes (the agent's use is unchanged).
func (t *Table) grantVolumes(a *pb.Allocation, agentID string, now time.Time, c *Changes) {
	if len(t.claims[a.GetId()]) == 0 {
		return
	}
	res := FromProto(a.GetResources())
	for _, name := range t.claims[a.GetId()] {
		v := t.volumes[name]
		if v == nil || v.GetAgentId() != "" {
			continue
		}
		v.AgentId = agentID
		res.Disk -= v.GetSizeBytes()
		c.Volumes[v.GetName()] = v
		e := event(pb.EventKind_EVENT_KIND_VOLUME_CREATED, now, "created by allocation "+a.GetId())
		e.Volume = proto.Clone(v).(*pb.Volume)
		c.Events = append(c.Events, e)
	}
	a.Resources = res.Proto()
}

// unclaimVolumes frees the volumes a claims; the ones it would have
// created but never placed are forgotten.
func (t *Table) unclaimVolumes(a *pb.Allocation, c *Changes) {
	names := t.claims[a.GetId()]
	delete(t.claims, a.GetId())
	for _, name := range names {
		v := t.volumes[name]
		if v == nil || v.GetAllocationId() != a.GetId() {
			continue
		}
		if v.GetAgentId() == "" {
			delete(t.volumes, name)
			c.Volumes[name] = nil
			continue
		}
		v.AllocationId = ""
		c.Volumes[name] = v
	}
}

// DestroyVolume forgets volume name and frees its disk; its agent deletes
// the data when it sees the event. Unknown names are not an error.
func (t *Table) DestroyVolume(p Principal, name string, now time.Time, c *Changes) error {
	v := t.volumes[name]
	if v == nil {
		return nil
	}
	if err := volumeAccess(p, v, ""); err != nil {
		return err
	}
	if v.GetAllocationId() != "" {
		return errorf(FailedPrecondition, "volume %q is claimed by allocation %s: revoke it first", name, v.GetAllocationId())
	}
	delete(t.volumes, name)
	c.Volumes[name] = nil
	t.release(v.GetAgentId(), Resources{Disk: v.GetSizeBytes()}, c)
	if v.GetAgentId() != "" { // its agent deletes it, now or when it comes back
		tomb := proto.Clone(v).(*pb.Volume)
		t.destroyed[name] = tomb
		c.DestroyedVolumes[name] = tomb
	}
	e := event(pb.EventKind_EVENT_KIND_VOLUME_DESTROYED, now, "destroyed by "+p.Name)
	e.Volume = proto.Clone(v).(*pb.Volume)
	c.Events = append(c.Events, e)
	c.cycle = true
	return nil
}

// Volumes returns the volumes p may see (frameworks: their own) on
// agentID ("" for all), by name.
func (t *Table) Volumes(p Principal, agentID string) []*pb.Volume {
	var out []*pb.Volume
	for _, v := range t.volumes {
		if (agentID == "" || v.GetAgentId() == agentID) && (p.Role != RoleFramework || v.GetOwner() == p.Name) {
			out = append(out, proto.Clone(v).(*pb.Volume))
		}
	}
	slices.SortFunc(out, func(a, b *pb.Volume) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// launchVolumes resolves a Launch's volume mounts in allocation a: a
// persistent volume must be claimed by a; the kernel fills in its role and
// size for the agent. Host volumes are the agent's to check.
func (t *Table) launchVolumes(a *pb.Allocation, ms []*pb.VolumeMount) ([]*pb.VolumeMount, error) {
	out := make([]*pb.VolumeMount, 0, len(ms))
	for _, m := range ms {
		m = proto.Clone(m).(*pb.VolumeMount)
		if !m.GetHost() {
			v := t.volumes[m.GetName()]
			if v == nil || v.GetAllocationId() != a.GetId() {
				return nil, errorf(FailedPrecondition, "volumes: allocation %s does not claim volume %q", a.GetId(), m.GetName())
			}
			m.Role, m.SizeBytes = v.GetRole(), v.GetSizeBytes()
		}
		out = append(out, m)
	}
	return out, nil
}

// adoptVolumes reconciles the volumes agent id reports with the ones the
// kernel records there. Only those are kept (the kernel's record, not the
// report, says their owner, role and size); every other one is returned
// for the agent to delete: one destroyed while it was away, and one the
// kernel never recorded on this agent, whose owner it cannot know (an
// agent cannot create volumes, charge disk or name owners by reporting
// them, and a later volume of that name never finds another's data).
// Tombstones of this agent's volumes it no longer reports are dropped.
func (t *Table) adoptVolumes(id string, vs []*pb.Volume, c *Changes) (destroy []string) {
	reported := map[string]bool{}
	for _, rv := range vs {
		name := rv.GetName()
		if reported[name] || !volumeNameRE.MatchString(name) {
			continue // not a name the agent could have got from the kernel
		}
		reported[name] = true
		if v := t.volumes[name]; v != nil && v.GetAgentId() == id {
			continue
		}
		destroy = append(destroy, name)
	}
	for name, tomb := range t.destroyed {
		if tomb.GetAgentId() == id && !reported[name] {
			delete(t.destroyed, name)
			c.DestroyedVolumes[name] = nil
		}
	}
	slices.Sort(destroy)
	return destroy
}
