package cgroups

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dcos-kernel/dcos/internal/cpulist"
)

// Limits are the resource limits of one task. A zero field means "no limit"
// (and, for MilliCPU, the default weight).
type Limits struct {
	// MemoryBytes caps memory (and, where the kernel allows, memory+swap:
	// tasks do not swap).
	MemoryBytes int64
	// MilliCPU is the CPU allocation in thousandths of a CPU: both the hard
	// CFS quota (500 = 50000µs per 100000µs) and the relative weight.
	MilliCPU int64
	// Pids caps the number of processes and threads.
	Pids int64
	// CPUIdle makes the task's cpu cgroup an idle group (cpu.idle = 1,
	// Linux >= 5.15; SCHED_IDLE-like): its threads run on CPU time that
	// normal tasks leave, and a waking normal task preempts them at once.
	// The CFS quota still applies; the weight does not (an idle group has
	// the smallest). On a kernel without cpu.idle it is ignored: see
	// Task.CPUIdleSupported.
	CPUIdle bool
	// CPUs is the Linux CPU list ("1-3,5") the task's processes may run
	// on (cpuset.cpus); "" is every CPU of the task's parent cgroup. It
	// must be within ParentCPUs (the kernel refuses others: a *FileError
	// wrapping EINVAL in v1; in v2 the task gets only those it may have).
	// Without a cpuset controller it is ignored: see
	// Task.CPUSetSupported.
	CPUs string
}

// Validate reports a negative field or a CPUs that is not a CPU list.
func (l Limits) Validate() error {
	if l.MemoryBytes < 0 || l.MilliCPU < 0 || l.Pids < 0 {
		return fmt.Errorf("cgroups: negative limit in %+v", l)
	}
	if _, err := cpulist.Parse(l.CPUs); err != nil {
		return fmt.Errorf("cgroups: cpus: %w", err)
	}
	return nil
}

// CFSPeriodUs is the CFS period used for CPU quotas.
const CFSPeriodUs = 100000

// minQuotaUs is the kernel's smallest CFS quota.
const minQuotaUs = 1000

// cfsQuota returns the CFS quota in µs per CFSPeriodUs for millicores, or -1
// for no quota.
func cfsQuota(milli int64) int64 {
	if milli <= 0 {
		return -1
	}
	return max(milli*CFSPeriodUs/1000, minQuotaUs)
}

// cpuShares returns the v1 cpu.shares for millicores (1024 per CPU, as
// Kubernetes and Mesos do; 1024 when unset).
func cpuShares(milli int64) int64 {
	if milli <= 0 {
		return 1024
	}
	return min(max(milli*1024/1000, 2), 262144)
}

// cpuWeight returns the v2 cpu.weight for millicores, mapped from shares
// the way Kubernetes maps them ([2, 262144] → [1, 10000]).
func cpuWeight(milli int64) int64 {
	s := cpuShares(milli)
	return 1 + (s-2)*9999/262142
}

// cpuMax returns the v2 cpu.max value for millicores.
func cpuMax(milli int64) string {
	q := cfsQuota(milli)
	if q < 0 {
		return "max " + strconv.Itoa(CFSPeriodUs)
	}
	return strconv.FormatInt(q, 10) + " " + strconv.Itoa(CFSPeriodUs)
}

// Usage is a snapshot of one task's resource use.
type Usage struct {
	// CPUTimeNs is the CPU time used, in nanoseconds.
	CPUTimeNs uint64
	// CPUUserNs and CPUSystemNs split CPUTimeNs into user and system time;
	// both are 0 when the kernel gives no split.
	CPUUserNs, CPUSystemNs uint64
	// MemoryBytes is the memory in use now.
	MemoryBytes uint64
	// MemoryPeakBytes is the most memory ever in use (v1
	// memory.max_usage_in_bytes, v2 memory.peak; 0 if the kernel lacks it).
	MemoryPeakBytes uint64
	// OOMKills counts processes the kernel's OOM killer killed in the task.
	OOMKills uint64
	// Procs is the number of processes in the task's memory cgroup (the v2
	// one on a pure v2 host): its processes, as long as they were all
	// placed with AddProc or joined every directory of Paths.
	Procs uint64
}

// parseKeyed returns the value of key in a flat-keyed file such as
// memory.events, memory.oom_control or cpu.stat ("key value" per line).
func parseKeyed(text, key string) (uint64, bool) {
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			n, err := strconv.ParseUint(f[1], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// splitTicks apportions total (ns) between user and system time by the
// "user" and "system" tick counts of a v1 cpuacct.stat. The two results sum
// to total. With no ticks counted yet (or a malformed file) it returns 0, 0.
func splitTicks(total uint64, cpuacctStat string) (user, system uint64) {
	u, ok1 := parseKeyed(cpuacctStat, "user")
	s, ok2 := parseKeyed(cpuacctStat, "system")
	if !ok1 || !ok2 || u+s == 0 {
		return 0, 0
	}
	// total*u may overflow uint64: take the ratio in floats, and keep the
	// sum exact with integers.
	user = uint64(float64(total) * float64(u) / float64(u+s))
	user = min(user, total)
	return user, total - user
}

// parsePids parses cgroup.procs.
func parsePids(text string) ([]int, error) {
	var pids []int
	for _, f := range strings.Fields(text) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("cgroups: bad pid %q in cgroup.procs", f)
		}
		pids = append(pids, n)
	}
	return pids, nil
}
