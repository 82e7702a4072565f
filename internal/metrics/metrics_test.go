package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/agent"
	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func usage(id string, cpuNs, mem uint64) *pb.TaskUsage {
	return &pb.TaskUsage{TaskId: id, CpuNs: cpuNs, MemBytes: mem, MemPeakBytes: 2 * mem, Pids: 3, OomKills: 1,
		Sampled: timestamppb.New(time.Unix(1700000000, 500_000_000))}
}

func TestKernelCollector_Collect(t *testing.T) {
	t.Parallel()
	running := kernel.TaskMetrics{ID: "t-5", AllocationID: "a-2", AgentID: "agent-1", Owner: "fw", Role: "web",
		State: pb.TaskState_TASK_STATE_RUNNING, Usage: usage("t-5", 2_500_000_000, 4096)}
	tests := []struct {
		name  string
		snap  kernel.Metrics
		names []string // metrics compared
		want  string
	}{
		{
			name:  "per-task usage with labels",
			snap:  kernel.Metrics{Tasks: []kernel.TaskMetrics{running}},
			names: []string{"dcos_task_cpu_seconds_total", "dcos_task_memory_bytes", "dcos_task_memory_peak_bytes", "dcos_task_pids", "dcos_task_oom_kills_total", "dcos_task_usage_sampled_timestamp_seconds"},
			want: `
# HELP dcos_task_cpu_seconds_total CPU time a live task used since it started (user+system), from its agent's latest sample.
# TYPE dcos_task_cpu_seconds_total counter
dcos_task_cpu_seconds_total{agent="agent-1",allocation="a-2",owner="fw",role="web",task="t-5"} 2.5
# HELP dcos_task_memory_bytes Memory a live task uses, from its agent's latest sample.
# TYPE dcos_task_memory_bytes gauge
dcos_task_memory_bytes{agent="agent-1",allocation="a-2",owner="fw",role="web",task="t-5"} 4096
# HELP dcos_task_memory_peak_bytes Peak memory of a live task, from its agent's latest sample.
# TYPE dcos_task_memory_peak_bytes gauge
dcos_task_memory_peak_bytes{agent="agent-1",allocation="a-2",owner="fw",role="web",task="t-5"} 8192
# HELP dcos_task_pids Processes of a live task, from its agent's latest sample.
# TYPE dcos_task_pids gauge
dcos_task_pids{agent="agent-1",allocation="a-2",owner="fw",role="web",task="t-5"} 3
# HELP dcos_task_oom_kills_total OOM kills in a live task's cgroup, from its agent's latest sample.
# TYPE dcos_task_oom_kills_total counter
dcos_task_oom_kills_total{agent="agent-1",allocation="a-2",owner="fw",role="web",task="t-5"} 1
# HELP dcos_task_usage_sampled_timestamp_seconds When the agent took a live task's latest usage sample (Unix time).
# TYPE dcos_task_usage_sampled_timestamp_seconds gauge
dcos_task_usage_sampled_timestamp_seconds{agent="agent-1",allocation="a-2",owner="fw",role="web",task="t-5"} 1.7000000005e+09
`,
		},
		{
			name: "network counters by direction",
			snap: kernel.Metrics{Tasks: []kernel.TaskMetrics{{ID: "t-9", AllocationID: "a-3", AgentID: "agent-1", Owner: "fw", Role: "web",
				State: pb.TaskState_TASK_STATE_RUNNING, Usage: &pb.TaskUsage{RxBytes: 100, TxBytes: 10485760, RxPackets: 2, TxPackets: 160}}}},
			names: []string{"dcos_task_network_bytes_total", "dcos_task_network_packets_total"},
			want: `
# HELP dcos_task_network_bytes_total IP bytes a live task's sockets received (rx) or sent (tx), counted by eBPF on its cgroup, from its agent's latest sample.
# TYPE dcos_task_network_bytes_total counter
dcos_task_network_bytes_total{agent="agent-1",allocation="a-3",direction="rx",owner="fw",role="web",task="t-9"} 100
dcos_task_network_bytes_total{agent="agent-1",allocation="a-3",direction="tx",owner="fw",role="web",task="t-9"} 1.048576e+07
# HELP dcos_task_network_packets_total Packets (sk_buffs: up to 64 KiB with GSO/GRO) a live task's sockets received (rx) or sent (tx), from its agent's latest sample.
# TYPE dcos_task_network_packets_total counter
dcos_task_network_packets_total{agent="agent-1",allocation="a-3",direction="rx",owner="fw",role="web",task="t-9"} 2
dcos_task_network_packets_total{agent="agent-1",allocation="a-3",direction="tx",owner="fw",role="web",task="t-9"} 160
`,
		},
		{
			name: "ended tasks and tasks without a sample have no usage series",
			snap: kernel.Metrics{Tasks: []kernel.TaskMetrics{
				{ID: "t-6", State: pb.TaskState_TASK_STATE_FINISHED, Usage: usage("t-6", 1, 1)},
				{ID: "t-7", State: pb.TaskState_TASK_STATE_KILLED, Usage: usage("t-7", 1, 1)},
				{ID: "t-8", State: pb.TaskState_TASK_STATE_STARTING},
			}},
			names: []string{"dcos_task_cpu_seconds_total", "dcos_task_memory_bytes"},
			want:  ``,
		},
		{
			name: "health: every state has a series, pending allocations, policy",
			snap: kernel.Metrics{
				Revision:    42,
				Agents:      map[pb.AgentState]int{pb.AgentState_AGENT_STATE_UP: 2},
				Allocations: map[pb.AllocationState]int{pb.AllocationState_ALLOCATION_STATE_PENDING: 3, pb.AllocationState_ALLOCATION_STATE_GRANTED: 1},
				Tasks: []kernel.TaskMetrics{running, {ID: "t-6", State: pb.TaskState_TASK_STATE_FAILED},
					{ID: "t-9", State: pb.TaskState_TASK_STATE_RUNNING}},
				Policy:         "drf",
				PolicyFailures: map[string]uint64{"broken": 2},
			},
			names: []string{"dcos_kernel_revision", "dcos_kernel_agents", "dcos_kernel_allocations", "dcos_kernel_tasks", "dcos_kernel_policy_active", "dcos_kernel_policy_failures_total"},
			want: `
# HELP dcos_kernel_revision Store revision of the kernel's last commit.
# TYPE dcos_kernel_revision gauge
dcos_kernel_revision 42
# HELP dcos_kernel_agents Agents the kernel knows, by state.
# TYPE dcos_kernel_agents gauge
dcos_kernel_agents{state="lost"} 0
dcos_kernel_agents{state="up"} 2
# HELP dcos_kernel_allocations Live allocations, by state (pending: waiting for room).
# TYPE dcos_kernel_allocations gauge
dcos_kernel_allocations{state="granted"} 1
dcos_kernel_allocations{state="pending"} 3
# HELP dcos_kernel_tasks Tasks the kernel holds (live, and ended ones whose allocation lives), by state.
# TYPE dcos_kernel_tasks gauge
dcos_kernel_tasks{state="failed"} 1
dcos_kernel_tasks{state="finished"} 0
dcos_kernel_tasks{state="killed"} 0
dcos_kernel_tasks{state="lost"} 0
dcos_kernel_tasks{state="pending"} 0
dcos_kernel_tasks{state="running"} 2
dcos_kernel_tasks{state="starting"} 0
# HELP dcos_kernel_policy_active The allocation policy the next cycle runs (always 1).
# TYPE dcos_kernel_policy_active gauge
dcos_kernel_policy_active{policy="drf"} 1
# HELP dcos_kernel_policy_failures_total Allocation cycles a policy failed since the kernel started; the kernel fell back to another policy.
# TYPE dcos_kernel_policy_failures_total counter
dcos_kernel_policy_failures_total{policy="broken"} 2
`,
		},
		{
			name: "cycle histogram",
			snap: kernel.Metrics{Cycles: kernel.CycleHistogram{Count: 3, Sum: 1500 * time.Microsecond,
				Buckets: []uint64{0, 0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}}},
			names: []string{"dcos_kernel_allocation_cycle_duration_seconds"},
			want: `
# HELP dcos_kernel_allocation_cycle_duration_seconds Duration of the kernel's allocation cycles since it started.
# TYPE dcos_kernel_allocation_cycle_duration_seconds histogram
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.0001"} 0
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.00025"} 0
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.0005"} 1
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.001"} 2
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.0025"} 3
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.005"} 3
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.01"} 3
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.025"} 3
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.05"} 3
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.1"} 3
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.25"} 3
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="0.5"} 3
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="1"} 3
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="2.5"} 3
dcos_kernel_allocation_cycle_duration_seconds_bucket{le="+Inf"} 3
dcos_kernel_allocation_cycle_duration_seconds_sum 0.0015
dcos_kernel_allocation_cycle_duration_seconds_count 3
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewKernelCollector(func() kernel.Metrics { return tt.snap })
			mfs := gather(t, c)
			if diff := cmp.Diff(strings.TrimLeft(tt.want, "\n"), text(t, mfs, tt.names)); diff != "" {
				t.Errorf("metrics (-want +got):\n%s", diff)
			}
			lintClean(t, mfs)
		})
	}
}

func TestAgentCollector_Collect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		snap  agent.Metrics
		names []string
		want  string
	}{
		{
			name: "health",
			snap: agent.Metrics{
				AgentID: "agent-3", Tasks: map[string]int{"running": 2, "exited": 1},
				TaskStarts: 5, TaskStartFailures: 1, ReportQueue: 4,
				TasksEnded: map[pb.TaskState]uint64{pb.TaskState_TASK_STATE_FAILED: 2},
				Plugins: []*pb.PluginInfo{
					{Kind: "driver", Name: "exec", Health: "healthy", Restarts: 1},
					{Kind: "isolator", Name: "cgroups", Health: "restarting", Restarts: 3},
				},
				LastHeartbeat: time.Unix(1700000000, 0), HeartbeatFailures: 2,
			},
			names: []string{"dcos_agent_info", "dcos_agent_tasks", "dcos_agent_task_starts_total", "dcos_agent_task_start_failures_total",
				"dcos_agent_tasks_ended_total", "dcos_agent_report_queue_length", "dcos_agent_plugin_up", "dcos_agent_plugin_restarts_total",
				"dcos_agent_last_heartbeat_success_timestamp_seconds", "dcos_agent_heartbeat_failures_total"},
			want: `
# HELP dcos_agent_info The agent's id (always 1; agent is empty before it registered).
# TYPE dcos_agent_info gauge
dcos_agent_info{agent="agent-3"} 1
# HELP dcos_agent_tasks The agent's tasks, by phase (exited: final report not yet acknowledged).
# TYPE dcos_agent_tasks gauge
dcos_agent_tasks{phase="exited"} 1
dcos_agent_tasks{phase="running"} 2
dcos_agent_tasks{phase="starting"} 0
# HELP dcos_agent_task_starts_total Tasks the agent's drivers started since the agent started.
# TYPE dcos_agent_task_starts_total counter
dcos_agent_task_starts_total 5
# HELP dcos_agent_task_start_failures_total Tasks that could not be started since the agent started.
# TYPE dcos_agent_task_start_failures_total counter
dcos_agent_task_start_failures_total 1
# HELP dcos_agent_tasks_ended_total Tasks that ended since the agent started, by final state.
# TYPE dcos_agent_tasks_ended_total counter
dcos_agent_tasks_ended_total{state="failed"} 2
dcos_agent_tasks_ended_total{state="finished"} 0
dcos_agent_tasks_ended_total{state="killed"} 0
dcos_agent_tasks_ended_total{state="lost"} 0
# HELP dcos_agent_report_queue_length Task status reports the kernel has not taken yet.
# TYPE dcos_agent_report_queue_length gauge
dcos_agent_report_queue_length 4
# HELP dcos_agent_plugin_up Whether a plugin is healthy (1) or not (restarting, refused, stopped: 0).
# TYPE dcos_agent_plugin_up gauge
dcos_agent_plugin_up{kind="driver",plugin="exec"} 1
dcos_agent_plugin_up{kind="isolator",plugin="cgroups"} 0
# HELP dcos_agent_plugin_restarts_total Restarts of a plugin process since the agent started.
# TYPE dcos_agent_plugin_restarts_total counter
dcos_agent_plugin_restarts_total{kind="driver",plugin="exec"} 1
dcos_agent_plugin_restarts_total{kind="isolator",plugin="cgroups"} 3
# HELP dcos_agent_last_heartbeat_success_timestamp_seconds When the kernel last accepted a heartbeat (Unix time; 0: never).
# TYPE dcos_agent_last_heartbeat_success_timestamp_seconds gauge
dcos_agent_last_heartbeat_success_timestamp_seconds 1.7e+09
# HELP dcos_agent_heartbeat_failures_total Heartbeats the kernel did not accept since the agent started.
# TYPE dcos_agent_heartbeat_failures_total counter
dcos_agent_heartbeat_failures_total 2
`,
		},
		{
			name:  "per-task usage",
			snap:  agent.Metrics{Usage: []agent.TaskSample{{AllocationID: "a-2", Usage: usage("t-5", 1_000_000_000, 100)}, {AllocationID: "a-3"}}},
			names: []string{"dcos_agent_task_cpu_seconds_total", "dcos_agent_task_memory_bytes", "dcos_agent_task_oom_kills_total"},
			want: `
# HELP dcos_agent_task_cpu_seconds_total CPU time a running task used since it started (user+system), from the agent's last sample.
# TYPE dcos_agent_task_cpu_seconds_total counter
dcos_agent_task_cpu_seconds_total{allocation="a-2",task="t-5"} 1
# HELP dcos_agent_task_memory_bytes Memory a running task uses, from the agent's last sample.
# TYPE dcos_agent_task_memory_bytes gauge
dcos_agent_task_memory_bytes{allocation="a-2",task="t-5"} 100
# HELP dcos_agent_task_oom_kills_total OOM kills in a running task's cgroup, from the agent's last sample.
# TYPE dcos_agent_task_oom_kills_total counter
dcos_agent_task_oom_kills_total{allocation="a-2",task="t-5"} 1
`,
		},
		{
			name:  "never heartbeated",
			snap:  agent.Metrics{},
			names: []string{"dcos_agent_last_heartbeat_success_timestamp_seconds", "dcos_agent_task_cpu_seconds_total"},
			want: `
# HELP dcos_agent_last_heartbeat_success_timestamp_seconds When the kernel last accepted a heartbeat (Unix time; 0: never).
# TYPE dcos_agent_last_heartbeat_success_timestamp_seconds gauge
dcos_agent_last_heartbeat_success_timestamp_seconds 0
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := NewAgentCollector(func() agent.Metrics { return tt.snap })
			mfs := gather(t, c)
			if diff := cmp.Diff(strings.TrimLeft(tt.want, "\n"), text(t, mfs, tt.names)); diff != "" {
				t.Errorf("metrics (-want +got):\n%s", diff)
			}
			lintClean(t, mfs)
		})
	}
}

// TestRegistry_KernelAndAgentTogether checks that the kernel's and an
// agent's collectors share one registry (dcosd dev) without a collision.
func TestRegistry_KernelAndAgentTogether(t *testing.T) {
	t.Parallel()
	reg := NewRegistry(NewKernelCollector(func() kernel.Metrics { return kernel.Metrics{} }),
		NewAgentCollector(func() agent.Metrics { return agent.Metrics{} }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var kernelSeen, agentSeen bool
	for _, mf := range mfs {
		kernelSeen = kernelSeen || mf.GetName() == "dcos_kernel_revision"
		agentSeen = agentSeen || mf.GetName() == "dcos_agent_info"
	}
	if !kernelSeen || !agentSeen {
		t.Fatalf("gathered %d families; kernel %v agent %v", len(mfs), kernelSeen, agentSeen)
	}
}

// gather collects c through a pedantic registry, which checks what it
// collects against what it describes.
func gather(t *testing.T, c prometheus.Collector) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// text renders the families named in names in the text format.
func text(t *testing.T, mfs []*dto.MetricFamily, names []string) string {
	t.Helper()
	var b strings.Builder
	for _, name := range names {
		for _, mf := range mfs {
			if mf.GetName() == name {
				if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return b.String()
}

// lintClean fails t if mfs break Prometheus' naming and documentation
// conventions (the checks of promtool check metrics).
func lintClean(t *testing.T, mfs []*dto.MetricFamily) {
	t.Helper()
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
