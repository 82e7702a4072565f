package cgroups

import (
	"path"
	"strings"
)

// Hierarchy keys used by Task.Paths.
const (
	KeyMemory  = "memory"
	KeyCPU     = "cpu"
	KeyCPUAcct = "cpuacct"
	KeyPids    = "pids"
	// KeyCPUSet is the task's v1 cpuset directory (Limits.CPUs), present
	// when the host mounts a v1 cpuset hierarchy the process is in. On pure
	// v2 the cpuset controller works in the KeyUnified directory.
	KeyCPUSet = "cpuset"
	// KeyUnified is the task's v2 directory: the only one in ModeUnified,
	// the BPF/cgroup.kill directory in ModeHybrid.
	KeyUnified = "unified"
)

// taskPaths returns the directory of task name beneath parent (a cgroup path
// as in /proc/self/cgroup; "" for the current process's own cgroup) in every
// hierarchy the layout's mode uses, keyed by the Key constants.
func (l Layout) taskPaths(parent, name string) (map[string]string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00\n") {
		return nil, errBadName
	}
	if err := l.Check(); err != nil {
		return nil, err
	}
	p := map[string]string{}
	if l.Mode == ModeV1 || l.Mode == ModeHybrid {
		for _, c := range []string{KeyMemory, KeyCPU, KeyCPUAcct, KeyPids, KeyCPUSet} {
			if h, ok := l.V1[c]; ok {
				p[c] = path.Join(h.Dir(parent), name)
			}
		}
	}
	if l.Unified != nil && (l.Mode == ModeHybrid || l.Mode == ModeUnified) {
		p[KeyUnified] = path.Join(l.Unified.Dir(parent), name)
	}
	return p, nil
}
