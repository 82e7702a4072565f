package kernel

import (
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// CycleBuckets are the upper bounds, in seconds, of the allocation-cycle
// duration histogram in Metrics.
var CycleBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// Metrics is a consistent view of the kernel's health and of its tasks'
// latest usage, for monitoring (internal/metrics turns it into Prometheus
// metrics; the kernel itself knows nothing of Prometheus). The caller owns
// it.
type Metrics struct {
	// Revision is the store revision of the last commit.
	Revision int64
	// Agents, Allocations count the agents and the live allocations by
	// state.
	Agents      map[pb.AgentState]int
	Allocations map[pb.AllocationState]int
	// Tasks lists every task the kernel holds: live ones and ended ones
	// whose allocation is still live (not the completed tasks it only
	// remembers for ListTasks).
	Tasks []TaskMetrics
	// Policy is the policy the next allocation cycle runs.
	Policy string
	// PolicyFailures counts, by policy name, the cycles that policy failed
	// since start (the kernel then fell back to the last good policy, else
	// native first-fit, and emitted POLICY_FAILED).
	PolicyFailures map[string]uint64
	// Cycles is the duration histogram of the allocation cycles run since
	// start (a cycle that fell back counts once, with both runs).
	Cycles CycleHistogram
}

// TaskMetrics is what monitoring needs of one task.
type TaskMetrics struct {
	ID, AllocationID, AgentID, Owner, Role string
	State                                  pb.TaskState
	// Usage is the latest sample the task's agent reported; nil if none.
	Usage *pb.TaskUsage
}

// CycleHistogram is a cumulative histogram of allocation-cycle durations.
type CycleHistogram struct {
	Count uint64
	Sum   time.Duration
	// Buckets[i] counts the cycles that took at most CycleBuckets[i]
	// seconds (cumulative, like Prometheus buckets).
	Buckets []uint64
}

// cycleStats accumulates what Metrics reports of the cycles; guarded by
// Kernel.pmu.
type cycleStats struct {
	perBucket []uint64 // non-cumulative; len(CycleBuckets)+1 (the last is +Inf)
	count     uint64
	sum       time.Duration
	failures  map[string]uint64
}

// observe records a cycle that started at start.
func (s *cycleStats) observe(start time.Time) {
	d := time.Since(start)
	if s.perBucket == nil {
		s.perBucket = make([]uint64, len(CycleBuckets)+1)
	}
	i := 0
	for i < len(CycleBuckets) && d.Seconds() > CycleBuckets[i] {
		i++
	}
	s.perBucket[i]++
	s.count++
	s.sum += d
}

// failed records a cycle that policy failed.
func (s *cycleStats) failed(policy string) {
	if s.failures == nil {
		s.failures = map[string]uint64{}
	}
	s.failures[policy]++
}

// Metrics returns a consistent snapshot of the kernel's health and of
// every task's latest usage, taken from the committed read view (it
// never waits for a cycle or a commit). It does not touch the store. Safe
// for concurrent use.
func (k *Kernel) Metrics() Metrics {
	k.view.mu.RLock()
	defer k.view.mu.RUnlock()
	t := k.view.t
	k.pmu.Lock()
	m := Metrics{
		Revision:       t.Revision(),
		Agents:         map[pb.AgentState]int{},
		Allocations:    map[pb.AllocationState]int{},
		Tasks:          make([]TaskMetrics, 0, len(t.tasks)),
		Policy:         k.activeNameIn(t),
		PolicyFailures: map[string]uint64{},
		Cycles: CycleHistogram{
			Count: k.cycles.count, Sum: k.cycles.sum, Buckets: make([]uint64, len(CycleBuckets)),
		},
	}
	for name, n := range k.cycles.failures {
		m.PolicyFailures[name] = n
	}
	var cum uint64
	for i := range CycleBuckets {
		if k.cycles.perBucket != nil {
			cum += k.cycles.perBucket[i]
		}
		m.Cycles.Buckets[i] = cum
	}
	k.pmu.Unlock()
	for _, g := range t.agents {
		m.Agents[g.GetState()]++
	}
	for _, a := range t.allocs {
		m.Allocations[a.GetState()]++
	}
	t.memMu.RLock()
	defer t.memMu.RUnlock()
	for _, tk := range t.tasks {
		tm := TaskMetrics{
			ID: tk.GetId(), AllocationID: tk.GetAllocationId(), AgentID: tk.GetAgentId(), Owner: tk.GetOwner(),
			Role: t.allocs[tk.GetAllocationId()].GetRole(), State: tk.GetState(),
		}
		if u := t.usage[tk.GetId()]; u != nil {
			tm.Usage = proto.Clone(u).(*pb.TaskUsage)
		}
		m.Tasks = append(m.Tasks, tm)
	}
	return m
}
