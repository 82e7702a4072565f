// Package executor is the engine of task drivers that run a task as a
// process on the host or in a container: it starts a command in its own
// process group, in the cgroups and network namespace the agent prepared
// (contract.TaskConfig.Cgroups, Netns), optionally under the task init
// (TaskConfig.Isolation, package taskinit), and waits for, signals, stops,
// inspects, measures, destroys and recovers it. The built-in exec driver
// (drivers/execdriver) is a thin driver over it; vendors reach it through
// sdk/plugin's Executor.
//
// Tasks are children of one supervisor process per state dir, not of the
// executor (package supervisor): the plugin process, and the agent, can be
// killed and restarted while tasks keep running, and the supervisor still
// learns each task's real exit status and records it on disk. The executor
// starts the supervisor on demand through Config.SupervisorCmd (which must
// end up calling SupervisorMain), talks to it over a unix socket in the
// state dir (package wire), and reattaches to tasks with RecoverTask. If
// the supervisor itself dies, tasks keep running; the executor then
// watches them through pidfds (package proc), without their exit status.
//
// It is not a driver (Capabilities and Fingerprint are the embedding
// driver's), not an isolator (it sets no limits and creates no cgroups),
// and not a sandbox manager (it creates no directories for tasks).
package executor
