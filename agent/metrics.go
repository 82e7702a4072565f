package agent

import (
	"sync"
	"time"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Metrics is a snapshot of an agent's health and of its running tasks'
// last usage sample, for monitoring (internal/metrics turns it into
// Prometheus metrics). The caller owns it.
type Metrics struct {
	// AgentID is the id the kernel gave the agent ("" before it
	// registered).
	AgentID string
	// Tasks counts the agent's tasks by phase: "starting" (its process is
	// being started), "running", "exited" (its final report is not
	// acknowledged yet).
	Tasks map[string]int
	// TaskStarts and TaskStartFailures count, since the agent started, the
	// tasks its drivers started and the ones that could not start.
	TaskStarts, TaskStartFailures uint64
	// TasksEnded counts the tasks that ended, by final state, since the
	// agent started (a task recovered as ended counts too).
	TasksEnded map[syscallsv1.TaskState]uint64
	// ReportQueue is the number of task status reports not yet taken by
	// the kernel.
	ReportQueue int
	// Plugins is the plugin host's view of each plugin (health, restarts).
	Plugins []*syscallsv1.PluginInfo
	// LastHeartbeat is when the kernel last accepted a heartbeat (zero
	// before the first); HeartbeatFailures counts the ones it did not.
	LastHeartbeat     time.Time
	HeartbeatFailures uint64
	// Usage is the last usage sample of each running task.
	Usage []TaskSample
	// Streams counts the log and exec streams open now, by kind: "logs",
	// "exec" (and "" for malformed requests being answered).
	Streams map[string]int
}

// TaskSample is the last usage sample of one task.
type TaskSample struct {
	AllocationID string
	Usage        *syscallsv1.TaskUsage
}

// Metrics returns a snapshot of the agent's health and of the last usage
// sample of its running tasks (tasks that ended are left out). Safe for
// concurrent use, also before Run.
func (a *Agent) Metrics() Metrics {
	m := Metrics{Tasks: map[string]int{"starting": 0, "running": 0, "exited": 0}, Plugins: a.plugins.Info()}
	a.metrics.mu.Lock()
	m.TaskStarts, m.TaskStartFailures = a.metrics.starts, a.metrics.startFailures
	m.TasksEnded = make(map[syscallsv1.TaskState]uint64, len(a.metrics.ended))
	for s, n := range a.metrics.ended {
		m.TasksEnded[s] = n
	}
	m.LastHeartbeat, m.HeartbeatFailures = a.metrics.lastHeartbeat, a.metrics.heartbeatFailures
	m.Streams = map[string]int{"logs": 0, "exec": 0}
	for k, n := range a.metrics.streams {
		m.Streams[k] = n
	}
	usage := a.metrics.usage
	a.metrics.mu.Unlock()

	a.mu.Lock()
	m.AgentID = a.id
	for _, tk := range a.tasks {
		switch tk.state {
		case taskStarting:
			m.Tasks["starting"]++
		case taskRunning:
			m.Tasks["running"]++
		case taskExited:
			m.Tasks["exited"]++
		}
	}
	for _, u := range usage {
		if tk := a.tasks[u.GetTaskId()]; tk != nil && tk.state == taskRunning {
			m.Usage = append(m.Usage, TaskSample{AllocationID: tk.allocID, Usage: u})
		}
	}
	a.mu.Unlock()
	m.ReportQueue = a.reports.length()
	return m
}

// agentMetrics accumulates what Metrics reports beyond the agent's task
// table. The zero value is ready; safe for concurrent use.
type agentMetrics struct {
	mu                sync.Mutex
	starts            uint64
	startFailures     uint64
	ended             map[syscallsv1.TaskState]uint64
	lastHeartbeat     time.Time
	heartbeatFailures uint64
	usage             []*syscallsv1.TaskUsage // the last sample; not modified once stored
	streams           map[string]int          // open streams by kind
}

// streamOpened and streamClosed count a stream of kind being served.
func (m *agentMetrics) streamOpened(kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.streams == nil {
		m.streams = map[string]int{}
	}
	m.streams[kind]++
}

func (m *agentMetrics) streamClosed(kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.streams[kind]--; m.streams[kind] == 0 {
		delete(m.streams, kind)
	}
}

// started records a task start: err is why it could not start, or nil.
func (m *agentMetrics) started(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.startFailures++
	} else {
		m.starts++
	}
}

// taskEnded records a task's final state.
func (m *agentMetrics) taskEnded(s syscallsv1.TaskState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ended == nil {
		m.ended = map[syscallsv1.TaskState]uint64{}
	}
	m.ended[s]++
}

// heartbeat records a heartbeat's outcome; usage, when the heartbeat
// carried a sample (non-nil), replaces the last one.
func (m *agentMetrics) heartbeat(usage []*syscallsv1.TaskUsage, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if usage != nil {
		m.usage = usage
	}
	if err != nil {
		m.heartbeatFailures++
	} else {
		m.lastHeartbeat = time.Now()
	}
}

// length returns the number of queued reports (including ones in flight).
func (q *reportQueue) length() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
