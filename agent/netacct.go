package agent

import (
	"errors"
	"slices"

	"github.com/dcos-kernel/dcos/ebpf"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Network accounting: when Config.Net is set, each isolated task's cgroup v2
// directory gets the eBPF counters (package ebpf) before the task starts;
// its samples carry the counters; they are detached when the task ends.
// Counting survives agent restarts through the accounting's pins: a
// recovered task's cgroup is attached again, which adopts its pinned links
// and keeps its counts.

// netAttach attaches the counters to the first cgroup v2 directory of dirs
// (the isolator's LaunchInfo.Cgroups) and records it in tk. Failures are
// logged: the task runs without network counters.
func (a *Agent) netAttach(tk *task, dirs []string) {
	if a.net == nil {
		return
	}
	for _, d := range dirs {
		if _, err := ebpf.CgroupID(d); err != nil {
			continue // not a cgroup v2 directory
		}
		at, err := a.net.Attach(d)
		if err != nil {
			a.log.Warn("task runs without network accounting", "task", tk.id, "cgroup", d, "err", err)
			return
		}
		a.mu.Lock()
		tk.netDir, tk.netAt = d, at
		a.mu.Unlock()
		return
	}
}

// netDetach removes tk's counters.
func (a *Agent) netDetach(tk *task) {
	a.mu.Lock()
	at := tk.netAt
	tk.netAt = nil
	a.mu.Unlock()
	if at == nil {
		return
	}
	if err := at.Detach(); err != nil {
		a.log.Warn("cannot detach network accounting", "task", tk.id, "err", err)
	}
}

// netUsage adds tk's network counters to u.
func (a *Agent) netUsage(tk *task, u *syscallsv1.TaskUsage) {
	a.mu.Lock()
	at := tk.netAt
	a.mu.Unlock()
	if at == nil {
		return
	}
	c, err := at.Counters()
	if err != nil {
		return
	}
	u.RxBytes, u.TxBytes, u.RxPackets, u.TxPackets = c.RxBytes, c.TxBytes, c.RxPackets, c.TxPackets
}

// netRecover attaches the counters of recovered tasks again (adopting the
// pinned links, so counts go on) and drops the counters of cgroups whose
// tasks are gone.
func (a *Agent) netRecover(live []*task) {
	if a.net == nil {
		return
	}
	var keep []uint64
	for _, tk := range live {
		if tk.netDir == "" {
			continue
		}
		at, err := a.net.Attach(tk.netDir)
		if err != nil {
			a.log.Warn("recovered task runs without network accounting", "task", tk.id, "cgroup", tk.netDir, "err", err)
			tk.netDir = ""
			continue
		}
		tk.netAt = at
		keep = append(keep, at.CgroupID())
	}
	ids, err := a.net.Registered()
	if err != nil {
		a.log.Warn("cannot list network counters", "err", err)
		return
	}
	for _, id := range ids {
		if !slices.Contains(keep, id) {
			if err := a.net.Forget(id); err != nil && !errors.Is(err, ebpf.ErrNotAttached) {
				a.log.Warn("cannot drop the network counters of an ended task", "cgroup_id", id, "err", err)
			}
		}
	}
}
