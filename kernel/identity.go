package kernel

import (
	"fmt"
	"net/netip"
	"path"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Agent identity. An agent token (a Principal with RoleAgent) is bound to
// the agent id it first registered with: the kernel records the token's
// name as Agent.principal, persisted with the agent. From then on only
// that token may register, heartbeat and report for the agent, and it may
// not register a second agent; its reads show only its own agent's
// allocations and tasks (ListAgents stays whole: the overlay needs every
// peer's address). Operators may make any agent call for any agent. An
// agent is the authority on its own hardware (resources, host ports,
// volumes it still has), so binding is what stops a token from lying about
// another agent; what it reports about its tasks is checked against what
// the kernel assigned them (checkReport).

// boundAgent returns the agent id p is bound to ("" for none, and for
// principals that are not agents).
func (t *Table) boundAgent(p Principal) string {
	if p.Role != RoleAgent {
		return ""
	}
	return t.bound[p.Name]
}

// bind records that agent token name speaks for agent g.
func (t *Table) bind(g *pb.Agent, name string) {
	g.Principal = name
	t.bound[name] = g.GetId()
}

// checkRegister checks that p may register as agent id ("" for a new
// agent). Operators may register any known agent or a new one. An agent
// token registers a new agent only while it is bound to none (Register
// turns a bound token's empty id into its agent's), and a known
// one only if it is bound to it or the agent is bound to no token yet
// (one saved before tokens were bound, or registered by an operator). Ids
// the kernel never issued are NotFound: a new agent registers with an
// empty id.
func (t *Table) checkRegister(p Principal, id string) error {
	g := t.agents[id]
	if id != "" && g == nil {
		return errorf(NotFound, "agent_id: no agent %q: the kernel never issued that id; a new agent registers with an empty agent_id", clip(id))
	}
	if p.Role != RoleAgent {
		return nil
	}
	mine := t.bound[p.Name]
	switch {
	case g != nil && g.GetPrincipal() != "" && g.GetPrincipal() != p.Name:
		return errorf(PermissionDenied, "agent_id: agent %q belongs to token %q, not %q", id, g.GetPrincipal(), p.Name)
	case g != nil && g.GetPrincipal() == "" && mine != "" && mine != id:
		return errorf(PermissionDenied, "agent_id: token %q is bound to agent %q, not %q; give each agent its own token", p.Name, mine, id)
	}
	return nil
}

// checkAgentCall checks that p may heartbeat or report for agent id and
// returns the agent: NotFound for an unknown agent, PermissionDenied for
// an agent bound to another token, FailedPrecondition for one bound to
// none yet (it must register again, which binds it).
func (t *Table) checkAgentCall(p Principal, id string) (*pb.Agent, error) {
	g := t.agents[id]
	if g == nil {
		return nil, errorf(NotFound, "agent_id: no agent %q; register first", clip(id))
	}
	if p.Role != RoleAgent {
		return g, nil
	}
	switch g.GetPrincipal() {
	case p.Name:
		return g, nil
	case "":
		return nil, errorf(FailedPrecondition, "agent_id: agent %q is bound to no token yet; register again to bind it to %q", id, p.Name)
	}
	return nil, errorf(PermissionDenied, "agent_id: agent %q belongs to token %q, not %q", id, g.GetPrincipal(), p.Name)
}

// checkReport checks the values a report about task k carries against
// what the kernel knows, before anything is applied. They are
// InvalidArgument, which an agent drops instead of retrying:
//   - ip (applied by STARTING and RUNNING reports) must be in the subnet
//     of the task's agent;
//   - ports (likewise) may only be the host ports the kernel assigned the
//     task, with their protocols: an agent reports the mappings it set up,
//     it does not choose them;
//   - sandbox must be an absolute clean path, and once set it stays: a
//     report with another one is refused.
func (t *Table) checkReport(k *pb.Task, r *pb.ReportTaskStatusRequest) error {
	if s := r.GetSandbox(); s != "" {
		if !path.IsAbs(s) || path.Clean(s) != s {
			return fieldError("sandbox", "want an absolute clean path, got %q", clip(s))
		}
		if k.GetSandbox() != "" && s != k.GetSandbox() {
			return fieldError("sandbox", "task %s's sandbox is %q; an agent sets it once, got %q", k.GetId(), clip(k.GetSandbox()), clip(s))
		}
	}
	if terminal(r.GetState()) {
		return nil // ip and ports are not applied
	}
	if s := r.GetIp(); s != "" {
		ip, err := netip.ParseAddr(s) // validated
		subnet, perr := netip.ParsePrefix(t.agents[k.GetAgentId()].GetSubnet())
		if err != nil || perr != nil || !subnet.Contains(ip) {
			return fieldError("ip", "%s is not in the subnet %q of task %s's agent %s", clip(s), t.agents[k.GetAgentId()].GetSubnet(), k.GetId(), k.GetAgentId())
		}
	}
	assigned := map[hostPort]bool{}
	for _, m := range k.GetPorts() {
		assigned[hostPort{m.GetProtocol(), m.GetHostPort()}] = true
	}
	for i, p := range r.GetPorts() {
		m := portMapping(p)
		if !assigned[hostPort{m.GetProtocol(), m.GetHostPort()}] {
			return fieldError(fmt.Sprintf("ports[%d].host_port", i), "%d/%s is not a host port the kernel assigned task %s", m.GetHostPort(), m.GetProtocol(), k.GetId())
		}
	}
	return nil
}

// hostPort is a host port with its protocol.
type hostPort struct {
	protocol string
	port     uint32
}
