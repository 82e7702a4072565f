// Package cgroups is the agent's built-in cgroups isolator: it implements
// contract.Isolator by giving each container (the processes of one task) its
// own cgroups with memory, CPU and pids limits, accounting for their use,
// reporting OOM kills and tearing everything down afterwards.
//
// Layout. Task cgroups go beneath Config.Parent, by default "dcos-tasks"
// relative to the isolator process's own cgroup in each hierarchy (an
// absolute Parent such as "/dcos" is used as is). On a hybrid host (this
// project's usual one) limits are written through the v1 memory, cpu
// (+cpuacct) and pids hierarchies and each task also gets a v2 directory in
// the unified hierarchy (for BPF accounting and cgroup.kill); LaunchInfo.Cgroups
// lists all of them. On a v1-only host there is no v2 directory.
//
// Pure cgroup v2. A cgroup other than the root may enable controllers for
// its children only while it holds no process itself. With a relative
// Parent the task cgroups' grandparent is the isolator's own cgroup, which
// holds the agent: so New first moves every process of that own cgroup into
// a leaf child named AgentLeaf ("dcos-agent"), then enables memory, cpu and
// pids down to Parent, as systemd documents for a delegated unit. An own
// cgroup named AgentLeaf (an agent that already did this and re-executed)
// counts as its parent. With an absolute Parent nothing is moved; a cgroup
// on the way that holds processes makes New fail with ErrNotSupported naming
// it. On hybrid and v1 hosts nothing is ever moved (v1 has no such rule and
// no controller is enabled in the hybrid unified hierarchy).
//
// CPUs. A container whose Resources.CPUSet names CPUs (its role's cpuset)
// is confined to CPUSet ∩ the CPUs of the task parent (the agent's own,
// unless an absolute Parent says otherwise) through the cpuset controller:
// the v1 cpuset hierarchy, or cpuset in the v2 subtree_control. When the
// two do not meet the task runs on every CPU of the parent and a warning
// naming the container goes to the log; without a cpuset controller
// cpusets are not enforced and a warning says so once.
//
// OOM kills are event-driven (internal/cgroups Task.WatchOOM: a v1 eventfd
// on memory.oom_control through cgroup.event_control, or inotify on v2
// memory.events), with a re-read every second as a backstop.
//
// It is not a driver: it starts no process. A driver makes a task's first
// process join LaunchInfo.Cgroups, or the host calls Isolate with its pid.
package cgroups
