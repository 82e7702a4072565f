package dinit

import (
	"context"
	"fmt"
	"sort"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Agent maintenance (docs/maintenance.md). When an agent drains
// (AGENT_DRAINING), every instance of the spec's version on it is
// replaced like an old instance in a rolling upgrade: a replacement of the
// same number starts elsewhere (the kernel places nothing on a draining
// agent), and the instance on the draining agent is stopped only once
// enough replacements are ready for the upgrade strategy's
// minimumHealthCapacity, within its maximumOverCapacity. Instances with
// persistent volumes stay (their data is on that agent). On
// AGENT_UNDRAINED nothing moves back.

// drainSet is the agents the controller knows to be draining, kept from
// ListAgents (Feed, at start and after a resync) and from the agent
// events the cache passes on. Controller.mu guards it.
type drainSet struct {
	agents map[string]bool
}

// noteAgent records a's draining state as an event or a list shows it,
// and reports whether it changed.
func (c *Controller) noteAgent(a *pb.Agent) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drains.agents == nil {
		c.drains.agents = map[string]bool{}
	}
	was := c.drains.agents[a.GetId()]
	if a.GetDraining() {
		c.drains.agents[a.GetId()] = true
	} else {
		delete(c.drains.agents, a.GetId())
	}
	return was != a.GetDraining()
}

// draining returns a copy of the draining agents (nil for none).
func (c *Controller) draining() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.drains.agents) == 0 {
		return nil
	}
	out := make(map[string]bool, len(c.drains.agents))
	for id := range c.drains.agents {
		out[id] = true
	}
	return out
}

// refreshDrains replaces the draining agents with those ListAgents shows.
func (c *Controller) refreshDrains(ctx context.Context) error {
	res, err := c.Kernel.ListAgents(ctx, &pb.ListAgentsRequest{})
	if err != nil {
		return fmt.Errorf("list agents: %w", err)
	}
	set := map[string]bool{}
	for _, a := range res.GetAgents() {
		if a.GetDraining() {
			set[a.GetId()] = true
		}
	}
	c.mu.Lock()
	c.drains.agents = set
	c.mu.Unlock()
	return nil
}

// drainKeys updates the draining agents from an agent event and returns
// the services with instances on the agent when its draining state
// changed (they have work to move), sorted.
func (c *Controller) drainKeys(ev *pb.Event) []string {
	a := ev.GetAgent()
	if a == nil || !c.noteAgent(a) {
		return nil
	}
	set := map[string]bool{}
	for _, al := range c.Cache.Allocations() {
		if s := ServiceOf(al.GetLabels()); s != "" && al.GetAgentId() == a.GetId() {
			set[s] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// splitDraining splits a service's instances of the spec's version into
// those that stay and those leaving a draining agent (v.Draining). An
// instance leaves only if the spec claims no persistent volume: its data
// cannot move with it.
func splitDraining(s *Service, v View, news []*Instance) (stay, leaving []*Instance) {
	if len(v.Draining) == 0 || s.persistent() {
		return news, nil
	}
	for _, in := range news {
		if in.granted() && v.Draining[in.Alloc.GetAgentId()] {
			leaving = append(leaving, in)
		} else {
			stay = append(stay, in)
		}
	}
	return stay, leaving
}

// persistent reports whether the spec claims a persistent volume.
func (s *Service) persistent() bool {
	for _, vol := range s.Volumes {
		if !vol.Host && vol.Size > 0 {
			return true
		}
	}
	return false
}

// drainReasons gives the kills of instances leaving a draining agent
// their own reason.
func drainReasons(ks []Kill, leaving []*Instance) []Kill {
	if len(leaving) == 0 {
		return ks
	}
	agent := map[string]string{}
	for _, in := range leaving {
		agent[in.Alloc.GetId()] = in.Alloc.GetAgentId()
	}
	for i, k := range ks {
		if a, ok := agent[k.ID]; ok {
			ks[i].Reason = "dcos init: agent " + a + " is draining; replaced elsewhere"
		}
	}
	return ks
}
