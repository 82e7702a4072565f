// Package supervisor is the exec driver's task supervisor: one long-lived
// process per state dir that is the parent of every task the driver starts,
// so that it learns each task's real exit status even while no driver is
// running.
//
// It listens on <StateDir>/supervisor.sock (package wire), holds a flock on
// <StateDir>/supervisor.lock (a second supervisor exits at once), is the
// child subreaper of its tasks' descendants, records each exit atomically
// in <StateDir>/exits/<task-id>.json before it tells any client, kills
// what is left of a task's process group when the task's main process
// ends, and exits on its own once it has had no live task and no client
// for IdleExit.
//
// Tasks start inside their cgroups: the supervisor joins each cgroup v1
// directory itself (under a mutex), forks the task, which inherits them,
// and returns to the cgroups it started in; a cgroup v2 directory is
// joined with CLONE_INTO_CGROUP.
//
// It is not the driver: it knows nothing of contract.TaskConfig, handles
// or recovery, and it keeps no state across its own restarts beyond the
// exit records.
package supervisor
