package cgroups

import (
	"errors"
	"fmt"

	cg "github.com/dcos-kernel/dcos/internal/cgroups"
	"github.com/dcos-kernel/dcos/internal/cpulist"
)

// cpus returns the CPU list container id's cgroup is confined to for a
// role cpuset want (contract.Resources.CPUSet): want ∩ the CPUs the
// isolator's task parent may use, canonical. "" (every CPU of the parent)
// when want is "", when the host has no cpuset controller (warned once
// per isolator), or when the two do not meet: the task then runs on all
// the agent's CPUs rather than not at all, and a warning naming the
// container, its cpuset and the agent's CPUs goes to the log
// (docs/roles.md). A want that is not a CPU list is an error.
func (i *Isolator) cpus(id, want string) (string, error) {
	set, err := cpulist.Parse(want)
	if err != nil {
		return "", fmt.Errorf("cpuset: %w", err)
	}
	if set.IsEmpty() {
		return "", nil
	}
	allowed, err := i.layout.ParentCPUs(i.parent)
	if errors.Is(err, cg.ErrNotSupported) {
		i.cpusetWarned.Do(func() {
			i.log.Warn("cgroups isolator: no cpuset controller: role cpusets are not enforced, tasks run on every CPU", "error", err)
		})
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cpuset: %w", err)
	}
	in := set.Intersect(allowed)
	if in.IsEmpty() {
		i.log.Warn("cgroups isolator: the task's cpuset and the agent's CPUs do not meet: it runs on every CPU of the agent",
			"container", id, "cpuset", set.String(), "agent_cpus", allowed.String())
		return "", nil
	}
	return in.String(), nil
}
