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
// Tasks start inside their cgroups. Go cannot run code between fork and
// exec, so the supervisor forks from a thread already inside them: on a
// goroutine locked to its OS thread, that one thread joins each cgroup v1
// directory (its "tasks" file), forks, and returns to the supervisor's own
// cgroups (read from /proc/self/cgroup and mountinfo at start); a thread
// that cannot return dies. Moving one thread rather than the process
// (cgroup.procs) charges the task's pids and memory cgroups for that one
// thread only. A cgroup v2 directory is joined with CLONE_INTO_CGROUP.
// Starts are serialized.
//
// It is not the driver: it knows nothing of contract.TaskConfig, handles
// or recovery, and it keeps no state across its own restarts beyond the
// exit records.
package supervisor
