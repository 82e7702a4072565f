// Package cgroups is the agent's one door to Linux control groups: it finds
// the host's cgroup layout at run time and creates, limits, measures, kills
// and removes one cgroup per task.
//
// Three layouts are supported:
//
//   - ModeHybrid: limits go through the v1 memory, cpu (+cpuacct) and pids
//     hierarchies, and each task also gets a directory in the v2 unified
//     hierarchy (usually /sys/fs/cgroup/unified) for BPF attachment,
//     cgroup.kill and clone3(CLONE_INTO_CGROUP).
//   - ModeUnified (pure v2): one directory per task, with the memory, cpu and
//     pids controllers enabled in its parent's cgroup.subtree_control.
//   - ModeV1: v1 hierarchies only.
//
// Task cgroups are created beneath a parent the caller gives: an absolute
// cgroup path ("/dcos"), or one relative to the agent's own cgroup in each
// hierarchy as read from /proc/self/cgroup ("dcos"; "" for the own cgroup).
// MakeParent creates it up front (and reports missing permissions), Children
// lists what is beneath it, and MoveToLeaf empties a pure v2 cgroup of its
// processes so it may enable controllers for its children.
//
// The parsers of /proc/self/mountinfo and /proc/self/cgroup are pure and
// build on every platform; everything that touches the host is Linux-only
// and returns ErrNotSupported elsewhere.
//
// Limits.CPUs confines a task to a CPU list through the cpuset controller
// where the host has one: the v1 cpuset hierarchy (a task directory keyed
// KeyCPUSet, whose cpuset.cpus and cpuset.mems, and those of every parent
// level this package creates, are filled from the level above, as v1
// requires before a process may join), or cpuset in the v2
// subtree_control. Layout.ParentCPUs tells which CPUs task cgroups may
// have; CPU lists are read with internal/cpulist.
//
// Task.WatchOOM reports a task's OOM kill count as it grows, event-driven
// (v1 cgroup.event_control eventfd, v2 inotify on memory.events).
//
// This package is not an isolator: it knows nothing of tasks, allocations or
// plugins, and does not attach BPF programs (callers use UnifiedDir or FD for
// that). isolators/cgroups builds the isolator on it.
package cgroups
