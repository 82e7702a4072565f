// Package execdriver is the built-in "exec" task driver: it runs a task's
// command as a plain host process in its own process group, without
// filesystem isolation, inside the cgroups the isolators prepared
// (contract.TaskConfig.Cgroups).
//
// Tasks are children of one supervisor process per state dir, not of the
// driver (package internal/supervisor): the driver process, and the agent,
// can be killed and restarted while tasks keep running, and the supervisor
// still learns each task's real exit status and records it on disk. The
// driver starts the supervisor on demand through Config.SupervisorCmd
// (which must end up calling SupervisorMain), talks to it over a unix
// socket in the state dir, and reattaches to tasks with RecoverTask. If the
// supervisor itself dies, tasks keep running; the driver then watches them
// through pidfds, without their exit status.
//
// It is not an isolator: it sets no limits and creates no cgroups; and it
// is not a sandbox manager: it creates no directories for tasks.
package execdriver
