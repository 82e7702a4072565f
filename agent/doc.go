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
// It is not a task driver framework or an isolator: tasks are plain
// processes in their own process group, with no cgroup or namespace. Those
// come from drivers and isolators later.
package agent
