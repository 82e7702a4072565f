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
// Task cgroups are created beneath the agent's own cgroup in each hierarchy
// (as read from /proc/self/cgroup), or beneath a parent path the caller gives.
//
// The parsers of /proc/self/mountinfo and /proc/self/cgroup are pure and
// build on every platform; everything that touches the host is Linux-only
// and returns ErrNotSupported elsewhere.
//
// This package is not an isolator: it knows nothing of tasks, allocations or
// plugins, does not watch for OOM events (callers poll OOMKilled or Usage),
// and does not attach BPF programs (callers use UnifiedDir or FD for that).
package cgroups
