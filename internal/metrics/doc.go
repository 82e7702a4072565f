// Package metrics exposes the kernel's and the agent's health, and their
// tasks' resource usage, as Prometheus metrics (client_golang).
//
// Its collectors read a snapshot (kernel.Kernel.Metrics,
// agent.Agent.Metrics) at scrape time, so every scrape is consistent and
// a task that ended has no series left: cardinality is bounded by the
// live tasks. It is not a time-series store and keeps no history; the
// kernel and agent packages know nothing of Prometheus.
package metrics
