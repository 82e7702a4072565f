// Package execdriver is the built-in "exec" task driver: it runs a task's
// command as a plain host process in its own process group, without
// filesystem isolation, inside the cgroups the isolators prepared
// (contract.TaskConfig.Cgroups).
//
// It is a thin driver over the executor (package internal/executor, which
// vendors reach as sdk/plugin's Executor): tasks are children of one
// supervisor process per state dir that outlives the driver and the agent,
// records each task's real exit, and lets a restarted driver reattach
// with RecoverTask. This package adds only the exec driver's Capabilities
// and Fingerprint.
//
// It is not an isolator: it sets no limits and creates no cgroups; and it
// is not a sandbox manager: it creates no directories for tasks.
package execdriver
