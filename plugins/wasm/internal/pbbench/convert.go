package pbbench

import "github.com/dcos-kernel/dcos/sdk/policy"

// FromBatch renders b as the protobuf message, as a host using protobuf
// would build it for each call.
func FromBatch(b *policy.Batch) *Batch {
	res := func(r policy.Resources) *Resources {
		return &Resources{MilliCpu: r.MilliCPU, Mem: r.Mem, Disk: r.Disk}
	}
	out := &Batch{
		Seed:        b.Seed,
		Agents:      make([]*Agent, len(b.Agents)),
		Requests:    make([]*Request, len(b.Requests)),
		Roles:       make([]*Role, len(b.Roles)),
		Allocations: make([]*Allocation, len(b.Allocations)),
	}
	for i := range b.Agents {
		a := &b.Agents[i]
		labels := make([]*Label, len(a.Labels))
		for j, l := range a.Labels {
			labels[j] = &Label{Key: l.Key, Value: l.Value}
		}
		out.Agents[i] = &Agent{Id: a.ID, Labels: labels, Total: res(a.Total), Free: res(a.Free)}
	}
	for i := range b.Requests {
		r := &b.Requests[i]
		cs := make([]*Constraint, len(r.Constraints))
		for j, c := range r.Constraints {
			cs[j] = &Constraint{Op: uint32(c.Op), Label: c.Label, Values: c.Values}
		}
		out.Requests[i] = &Request{Resources: res(r.Resources), Priority: r.Priority, Role: r.Role, Group: r.Group, Constraints: cs}
	}
	for i, r := range b.Roles {
		out.Roles[i] = &Role{Name: r.Name, Weight: r.Weight, Usage: res(r.Usage), Quota: res(r.Quota)}
	}
	for i, a := range b.Allocations {
		out.Allocations[i] = &Allocation{Agent: a.Agent, Role: a.Role, Priority: a.Priority, Resources: res(a.Resources)}
	}
	return out
}
