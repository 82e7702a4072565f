//go:build linux

package cgroups

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dcos-kernel/dcos/internal/cpulist"
	"github.com/dcos-kernel/dcos/internal/executor/proc"
)

// cpusAllowed returns the Cpus_allowed_list of /proc/PID/status: the CPUs
// the scheduler lets the process run on.
func cpusAllowed(t *testing.T, pid int) cpulist.Set {
	t.Helper()
	v, err := proc.StatusField(pid, "Cpus_allowed_list")
	if err != nil {
		t.Fatal(err)
	}
	set, err := cpulist.Parse(v)
	if err != nil {
		t.Fatalf("/proc/%d/status: %v", pid, err)
	}
	return set
}

// cpusetDir returns the directory whose cpuset.cpus a task's CPUs are in.
func cpusetDir(l Layout, task *Task) string {
	if l.Mode == ModeUnified {
		return task.Paths()[KeyUnified]
	}
	return task.Paths()[KeyCPUSet]
}

// TestTask_CPUSet creates a real task cgroup confined to one CPU of its
// parent and checks that cpuset.cpus (and, v1, cpuset.mems) are set, that
// a process moved into it may run on that CPU only (Cpus_allowed_list),
// and that Update with CPUs "" gives it every CPU of the parent again.
func TestTask_CPUSet(t *testing.T) {
	l := testLayout(t)
	parent, err := l.ParentCPUs("")
	if errors.Is(err, ErrNotSupported) {
		t.Skipf("no cpuset controller: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for n := range cpulist.MaxCPU + 1 {
		if parent.Has(n) {
			last = n
		}
	}
	one := fmt.Sprint(last)
	task := newTestTask(t, l, Limits{MilliCPU: 500, CPUs: one})
	if !task.CPUSetSupported() {
		t.Fatal("CPUSetSupported false although ParentCPUs works")
	}
	d := cpusetDir(l, task)
	if got := readBack(t, d, "cpuset.cpus"); got != one {
		t.Errorf("cpuset.cpus = %q, want %q", got, one)
	}
	if l.Mode != ModeUnified && readBack(t, d, "cpuset.mems") == "" {
		t.Error("v1 cpuset.mems left empty: no process could join")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := task.AddProc(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if got := cpusAllowed(t, cmd.Process.Pid); got.String() != one {
		t.Errorf("Cpus_allowed_list = %q, want %q", got, one)
	}
	if err := task.Update(Limits{MilliCPU: 500}); err != nil {
		t.Fatalf("Update to every CPU: %v", err)
	}
	if got := cpusAllowed(t, cmd.Process.Pid); !got.Equal(parent) {
		t.Errorf("after Update with CPUs \"\": Cpus_allowed_list = %q, want the parent's %q", got, parent)
	}
}

// TestLayout_NewTask_badCPUs: a CPUs that is not a CPU list is refused
// before anything is made.
func TestLayout_NewTask_badCPUs(t *testing.T) {
	l := testLayout(t)
	name := testName(t)
	if _, err := l.NewTask("", name, Limits{CPUs: "1-"}); !errors.Is(err, cpulist.ErrSyntax) {
		t.Fatalf("NewTask with CPUs \"1-\": %v, want cpulist.ErrSyntax", err)
	}
	if h, ok := l.V1[KeyMemory]; ok {
		if _, err := os.Stat(filepath.Join(h.Dir(""), name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a cgroup was left behind: %v", err)
		}
	}
}

// TestFillCPUSetV1 runs the v1 fill on fake directories: empty levels get
// their parent's cpus and mems, set ones are kept.
func TestFillCPUSetV1(t *testing.T) {
	mount := fakeDir(t, map[string]string{"cpuset.cpus": "0-3\n", "cpuset.mems": "0\n"})
	mid := filepath.Join(mount, "dcos-tasks")
	leaf := filepath.Join(mid, "t1")
	for _, d := range []string{mid, leaf} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if err := os.WriteFile(filepath.Join(d, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(mid, "cpuset.cpus"), []byte("1-2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := Layout{Mode: ModeV1, V1: map[string]Hierarchy{KeyCPUSet: {Mount: mount, Root: "/", Self: "/"}}}
	for range 2 { // idempotent
		if err := l.fillCPUSetV1(leaf); err != nil {
			t.Fatal(err)
		}
	}
	for d, want := range map[string][2]string{mid: {"1-2", "0"}, leaf: {"1-2", "0"}} {
		if got := [2]string{readBack(t, d, "cpuset.cpus"), readBack(t, d, "cpuset.mems")}; got != want {
			t.Errorf("%s: cpus, mems = %q, want %q", d, got, want)
		}
	}
	if err := writeCPUSetV1(leaf, ""); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, leaf, "cpuset.cpus"); got != "1-2" {
		t.Errorf("writeCPUSetV1 \"\": %q, want the parent's 1-2", got)
	}
}

// TestTask_Update_fakeV2CPUSet: on pure v2 the cpuset goes to cpuset.cpus
// where the controller is enabled ("" when every CPU), and is skipped
// where it is not.
func TestTask_Update_fakeV2CPUSet(t *testing.T) {
	files := map[string]string{"memory.max": "", "cpu.max": "", "cpu.weight": "", "pids.max": ""}
	without := fakeDir(t, files)
	files["cpuset.cpus"] = ""
	with := fakeDir(t, files)
	for _, d := range []string{with, without} {
		task := &Task{mode: ModeUnified, paths: map[string]string{KeyUnified: d}, dirs: []string{d}, fd: -1}
		if err := task.Update(Limits{CPUs: "1-3"}); err != nil {
			t.Fatal(err)
		}
		if task.CPUSetSupported() != (d == with) {
			t.Errorf("%s: CPUSetSupported %v", d, task.CPUSetSupported())
		}
	}
	if got := readBack(t, with, "cpuset.cpus"); got != "1-3" {
		t.Errorf("cpuset.cpus = %q, want 1-3", got)
	}
	if _, err := os.Stat(filepath.Join(without, "cpuset.cpus")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cpuset.cpus written without the controller: %v", err)
	}
}

// TestLayout_enableControllers_fakeCPUSet: on pure v2, cpuset is enabled
// down to the task parent where each level has it, and left out (without
// an error) from the first level that lacks it, as a delegated cgroup
// may; ParentCPUs then says cpusets are not supported there.
func TestLayout_enableControllers_fakeCPUSet(t *testing.T) {
	root := fakeDir(t, map[string]string{"cgroup.subtree_control": "", "cgroup.controllers": "cpuset cpu memory pids"})
	mid := filepath.Join(root, "agent")
	leaf := filepath.Join(mid, "tasks")
	for d, ctrls := range map[string]string{mid: "cpuset cpu memory pids", leaf: "cpu memory pids"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, v := range map[string]string{"cgroup.subtree_control": "", "cgroup.controllers": ctrls} {
			if err := os.WriteFile(filepath.Join(d, f), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	l := Layout{Mode: ModeUnified, Unified: &Hierarchy{Mount: root, Root: "/", Self: "/"}, UnifiedControllers: []string{"cpuset", "cpu", "memory", "pids"}}
	if err := l.enableControllers(leaf); err != nil {
		t.Fatal(err)
	}
	for d, want := range map[string]string{root: "+memory +cpu +pids +cpuset", mid: "+memory +cpu +pids +cpuset", leaf: "+memory +cpu +pids"} {
		if got := readBack(t, d, "cgroup.subtree_control"); got != want {
			t.Errorf("%s: subtree_control %q, want %q", d, got, want)
		}
	}
	if _, err := l.ParentCPUs("/agent/tasks"); !errors.Is(err, ErrNotSupported) {
		t.Errorf("ParentCPUs without cpuset.cpus.effective: %v, want ErrNotSupported", err)
	}
	if err := os.WriteFile(filepath.Join(mid, "cpuset.cpus.effective"), []byte("0-3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := l.ParentCPUs("/agent"); err != nil || s.String() != "0-3" {
		t.Errorf("ParentCPUs(/agent) = %q, %v; want 0-3", s, err)
	}
}
