package wasm

import (
	"cmp"
	"slices"

	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

// converter turns a kernel snapshot into a policy batch, reusing its
// storage between calls (one per instance). It keeps the agents it
// converted last: an agent whose id, labels and totals are unchanged is
// not converted again (only its free resources are copied), and batch
// reports whether that held for every agent, so that the encoder may reuse
// its encoding of them too.
type converter struct {
	b      policy.Batch
	labels []policy.Label
	cons   []policy.Constraint
	vals   []string
	roles  map[string]uint32
	groups map[string]uint32
	// haveAgents: b.Agents holds the agents of the previous call.
	haveAgents bool
}

// batch converts s: role names become indices into Roles (NoRole when
// empty or unlisted), labels are sorted by key, constraints keep their
// order, and requests sharing a RequestID share a Group numbered in order
// of first appearance. Allocations are left out unless want has
// WantAllocations; NoRoleUsage sums those without a role either way.
// sameAgents reports whether the agents are those of the previous call but
// for their free resources. The result is valid until the next call.
func (c *converter) batch(s *kernel.Snapshot, want policy.Wants) (b *policy.Batch, sameAgents bool) {
	if c.roles == nil {
		c.roles, c.groups = map[string]uint32{}, map[string]uint32{}
	}
	clear(c.roles)
	clear(c.groups)
	b = &c.b
	b.Seed = s.Seed

	b.Roles = resize(b.Roles, len(s.Roles))
	for i, r := range s.Roles {
		c.roles[r.Name] = uint32(i)
		b.Roles[i] = policy.Role{Name: r.Name, Weight: r.Weight, Usage: res(r.Usage), Quota: res(r.Quota)}
	}
	role := func(name string) uint32 {
		if i, ok := c.roles[name]; ok && name != "" {
			return i
		}
		return policy.NoRole
	}

	sameAgents = c.sameAgents(s.Agents)
	if !sameAgents {
		c.convertAgents(s.Agents)
	}

	nc, nv := 0, 0
	for i := range s.Requests {
		nc += len(s.Requests[i].Constraints)
		for _, k := range s.Requests[i].Constraints {
			nv += len(k.GetValues())
		}
	}
	c.cons, c.vals = resize(c.cons, nc)[:0], resize(c.vals, nv)[:0]
	b.Requests = resize(b.Requests, len(s.Requests))
	for i := range s.Requests {
		r := &s.Requests[i]
		g, ok := c.groups[r.RequestID]
		if !ok {
			g = uint32(len(c.groups))
			c.groups[r.RequestID] = g
		}
		start := len(c.cons)
		for _, k := range r.Constraints {
			vs := len(c.vals)
			c.vals = append(c.vals, k.GetValues()...)
			c.cons = append(c.cons, policy.Constraint{Op: policy.Op(k.GetOp()), Label: k.GetLabel(), Values: c.vals[vs:len(c.vals):len(c.vals)]})
		}
		var cs []policy.Constraint
		if len(c.cons) > start {
			cs = c.cons[start:len(c.cons):len(c.cons)]
		}
		b.Requests[i] = policy.Request{Resources: res(r.Resources), Priority: r.Priority, Role: role(r.Role), Group: g, GangMin: uint32(max(r.GangMin, 0)), Constraints: cs}
	}

	b.NoRoleUsage = policy.Resources{}
	for i := range s.Allocations {
		if a := &s.Allocations[i]; a.Role == "" {
			b.NoRoleUsage = b.NoRoleUsage.Add(res(a.Resources))
		}
	}
	b.Allocations = b.Allocations[:0]
	if want&policy.WantAllocations != 0 {
		b.Allocations = resize(b.Allocations, len(s.Allocations))
		last, lastRole := "", policy.NoRole
		for i := range s.Allocations {
			a := &s.Allocations[i]
			if a.Role != last { // allocations come grouped: one map lookup per run of a role
				last, lastRole = a.Role, role(a.Role)
			}
			b.Allocations[i] = policy.Allocation{Agent: uint32(a.Agent), Role: lastRole, Priority: a.Priority, Resources: res(a.Resources)}
		}
	}
	return b, sameAgents
}

// sameAgents reports whether agents are c.b.Agents but for their free
// resources, and if so copies those. Labels are compared by content, not
// by map identity: a caller may change a map in place.
func (c *converter) sameAgents(agents []kernel.AgentInfo) bool {
	if !c.haveAgents || len(agents) != len(c.b.Agents) {
		return false
	}
	for i := range agents {
		a, was := &agents[i], &c.b.Agents[i]
		if a.ID != was.ID || res(a.Total) != was.Total || len(a.Labels) != len(was.Labels) {
			return false
		}
		for _, l := range was.Labels {
			if v, ok := a.Labels[l.Key]; !ok || v != l.Value {
				return false
			}
		}
	}
	for i := range agents {
		c.b.Agents[i].Free = res(agents[i].Free)
	}
	return true
}

// convertAgents converts agents into c.b.Agents, labels sorted by key.
func (c *converter) convertAgents(agents []kernel.AgentInfo) {
	b := &c.b
	n := 0
	for i := range agents {
		n += len(agents[i].Labels)
	}
	c.labels = resize(c.labels, n)[:0]
	b.Agents = resize(b.Agents, len(agents))
	for i := range agents {
		a := &agents[i]
		start := len(c.labels)
		for k, v := range a.Labels {
			c.labels = append(c.labels, policy.Label{Key: k, Value: v})
		}
		ls := c.labels[start:len(c.labels):len(c.labels)]
		slices.SortFunc(ls, func(x, y policy.Label) int { return cmp.Compare(x.Key, y.Key) })
		b.Agents[i] = policy.Agent{ID: a.ID, Labels: ls, Total: res(a.Total), Free: res(a.Free)}
	}
	c.haveAgents = true
}

func res(r kernel.Resources) policy.Resources {
	return policy.Resources{MilliCPU: r.MilliCPU, Mem: r.Mem, Disk: r.Disk, Ports: r.Ports}
}

// resize returns s with length n, reallocating only when it must.
func resize[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// toDecision maps a decoded answer to the kernel's form. Indices are
// passed through unchecked: the kernel validates every one. Unplaced
// requests with verdict Never become Decision.Never; NotNow is the
// default for anything left out and is dropped.
func toDecision(d *policy.Decision) *kernel.Decision {
	out := &kernel.Decision{}
	if len(d.Placements) > 0 {
		out.Placements = make([]kernel.Placement, len(d.Placements))
		for i, pl := range d.Placements {
			out.Placements[i] = kernel.Placement{Request: int(pl.Request), Agent: int(pl.Agent)}
		}
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
