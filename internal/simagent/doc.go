// Package simagent runs many simulated dcos agents in one process, for
// benchmarks and tests of the kernel at cluster scale without a node per
// agent.
//
// Each simulated agent is a real client of a real kernel: it joins with
// AgentJoin (or uses an agent token of its own), registers with
// RegisterAgent, heartbeats at the interval the kernel answers, follows
// its tasks on a Watch filtered by its agent id (resuming after the last
// revision, registering again when the revision is compacted), and
// reports each task's states, STARTING, RUNNING, then the end, through a
// queue as the real agent's (package agent): a task's reports in order,
// the reports ready together in one ReportTaskStatusBatch call, a lone
// one in a ReportTaskStatus call (Config.SingleReports: one call per
// report, the path before batches). The calls, messages and order are
// the real agent's; only the task is simulated. A launched task is RUNNING at once; a short task
// (by default one whose command is `true`) then ends FINISHED with exit
// code 0; any other stays RUNNING until the kernel kills it (its task or
// allocation revoked), and then ends KILLED.
//
// It is not an agent: nothing is forked, isolated, checkpointed or
// accounted, usage is never reported, and an agent that stops (Close)
// loses its tasks as a crashed node would. It is for _test.go files and
// benchmarks; nothing in a daemon imports it.
package simagent
