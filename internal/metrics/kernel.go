package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// taskLabels label the kernel's per-task series.
var taskLabels = []string{"task", "allocation", "agent", "owner", "role"}

var (
	kRevision    = prometheus.NewDesc("dcos_kernel_revision", "Store revision of the kernel's last commit.", nil, nil)
	kAgents      = prometheus.NewDesc("dcos_kernel_agents", "Agents the kernel knows, by state.", []string{"state"}, nil)
	kAllocations = prometheus.NewDesc("dcos_kernel_allocations", "Live allocations, by state (pending: waiting for room).", []string{"state"}, nil)
	kTasks       = prometheus.NewDesc("dcos_kernel_tasks", "Tasks the kernel holds (live, and ended ones whose allocation lives), by state.", []string{"state"}, nil)
	kPolicy      = prometheus.NewDesc("dcos_kernel_policy_active", "The allocation policy the next cycle runs (always 1).", []string{"policy"}, nil)
	kPolicyFail  = prometheus.NewDesc("dcos_kernel_policy_failures_total", "Allocation cycles a policy failed since the kernel started; the kernel fell back to another policy.", []string{"policy"}, nil)
	kCycle       = prometheus.NewDesc("dcos_kernel_allocation_cycle_duration_seconds", "Duration of the kernel's allocation cycles since it started.", nil, nil)

	tCPU      = prometheus.NewDesc("dcos_task_cpu_seconds_total", "CPU time a live task used since it started (user+system), from its agent's latest sample.", taskLabels, nil)
	tMem      = prometheus.NewDesc("dcos_task_memory_bytes", "Memory a live task uses, from its agent's latest sample.", taskLabels, nil)
	tMemPeak  = prometheus.NewDesc("dcos_task_memory_peak_bytes", "Peak memory of a live task, from its agent's latest sample.", taskLabels, nil)
	tPIDs     = prometheus.NewDesc("dcos_task_pids", "Processes of a live task, from its agent's latest sample.", taskLabels, nil)
	tOOM      = prometheus.NewDesc("dcos_task_oom_kills_total", "OOM kills in a live task's cgroup, from its agent's latest sample.", taskLabels, nil)
	tSampled  = prometheus.NewDesc("dcos_task_usage_sampled_timestamp_seconds", "When the agent took a live task's latest usage sample (Unix time).", taskLabels, nil)
	tNetBytes = prometheus.NewDesc("dcos_task_network_bytes_total", "IP bytes a live task's sockets received (rx) or sent (tx), counted by eBPF on its cgroup, from its agent's latest sample.", netLabels, nil)
	tNetPkts  = prometheus.NewDesc("dcos_task_network_packets_total", "Packets (sk_buffs: up to 64 KiB with GSO/GRO) a live task's sockets received (rx) or sent (tx), from its agent's latest sample.", netLabels, nil)
	kernelAll = []*prometheus.Desc{kRevision, kAgents, kAllocations, kTasks, kPolicy, kPolicyFail, kCycle, tCPU, tMem, tMemPeak, tPIDs, tOOM, tSampled, tNetBytes, tNetPkts}

	netLabels = append(append([]string{}, taskLabels...), "direction")
)

// KernelCollector is a prometheus.Collector of a kernel's health and its
// live tasks' latest usage, read from one snapshot per scrape. It is safe
// for concurrent use if its snapshot function is.
type KernelCollector struct {
	snapshot func() kernel.Metrics
}

var _ prometheus.Collector = (*KernelCollector)(nil)

// NewKernelCollector returns a collector of snapshot, usually
// (*kernel.Kernel).Metrics.
func NewKernelCollector(snapshot func() kernel.Metrics) *KernelCollector {
	return &KernelCollector{snapshot: snapshot}
}

// Describe implements prometheus.Collector.
func (c *KernelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range kernelAll {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Every state has a series (0
// when empty), so that a state emptying is seen as 0, not as absence.
// Tasks that ended have no usage series.
func (c *KernelCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.snapshot()
	gauge(ch, kRevision, float64(m.Revision))
	for _, s := range []pb.AgentState{pb.AgentState_AGENT_STATE_UP, pb.AgentState_AGENT_STATE_LOST} {
		gauge(ch, kAgents, float64(m.Agents[s]), stateLabel(s.String(), "AGENT_STATE_"))
	}
	for _, s := range []pb.AllocationState{pb.AllocationState_ALLOCATION_STATE_PENDING, pb.AllocationState_ALLOCATION_STATE_GRANTED} {
		gauge(ch, kAllocations, float64(m.Allocations[s]), stateLabel(s.String(), "ALLOCATION_STATE_"))
	}
	tasks := map[pb.TaskState]int{}
	for _, t := range m.Tasks {
		tasks[t.State]++
	}
	for s := pb.TaskState_TASK_STATE_PENDING; s <= pb.TaskState_TASK_STATE_LOST; s++ {
		gauge(ch, kTasks, float64(tasks[s]), stateLabel(s.String(), "TASK_STATE_"))
	}
	if m.Policy != "" {
		gauge(ch, kPolicy, 1, m.Policy)
	}
	for name, n := range m.PolicyFailures {
		counter(ch, kPolicyFail, float64(n), name)
	}
	buckets := make(map[float64]uint64, len(kernel.CycleBuckets))
	for i, ub := range kernel.CycleBuckets {
		if i < len(m.Cycles.Buckets) {
			buckets[ub] = m.Cycles.Buckets[i]
		}
	}
	ch <- prometheus.MustNewConstHistogram(kCycle, m.Cycles.Count, m.Cycles.Sum.Seconds(), buckets)
	for _, t := range m.Tasks {
		u := t.Usage
		if u == nil || t.State >= pb.TaskState_TASK_STATE_FINISHED {
			continue
		}
		l := []string{t.ID, t.AllocationID, t.AgentID, t.Owner, t.Role}
		counter(ch, tCPU, float64(u.GetCpuNs())/1e9, l...)
		gauge(ch, tMem, float64(u.GetMemBytes()), l...)
		gauge(ch, tMemPeak, float64(u.GetMemPeakBytes()), l...)
		gauge(ch, tPIDs, float64(u.GetPids()), l...)
		counter(ch, tOOM, float64(u.GetOomKills()), l...)
		if u.GetSampled() != nil {
			gauge(ch, tSampled, float64(u.GetSampled().AsTime().UnixNano())/1e9, l...)
		}
		counter(ch, tNetBytes, float64(u.GetRxBytes()), append(l, "rx")...)
		counter(ch, tNetBytes, float64(u.GetTxBytes()), append(l, "tx")...)
		counter(ch, tNetPkts, float64(u.GetRxPackets()), append(l, "rx")...)
		counter(ch, tNetPkts, float64(u.GetTxPackets()), append(l, "tx")...)
	}
}

// stateLabel turns an enum name (TASK_STATE_RUNNING) into a label value
// (running).
func stateLabel(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}
