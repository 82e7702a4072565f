// Package policytest builds batches for policy tests and checks decisions
// against them: hand-made clusters (Cluster), random ones (Random), the
// 10,000-agent benchmark batch (Big), and the invariants every built-in
// policy keeps (Check, Properties). Both the native tests and the tests
// that run the same modules in wazero use it; Snapshot turns a batch into
// the kernel snapshot the wasm host takes.
//
// It is test support only: nothing in a policy module imports it.
package policytest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dcos-kernel/dcos/sdk/policy"
)

// Units for building resources.
const (
	MiB = int64(1) << 20
	GiB = int64(1) << 30
)

// R returns milli millicores and mem bytes (use MiB and GiB).
func R(milli, mem int64) policy.Resources { return policy.Resources{MilliCPU: milli, Mem: mem} }

// RP is R with ports host ports.
func RP(milli, mem, ports int64) policy.Resources {
	return policy.Resources{MilliCPU: milli, Mem: mem, Ports: ports}
}

// Cluster builds a hand-made batch. Agents are named agent-0, agent-1, …
// in the order added; requests keep the order added within a priority
// (Batch sorts them as the kernel does).
type Cluster struct {
	b     policy.Batch
	group uint32
}

// NewCluster returns an empty cluster.
func NewCluster() *Cluster { return &Cluster{} }

// Agent adds an agent with total (all free) and labels written "key=value",
// and returns its index.
func (c *Cluster) Agent(total policy.Resources, labels ...string) int {
	a := policy.Agent{ID: fmt.Sprintf("agent-%d", len(c.b.Agents)), Total: total, Free: total}
	for _, l := range labels {
		k, v, _ := strings.Cut(l, "=")
		a.Labels = append(a.Labels, policy.Label{Key: k, Value: v})
	}
	c.b.Agents = append(c.b.Agents, a)
	return len(c.b.Agents) - 1
}

// Agents adds n agents alike and returns the index of the first.
func (c *Cluster) Agents(n int, total policy.Resources, labels ...string) int {
	first := len(c.b.Agents)
	for range n {
		c.Agent(total, labels...)
	}
	return first
}

// Use takes res from agent a's free resources without an allocation (held
// by something the policy cannot preempt).
func (c *Cluster) Use(a int, res policy.Resources) {
	c.b.Agents[a].Free = c.b.Agents[a].Free.Sub(res)
}

// Role adds a role and returns its index. A zero quota dimension is no cap.
func (c *Cluster) Role(name string, weight float64, quota policy.Resources) uint32 {
	c.b.Roles = append(c.b.Roles, policy.Role{Name: name, Weight: weight, Quota: quota})
	return uint32(len(c.b.Roles) - 1)
}

// Grant adds a granted allocation of res on agent a for role (or
// policy.NoRole) at priority prio: it takes res from a's free resources,
// adds it to the role's usage (or to NoRoleUsage), and returns the
// allocation's index.
func (c *Cluster) Grant(a int, role uint32, prio int32, res policy.Resources) uint32 {
	c.Use(a, res)
	if role != policy.NoRole {
		c.b.Roles[role].Usage = c.b.Roles[role].Usage.Add(res)
	} else {
		c.b.NoRoleUsage = c.b.NoRoleUsage.Add(res)
	}
	c.b.Allocations = append(c.b.Allocations, policy.Allocation{Agent: uint32(a), Role: role, Priority: prio, Resources: res})
	return uint32(len(c.b.Allocations) - 1)
}

// Req describes the requests of one Allocate call.
type Req struct {
	N           int // instances; 1 when 0
	Resources   policy.Resources
	Priority    int32
	Role        uint32 // index, or policy.NoRole; set Roled to use it
	Roled       bool   // false: NoRole
	Constraints []policy.Constraint
	GangMin     uint32 // the group is a gang of this minimum; 0: not a gang
}

// Request adds the instances of one Allocate call (one group) and returns
// the group.
func (c *Cluster) Request(r Req) uint32 {
	g := c.group
	c.group++
	role := policy.NoRole
	if r.Roled {
		role = r.Role
	}
	for range max(r.N, 1) {
		c.b.Requests = append(c.b.Requests, policy.Request{
			Resources: r.Resources, Priority: r.Priority, Role: role, Group: g, Constraints: r.Constraints, GangMin: r.GangMin,
		})
	}
	return g
}

// Equals, NotEquals and In build constraints.
func Equals(label, value string) policy.Constraint {
	return policy.Constraint{Op: policy.OpEquals, Label: label, Values: []string{value}}
}

// NotEquals builds a NotEquals constraint.
func NotEquals(label, value string) policy.Constraint {
	return policy.Constraint{Op: policy.OpNotEquals, Label: label, Values: []string{value}}
}

// In builds an In constraint.
func In(label string, values ...string) policy.Constraint {
	return policy.Constraint{Op: policy.OpIn, Label: label, Values: values}
}

// Batch returns the batch built so far, requests sorted by priority
// (highest first) then by the order added, as the kernel sends them. It
// returns a deep copy: the cluster may be extended and batched again.
func (c *Cluster) Batch() *policy.Batch {
	b := Clone(&c.b)
	slices.SortStableFunc(b.Requests, func(x, y policy.Request) int { return int(y.Priority) - int(x.Priority) })
	return b
}

// Clone returns a deep copy of b.
func Clone(b *policy.Batch) *policy.Batch {
	out := &policy.Batch{Seed: b.Seed, Roles: slices.Clone(b.Roles), Allocations: slices.Clone(b.Allocations),
		NoRoleUsage: b.NoRoleUsage, AgentsUnchanged: b.AgentsUnchanged}
	out.Agents = make([]policy.Agent, len(b.Agents))
	for i, a := range b.Agents {
		a.Labels = slices.Clone(a.Labels)
		out.Agents[i] = a
	}
	out.Requests = make([]policy.Request, len(b.Requests))
	for i, r := range b.Requests {
		r.Constraints = slices.Clone(r.Constraints)
		for j := range r.Constraints {
			r.Constraints[j].Values = slices.Clone(r.Constraints[j].Values)
		}
		out.Requests[i] = r
	}
	return out
}

// PlacedOn returns, per agent, how many requests d places there.
func PlacedOn(b *policy.Batch, d *policy.Decision) []int {
	n := make([]int, len(b.Agents))
	for _, p := range d.Placements {
		n[p.Agent]++
	}
	return n
}

// Verdicts returns each request's fate in d: 0 when placed, else its
// verdict (policy.NotNow or policy.Never); -1 when d says nothing of it.
func Verdicts(b *policy.Batch, d *policy.Decision) []int {
	v := make([]int, len(b.Requests))
	for i := range v {
		v[i] = -1
	}
	for _, p := range d.Placements {
		v[p.Request] = 0
	}
	for _, u := range d.Unplaced {
		v[u.Request] = int(u.Verdict)
	}
	return v
}
