package policytest

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/policy"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Snapshot returns the kernel snapshot that b stands for, so that a
// policy can be run through the wasm host (which takes a
// *kernel.Snapshot) on the same cluster as natively: agents keep their
// order, ids, labels and resources; requests keep their order, their
// role becomes the role's name ("" for policy.NoRole), their group a
// RequestID ("g<group>") and their constraints *pb.Constraint; roles and
// granted allocations keep their order. Request ids are "r-<index>",
// allocation ids "a-<index>".
//
// The host converts it back into a batch equal to Normalize(b).
func Snapshot(b *policy.Batch) *kernel.Snapshot {
	roleName := func(r uint32) string {
		if r == policy.NoRole {
			return ""
		}
		return b.Roles[r].Name
	}
	s := &kernel.Snapshot{Seed: b.Seed}
	s.Agents = make([]kernel.AgentInfo, len(b.Agents))
	for i, a := range b.Agents {
		var labels map[string]string
		if len(a.Labels) > 0 {
			labels = make(map[string]string, len(a.Labels))
			for _, l := range a.Labels {
				labels[l.Key] = l.Value
			}
		}
		s.Agents[i] = kernel.AgentInfo{ID: a.ID, Labels: labels, Total: res(a.Total), Free: res(a.Free)}
	}
	s.Requests = make([]kernel.Request, len(b.Requests))
	for i, r := range b.Requests {
		var cs []*pb.Constraint
		for _, c := range r.Constraints {
			cs = append(cs, &pb.Constraint{Op: pb.Constraint_Op(c.Op), Label: c.Label, Values: slices.Clone(c.Values)})
		}
		s.Requests[i] = kernel.Request{
			ID: fmt.Sprintf("r-%d", i), RequestID: fmt.Sprintf("g%d", r.Group), Owner: "test",
			Role: roleName(r.Role), Priority: r.Priority, Resources: res(r.Resources), Constraints: cs,
			GangMin: int32(r.GangMin),
		}
	}
	s.Roles = make([]kernel.RoleInfo, len(b.Roles))
	for i, r := range b.Roles {
		s.Roles[i] = kernel.RoleInfo{Name: r.Name, Weight: r.Weight, Usage: res(r.Usage), Quota: res(r.Quota)}
	}
	s.Allocations = make([]kernel.Granted, len(b.Allocations))
	for i, g := range b.Allocations {
		s.Allocations[i] = kernel.Granted{
			ID: fmt.Sprintf("a-%d", i), Agent: int(g.Agent), Owner: "test",
			Role: roleName(g.Role), Priority: g.Priority, Resources: res(g.Resources),
		}
	}
	return s
}

// Normalize returns a copy of b as the wasm host would send it after a
// round trip through Snapshot: each agent's labels sorted by key, and
// groups renumbered from 0 in order of first appearance (Cluster numbers
// them in the order added, before sorting by priority). A native run on
// Normalize(b) sees exactly what the module sees.
func Normalize(b *policy.Batch) *policy.Batch {
	out := Clone(b)
	for i := range out.Agents {
		slices.SortFunc(out.Agents[i].Labels, func(x, y policy.Label) int { return cmp.Compare(x.Key, y.Key) })
	}
	groups := map[uint32]uint32{}
	for i := range out.Requests {
		g, ok := groups[out.Requests[i].Group]
		if !ok {
			g = uint32(len(groups))
			groups[out.Requests[i].Group] = g
		}
		out.Requests[i].Group = g
	}
	return out
}

// KernelDecision maps a policy's decision to the kernel's form, as the
// wasm host does: placements and revocations in order, and the requests
// unplaced with verdict Never (NotNow is dropped: it is the default).
func KernelDecision(d *policy.Decision) *kernel.Decision {
	out := &kernel.Decision{}
	for _, p := range d.Placements {
		out.Placements = append(out.Placements, kernel.Placement{Request: int(p.Request), Agent: int(p.Agent)})
	}
	for _, r := range d.Revocations {
		out.Revocations = append(out.Revocations, int(r))
	}
	for _, u := range d.Unplaced {
		if u.Verdict == policy.Never {
			out.Never = append(out.Never, int(u.Request))
		}
	}
	return out
}

// DiffDecisions describes how two kernel decisions differ (placements,
// revocations and Never lists, in order; nil and empty alike), or returns
// "" when they say the same.
func DiffDecisions(got, want *kernel.Decision) string {
	var diffs []string
	if !slices.Equal(got.Placements, want.Placements) {
		diffs = append(diffs, fmt.Sprintf("placements %v, want %v", got.Placements, want.Placements))
	}
	if !slices.Equal(got.Revocations, want.Revocations) {
		diffs = append(diffs, fmt.Sprintf("revocations %v, want %v", got.Revocations, want.Revocations))
	}
	if !slices.Equal(got.Never, want.Never) {
		diffs = append(diffs, fmt.Sprintf("never %v, want %v", got.Never, want.Never))
	}
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprint(diffs)
}

func res(r policy.Resources) kernel.Resources {
	return kernel.Resources{MilliCPU: r.MilliCPU, Mem: r.Mem, Disk: r.Disk, Ports: r.Ports}
}
