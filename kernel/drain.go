package kernel

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Agent maintenance (docs/maintenance.md), after Mesos maintenance
// windows, `nomad node drain` and `kubectl drain`: a draining agent takes
// no new placements (Snapshot leaves it out), AGENT_DRAINING tells
// frameworks to move their work off it, and at its deadline, if it has
// one, Expire revokes what is left there with reason DrainedReason. It
// stays draining, through restarts, re-registrations and losses, until
// it is undrained.

// DrainedReason is the revoke reason of the allocations a drain deadline
// takes back.
const DrainedReason = "drained"

// MaxDrainDeadline bounds AgentDrainRequest.deadline.
const MaxDrainDeadline = 365 * 24 * time.Hour

// ValidateAgentDrain checks an AgentDrain request: an agent id, and a
// deadline in [0, MaxDrainDeadline] given only when draining.
func ValidateAgentDrain(r *pb.AgentDrainRequest) error {
	if err := validateName("agent_id", r.GetAgentId(), true); err != nil {
		return err
	}
	d := r.GetDeadline()
	if d == nil {
		return nil
	}
	if r.GetUndrain() {
		return fieldError("deadline", "undrain takes no deadline")
	}
	if err := d.CheckValid(); err != nil {
		return fieldError("deadline", "%v", err)
	}
	if v := d.AsDuration(); v < 0 || v > MaxDrainDeadline {
		return fieldError("deadline", "want 0 to %v, got %v", MaxDrainDeadline, v)
	}
	return nil
}

// AgentDrain starts (or, with req.undrain, ends) the maintenance of an
// agent; see Table.Drain. Operators only (PermissionDenied otherwise); an
// unknown agent is NotFound. It answers the agent as it is after the
// call and the revision of the commit (the current revision when nothing
// changed).
func (k *Kernel) AgentDrain(ctx context.Context, p Principal, req *pb.AgentDrainRequest) (*pb.AgentDrainResponse, error) {
	if p.Role != RoleOperator {
		return nil, errorf(PermissionDenied, "agent drain: operators only, not %s %q", p.Role, p.Name)
	}
	if err := ValidateAgentDrain(req); err != nil {
		return nil, err
	}
	resp := &pb.AgentDrainResponse{}
	rev, err := k.do(ctx, func(t *Table, c *Changes, now time.Time) error {
		g, err := t.Drain(req.GetAgentId(), req.GetDeadline().AsDuration(), req.GetUndrain(), now, c)
		if err == nil {
			resp.Agent = proto.Clone(g).(*pb.Agent)
		}
		return err
	}, nil)
	if err != nil {
		return nil, err
	}
	if rev == 0 {
		rev = k.Revision()
	}
	resp.Revision = rev
	return resp, nil
}

// Drain sets agent id draining, with a deadline of now+deadline (none
// when deadline is 0), and records an AGENT_DRAINING event; with undrain
// it clears both and records AGENT_UNDRAINED. It is idempotent: draining
// a draining agent again only moves its deadline (and records
// AGENT_DRAINING again if it moved), undraining an agent that is not
// draining changes nothing. The agent is returned live (callers clone
// it). An unknown agent is NotFound.
func (t *Table) Drain(id string, deadline time.Duration, undrain bool, now time.Time, c *Changes) (*pb.Agent, error) {
	g := t.agents[id]
	if g == nil {
		return nil, errorf(NotFound, "agent_id: no agent %q", id)
	}
	var kind pb.EventKind
	switch {
	case undrain && !g.GetDraining():
		return g, nil
	case undrain:
		g.Draining, g.DrainDeadline = false, nil
		kind = pb.EventKind_EVENT_KIND_AGENT_UNDRAINED
		c.cycle = true // pending requests may fit there now
	default:
		var until *timestamppb.Timestamp
		if deadline > 0 {
			until = timestamppb.New(now.Add(deadline))
		}
		if g.GetDraining() && proto.Equal(g.GetDrainDeadline(), until) {
			return g, nil
		}
		g.Draining, g.DrainDeadline = true, until
		kind = pb.EventKind_EVENT_KIND_AGENT_DRAINING
	}
	c.Agents[id] = g
	e := event(kind, now, "")
	e.Agent = proto.Clone(g).(*pb.Agent)
	c.Events = append(c.Events, e)
	return g, nil
}

// placeable reports whether the cycle may place on g: it is up and not
// draining.
func placeable(g *pb.Agent) bool {
	return g.GetState() == pb.AgentState_AGENT_STATE_UP && !g.GetDraining()
}

// expireDrains revokes, with reason DrainedReason, the allocations left
// on draining agents whose deadline has passed. The agents stay draining.
func (t *Table) expireDrains(now time.Time, c *Changes) {
	var due map[string]bool
	for id, g := range t.agents {
		if g.GetDraining() && g.GetDrainDeadline() != nil && !now.Before(g.GetDrainDeadline().AsTime()) {
			if due == nil {
				due = map[string]bool{}
			}
			due[id] = true
		}
	}
	if due == nil {
		return
	}
	for _, a := range t.allocs {
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED && due[a.GetAgentId()] {
			t.revokeAllocation(a, DrainedReason, now, c)
		}
	}
}
