package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dcos-kernel/dcos/agent"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// agentTaskLabels label the agent's per-task series. The agent does not
// know a task's owner or role; the kernel's dcos_task_* series have them.
var agentTaskLabels = []string{"task", "allocation"}

var (
	aInfo         = prometheus.NewDesc("dcos_agent_info", "The agent's id (always 1; agent is empty before it registered).", []string{"agent"}, nil)
	aTasks        = prometheus.NewDesc("dcos_agent_tasks", "The agent's tasks, by phase (exited: final report not yet acknowledged).", []string{"phase"}, nil)
	aStarts       = prometheus.NewDesc("dcos_agent_task_starts_total", "Tasks the agent's drivers started since the agent started.", nil, nil)
	aStartFails   = prometheus.NewDesc("dcos_agent_task_start_failures_total", "Tasks that could not be started since the agent started.", nil, nil)
	aEnded        = prometheus.NewDesc("dcos_agent_tasks_ended_total", "Tasks that ended since the agent started, by final state.", []string{"state"}, nil)
	aQueue        = prometheus.NewDesc("dcos_agent_report_queue_length", "Task status reports the kernel has not taken yet.", nil, nil)
	aPluginUp     = prometheus.NewDesc("dcos_agent_plugin_up", "Whether a plugin is healthy (1) or not (restarting, refused, stopped: 0).", []string{"kind", "plugin"}, nil)
	aPluginRest   = prometheus.NewDesc("dcos_agent_plugin_restarts_total", "Restarts of a plugin process since the agent started.", []string{"kind", "plugin"}, nil)
	aHeartbeat    = prometheus.NewDesc("dcos_agent_last_heartbeat_success_timestamp_seconds", "When the kernel last accepted a heartbeat (Unix time; 0: never).", nil, nil)
	aHeartbeatErr = prometheus.NewDesc("dcos_agent_heartbeat_failures_total", "Heartbeats the kernel did not accept since the agent started.", nil, nil)

	atCPU     = prometheus.NewDesc("dcos_agent_task_cpu_seconds_total", "CPU time a running task used since it started (user+system), from the agent's last sample.", agentTaskLabels, nil)
	atMem     = prometheus.NewDesc("dcos_agent_task_memory_bytes", "Memory a running task uses, from the agent's last sample.", agentTaskLabels, nil)
	atMemPeak = prometheus.NewDesc("dcos_agent_task_memory_peak_bytes", "Peak memory of a running task, from the agent's last sample.", agentTaskLabels, nil)
	atPIDs    = prometheus.NewDesc("dcos_agent_task_pids", "Processes of a running task, from the agent's last sample.", agentTaskLabels, nil)
	atOOM     = prometheus.NewDesc("dcos_agent_task_oom_kills_total", "OOM kills in a running task's cgroup, from the agent's last sample.", agentTaskLabels, nil)
	agentAll  = []*prometheus.Desc{aInfo, aTasks, aStarts, aStartFails, aEnded, aQueue, aPluginUp, aPluginRest, aHeartbeat, aHeartbeatErr, atCPU, atMem, atMemPeak, atPIDs, atOOM}
)

// AgentCollector is a prometheus.Collector of an agent's health and its
// running tasks' last usage sample, read from one snapshot per scrape. Its
// metrics are named dcos_agent_*, so it can share a registry with a
// KernelCollector (dcosd dev). It is safe for concurrent use if its
// snapshot function is.
type AgentCollector struct {
	snapshot func() agent.Metrics
}

var _ prometheus.Collector = (*AgentCollector)(nil)

// NewAgentCollector returns a collector of snapshot, usually
// (*agent.Agent).Metrics.
func NewAgentCollector(snapshot func() agent.Metrics) *AgentCollector {
	return &AgentCollector{snapshot: snapshot}
}

// Describe implements prometheus.Collector.
func (c *AgentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range agentAll {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *AgentCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.snapshot()
	gauge(ch, aInfo, 1, m.AgentID)
	for _, phase := range []string{"starting", "running", "exited"} {
		gauge(ch, aTasks, float64(m.Tasks[phase]), phase)
	}
	counter(ch, aStarts, float64(m.TaskStarts))
	counter(ch, aStartFails, float64(m.TaskStartFailures))
	for s := pb.TaskState_TASK_STATE_FINISHED; s <= pb.TaskState_TASK_STATE_LOST; s++ {
		counter(ch, aEnded, float64(m.TasksEnded[s]), stateLabel(s.String(), "TASK_STATE_"))
	}
	gauge(ch, aQueue, float64(m.ReportQueue))
	seen := map[[2]string]bool{}
	for _, p := range m.Plugins {
		key := [2]string{p.GetKind(), p.GetName()}
		if seen[key] { // one series per plugin, even if the host lists one twice
			continue
		}
		seen[key] = true
		up := 0.0
		if p.GetHealth() == "healthy" {
			up = 1
		}
		gauge(ch, aPluginUp, up, key[:]...)
		counter(ch, aPluginRest, float64(p.GetRestarts()), key[:]...)
	}
	hb := 0.0
	if !m.LastHeartbeat.IsZero() {
		hb = float64(m.LastHeartbeat.UnixNano()) / 1e9
	}
	gauge(ch, aHeartbeat, hb)
	counter(ch, aHeartbeatErr, float64(m.HeartbeatFailures))
	for _, s := range m.Usage {
		u := s.Usage
		if u == nil {
			continue
		}
		l := []string{u.GetTaskId(), s.AllocationID}
		counter(ch, atCPU, float64(u.GetCpuNs())/1e9, l...)
		gauge(ch, atMem, float64(u.GetMemBytes()), l...)
		gauge(ch, atMemPeak, float64(u.GetMemPeakBytes()), l...)
		gauge(ch, atPIDs, float64(u.GetPids()), l...)
		counter(ch, atOOM, float64(u.GetOomKills()), l...)
	}
}
