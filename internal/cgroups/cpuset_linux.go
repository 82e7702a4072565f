//go:build linux

package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/cpulist"
)

// The cpuset controller (Limits.CPUs). In v1 a new cpuset cgroup starts
// with empty cpuset.cpus and cpuset.mems, and a process cannot join it
// (ENOSPC) until both are set: fillCPUSetV1 copies them from the parent
// into every level it finds empty, from the hierarchy's mount down. In v2
// an empty cpuset.cpus means "the parent's", so only the controller has to
// be enabled (wantedV2), where the host has it.

// wantedV2 are the controllers to enable in v2 directory dir on the way
// down to task cgroups on a pure v2 host: the required ones, and cpuset
// where dir has it (a delegated cgroup may lack it: then no task gets it,
// and cpusets are not enforced).
func (l Layout) wantedV2(dir string) []string {
	if !slices.Contains(l.UnifiedControllers, "cpuset") {
		return requiredV2
	}
	if s, err := readFile(dir, "cgroup.controllers"); err == nil && slices.Contains(strings.Fields(s), "cpuset") {
		return append(slices.Clone(requiredV2), "cpuset")
	}
	return requiredV2
}

// fillCPUSetV1 gives every cgroup from the v1 cpuset mount down to dir
// whose cpuset.cpus or cpuset.mems is empty its parent's value. dir "" (no
// v1 cpuset hierarchy) is a no-op. It is idempotent.
func (l Layout) fillCPUSetV1(dir string) error {
	h, ok := l.V1[KeyCPUSet]
	if dir == "" || !ok {
		return nil
	}
	rel, err := filepath.Rel(h.Mount, dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return nil // the mount itself (always full) or not beneath it
	}
	up := h.Mount
	for _, part := range strings.Split(rel, "/") {
		d := filepath.Join(up, part)
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, err := readFile(d, f)
			if err != nil {
				return err
			}
			if strings.TrimSpace(cur) != "" {
				continue
			}
			v, err := readFile(up, f)
			if err != nil {
				return err
			}
			if err := writeFile(d, f, strings.TrimSpace(v)); err != nil {
				return err
			}
		}
		up = d
	}
	return nil
}

// writeCPUSetV1 writes cpus to the v1 cpuset directory dir, or the
// parent's cpuset.cpus when cpus is "". dir "" is a no-op.
func writeCPUSetV1(dir, cpus string) error {
	if dir == "" {
		return nil
	}
	if cpus == "" {
		v, err := readFile(filepath.Dir(dir), "cpuset.cpus")
		if err != nil {
			return err
		}
		cpus = strings.TrimSpace(v)
	}
	return writeFile(dir, "cpuset.cpus", cpus)
}

// CPUSetSupported reports whether the task has a cpuset controller (a v1
// cpuset directory, or cpuset.cpus in its v2 directory on a pure v2 host):
// without one Limits.CPUs is ignored and the task runs on every CPU its
// parent has.
func (t *Task) CPUSetSupported() bool {
	if t.mode == ModeUnified {
		return exists(t.paths[KeyUnified], "cpuset.cpus")
	}
	return t.paths[KeyCPUSet] != ""
}

// ParentCPUs returns the CPUs that task cgroups beneath parent (as for
// NewTask) may use: the parent's effective CPUs (v1 cpuset.effective_cpus,
// v2 cpuset.cpus.effective). Call it after MakeParent. Without a cpuset
// controller it returns a *NotSupportedError for "cpuset".
func (l Layout) ParentCPUs(parent string) (cpulist.Set, error) {
	var dir, file string
	switch h, ok := l.V1[KeyCPUSet]; {
	case (l.Mode == ModeV1 || l.Mode == ModeHybrid) && ok:
		dir, file = h.Dir(parent), "cpuset.effective_cpus"
	case l.Mode == ModeUnified && l.Unified != nil && slices.Contains(l.UnifiedControllers, "cpuset"):
		dir, file = l.Unified.Dir(parent), "cpuset.cpus.effective"
	default:
		return cpulist.Set{}, &NotSupportedError{Controller: KeyCPUSet, Reason: "no cpuset controller"}
	}
	if !exists(dir, file) {
		return cpulist.Set{}, &NotSupportedError{Controller: KeyCPUSet, Reason: "no " + file + " in " + dir}
	}
	s, err := readFile(dir, file)
	if err != nil {
		return cpulist.Set{}, err
	}
	set, err := cpulist.Parse(s)
	if err != nil {
		return cpulist.Set{}, &FileError{Op: "read", File: file, Dir: dir, Err: err}
	}
	return set, nil
}

// AddCPUSet creates task t's v1 cpuset directory if the layout has a v1
// cpuset hierarchy and the directory is missing: for a task made before
// this package confined CPUs (an agent upgraded while its tasks ran),
// which Recover-style callers would otherwise find incomplete. The new
// cgroup gets its parent's CPUs and memory nodes; the task's processes are
// not moved into it (they run where they did, unconfined, until the task
// ends). It reports whether it made the directory; it is idempotent.
func (l Layout) AddCPUSet(t *Task) (bool, error) {
	d := t.paths[KeyCPUSet]
	if d == "" {
		return false, nil
	}
	if err := mkdir(KeyCPUSet, d, false); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, nil
		}
		return false, err
	}
	if err := l.fillCPUSetV1(d); err != nil {
		_ = unix.Rmdir(d)
		return false, err
	}
	return true, nil
}
