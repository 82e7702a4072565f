// Package agent is the dcos node agent: it fingerprints the node, registers
// with the kernel, heartbeats, watches the kernel for tasks addressed to
// this node, runs them as child processes, and reports their states.
//
// Tasks outlive the agent. Each task is checkpointed under the data dir
// while it runs; a new agent on the same data dir re-adopts the tasks that
// are still alive and reports the ones that ended meanwhile, then reconciles
// with the kernel at registration. docs/agent.md describes the behaviour an
// operator sees: restart semantics, sandbox layout, environment, kill
// sequence.
//
// A task starts through a pipeline of stages (runner.go: sandbox, network,
// isolation, driver, health), each with a setup and an idempotent
// teardown, run forward by one runner and unwound backward when a start
// fails or the task ends; a new concern is one new stage_<name>.go.
//
// It is not a task driver or an isolator: those are plugins (package
// plugins/contract) that the stages call.
package agent
