package kernel

// Role is what a principal may do.
type Role int

// Roles. Operators may do anything; a framework sees and revokes only what
// it owns; an agent makes agent calls; an agent join token may only
// exchange itself for an agent token of its own (AgentJoin).
const (
	RoleOperator Role = iota + 1
	RoleFramework
	RoleAgent
	RoleAgentJoin
)

func (r Role) String() string {
	switch r {
	case RoleOperator:
		return "operator"
	case RoleFramework:
		return "framework"
	case RoleAgent:
		return "agent"
	case RoleAgentJoin:
		return "agent-join"
	}
	return "unknown"
}

// ParseRole parses "operator", "framework", "agent" or "agent-join".
func ParseRole(s string) (Role, bool) {
	for _, r := range []Role{RoleOperator, RoleFramework, RoleAgent, RoleAgentJoin} {
		if r.String() == s {
			return r, true
		}
	}
	return 0, false
}

// Principal is an authenticated caller. Name is the owner recorded on what
// it allocates.
type Principal struct {
	Name string
	Role Role
}

// owns reports whether p may see and act on something owned by owner.
func (p Principal) owns(owner string) bool {
	return p.Role == RoleOperator || (p.Role == RoleFramework && p.Name == owner)
}
