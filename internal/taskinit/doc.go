// Package taskinit embeds dcos's task init (a small static C program,
// ./initc/init.c, built by go generate with the host's gcc and glibc's
// libc.a into taskinit.bin, committed like the BPF objects and policy
// modules; the build is reproducible and scripts/test checks it is
// current) and builds its command line. It was a Go program until the Go
// runtime's start-up (~5 ms a start on a small machine; the C init starts
// like /bin/true) proved most of what isolation added to a task's start
// (docs/benchmarks.md).
//
// The exec driver's supervisor, and vendor drivers through sdk/plugin's
// Isolate, run the init (Prepare, Start), as root, as the first process of every
// isolated task, in new mount, pid, ipc and uts namespaces: it makes the
// node's mounts slaves, covers the hidden paths, keeps the sandbox visible
// at its path, mounts the namespace's own /proc and /dev/shm, enters a
// cgroup namespace (after joining the cgroups it was given to join late),
// drops the capability bounding set and sets
// no_new_privs (unless the task runs as root), then forks the task with
// its uid, gid and groups in the init's process group, reaps orphans and
// exits with the task's status (128+N for signal N, which it also reports
// on its status pipe). See initc/init.c for the protocol.
//
// Its enter mode (Enter) runs one command inside a running task, as the
// task runs (its cgroups, namespaces, user, sandbox): the agent's command
// health checks. A fresh single-threaded process does the setns calls,
// never the multithreaded agent.
//
// Its container mode (Spec.RootFS, for the oci driver) runs an image's
// entrypoint instead: the init builds the container's mounts in its mount
// namespace (the driver's root filesystem bound onto itself, Spec.Binds,
// a masked /proc, a read-only /sys, a /dev of its own), pivot_roots into
// it, sets the hostname, the user and the capabilities (for root,
// DefaultContainerCaps or Spec.Caps), and execs the entrypoint, which is
// then pid 1 of the task's pid namespace: no init stays between, its exit
// is the task's. Enter (EnterSpec.Caps) runs a command inside such a
// container.
//
// It is not a whole container runtime: no image handling (the driver
// pulls, unpacks and mounts), no user namespace, no seccomp.
package taskinit
