package kernel

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Host ports, the Mesos way: each agent registers a range of host ports
// (RegisterAgentRequest.host_ports, e.g. 31000-32000) and its total
// resources.ports is the range's size. An allocation asking for
// resources.ports = n gets n distinct ports of its agent's range when it is
// granted (Allocation.host_ports), held until it ends. Ports are picked
// round-robin: the free ones after the last port picked on the agent
// first, so a port just freed is reused last (a revoked task may still be
// in its kill grace period, holding its forwarding on the node).
// Its tasks publish them: a PortRequest with host_port 0 takes the next
// unused one. A task may also name a static port outside the range, which
// it holds while it lives; two live tasks on an agent never hold one port.

// PortRange is an inclusive range of host ports; the zero value is empty.
type PortRange struct{ First, Last uint32 }

// Size is the number of ports in r.
func (r PortRange) Size() int64 {
	if r.First == 0 {
		return 0
	}
	return int64(r.Last-r.First) + 1
}

// Contains reports whether port p is in r.
func (r PortRange) Contains(p uint32) bool { return r.First != 0 && p >= r.First && p <= r.Last }

// String is "FIRST-LAST", or "" for the empty range.
func (r PortRange) String() string {
	if r.First == 0 {
		return ""
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// ParsePortRange parses "FIRST-LAST" with 1 <= FIRST <= LAST <= 65535 (a
// single port "P" is P-P); "" and "none" are the empty range.
func ParsePortRange(s string) (PortRange, error) {
	if s == "" || s == "none" {
		return PortRange{}, nil
	}
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	first, err1 := strconv.ParseUint(a, 10, 16)
	last, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil || first == 0 || first > last {
		return PortRange{}, fmt.Errorf("want FIRST-LAST with 1 <= FIRST <= LAST <= 65535 (or none), got %q", clip(s))
	}
	return PortRange{uint32(first), uint32(last)}, nil
}

// agentPorts returns agent id's range (empty if it registered none).
func (t *Table) agentPorts(id string) PortRange {
	r, _ := ParsePortRange(t.agents[id].GetHostPorts()) // validated at registration
	return r
}

// holdPort records that holder (an allocation or task id) holds port on
// agent.
func (t *Table) holdPort(agent string, port uint32, holder string) {
	m := t.ports[agent]
	if m == nil {
		m = map[uint32]string{}
		t.ports[agent] = m
	}
	m[port] = holder
}

// pickPorts reserves n free ports of agent's range for allocation id,
// starting after the last port picked there (wrapping around), and
// returns them in ascending order. It returns fewer only if the range has
// fewer free, which the resource accounting (total.ports -
// allocated.ports) rules out.
func (t *Table) pickPorts(agent, id string, n int64) []uint32 {
	r := t.agentPorts(agent)
	if n <= 0 || r.Size() == 0 {
		return nil
	}
	out := make([]uint32, 0, n)
	start := t.portCursor[agent]
	if !r.Contains(start) {
		start = r.First
	}
	p := start
	for range r.Size() {
		if _, held := t.ports[agent][p]; !held {
			out = append(out, p)
			if int64(len(out)) == n {
				break
			}
		}
		if p++; p > r.Last {
			p = r.First
		}
	}
	for _, p := range out {
		t.holdPort(agent, p, id)
	}
	if len(out) > 0 {
		t.portCursor[agent] = out[len(out)-1] + 1
	}
	slices.Sort(out)
	return out
}

// releasePorts frees every port holder holds on agent.
func (t *Table) releasePorts(agent, holder string) {
	m := t.ports[agent]
	maps.DeleteFunc(m, func(_ uint32, h string) bool { return h == holder })
	if len(m) == 0 {
		delete(t.ports, agent)
	}
}

// assignPorts resolves the host ports of a task launched in allocation a
// (see PortRequest): it returns the mappings with every host port set and
// the static ports among them (outside the allocation's host ports), or a
// FailedPrecondition error saying which port is not available and why. It
// changes nothing.
func (t *Table) assignPorts(a *pb.Allocation, network string, reqs []*pb.PortRequest) (ms []*pb.PortMapping, static []uint32, err error) {
	if len(reqs) == 0 {
		return nil, nil, nil
	}
	agent := a.GetAgentId()
	mine := map[uint32]bool{}
	for _, p := range a.GetHostPorts() {
		mine[p] = true
	}
	used := map[uint32]string{} // allocation ports its live tasks publish → task
	for id := range t.allocTasks[a.GetId()] {
		if k := t.tasks[id]; !terminal(k.GetState()) {
			for _, m := range k.GetPorts() {
				if mine[m.GetHostPort()] {
					used[m.GetHostPort()] = id
				}
			}
		}
	}
	taken := map[uint32]bool{} // by this task
	ms = make([]*pb.PortMapping, len(reqs))
	var dynamic []int
	for i, r := range reqs {
		m := portMapping(r)
		ms[i] = m
		if network == NetworkHost && m.HostPort == 0 {
			m.HostPort = m.ContainerPort // a host task listening on a given port holds that port
		}
		h := m.HostPort
		if h == 0 {
			dynamic = append(dynamic, i)
			continue
		}
		f := fmt.Sprintf("ports[%d].host_port", i)
		switch rng := t.agentPorts(agent); {
		case mine[h]:
			if k := used[h]; k != "" {
				return nil, nil, errorf(FailedPrecondition, "%s: host port %d of allocation %s is already taken by task %s", f, h, a.GetId(), k)
			}
		case rng.Contains(h):
			return nil, nil, errorf(FailedPrecondition, "%s: host port %d is in agent %s's range %v that the kernel hands out, and not one of allocation %s's host ports %v; ask for host_port 0 (and resources.ports) or a port outside the range",
				f, h, agent, rng, a.GetId(), a.GetHostPorts())
		default:
			if k := t.ports[agent][h]; k != "" {
				return nil, nil, errorf(FailedPrecondition, "%s: host port %d on agent %s is already taken by task %s", f, h, agent, k)
			}
			if !taken[h] {
				static = append(static, h)
			}
		}
		taken[h] = true
	}
	var free []uint32
	for _, p := range a.GetHostPorts() {
		if used[p] == "" && !taken[p] {
			free = append(free, p)
		}
	}
	if len(free) < len(dynamic) {
		return nil, nil, errorf(FailedPrecondition, "ports: the task asks for %d host %s (host_port 0) but allocation %s has %d unused of its %d (resources.ports); allocate with more ports",
			len(dynamic), plural(len(dynamic), "port"), a.GetId(), len(free), len(a.GetHostPorts()))
	}
	for j, i := range dynamic {
		ms[i].HostPort = free[j]
	}
	if network == NetworkHost {
		for _, m := range ms {
			m.ContainerPort = m.HostPort // it listens on the host port
		}
	}
	return ms, static, nil
}

// restorePorts rebuilds the held ports from granted allocations and live
// tasks' static ports, and starts each agent's cursor after the highest
// port held there by the most recent allocation.
func (t *Table) restorePorts() {
	last := map[string]uint64{} // agent → id sequence of its latest allocation with ports
	for _, a := range t.allocs {
		if a.GetState() == pb.AllocationState_ALLOCATION_STATE_GRANTED {
			for _, p := range a.GetHostPorts() {
				t.holdPort(a.GetAgentId(), p, a.GetId())
			}
			if hp := a.GetHostPorts(); len(hp) > 0 && idSeq(a.GetId(), "a-") >= last[a.GetAgentId()] {
				last[a.GetAgentId()] = idSeq(a.GetId(), "a-")
				t.portCursor[a.GetAgentId()] = slices.Max(hp) + 1
			}
		}
	}
	for _, k := range t.tasks {
		if terminal(k.GetState()) {
			continue
		}
		mine := t.allocs[k.GetAllocationId()].GetHostPorts()
		for _, m := range k.GetPorts() {
			if h := m.GetHostPort(); h != 0 && !slices.Contains(mine, h) {
				t.holdPort(k.GetAgentId(), h, k.GetId())
			}
		}
	}
}

// releaseTaskPorts frees the static ports task k holds.
func (t *Table) releaseTaskPorts(k *pb.Task) {
	if len(k.GetPorts()) > 0 {
		t.releasePorts(k.GetAgentId(), k.GetId())
	}
}
