//go:build linux

package cgroups

import (
	"os/exec"
	"testing"
)

// TestTask_CPUIdle checks that an idle task's cpu cgroup has cpu.idle = 1
// and a normal one 0, that Update moves a task between the classes (a
// weight written after it leaves the idle class sticks), and that a task
// with a process in it can be made idle.
func TestTask_CPUIdle(t *testing.T) {
	l := testLayout(t)
	normal := newTestTask(t, l, Limits{MilliCPU: 500})
	if !normal.CPUIdleSupported() {
		t.Skip("kernel lacks cgroup cpu.idle (Linux >= 5.15): the idle class is not enforced here")
	}
	idle := newTestTask(t, l, Limits{MilliCPU: 500, CPUIdle: true})
	dir := func(task *Task) string {
		if l.Mode == ModeUnified {
			return task.Paths()[KeyUnified]
		}
		return task.Paths()[KeyCPU]
	}
	weightFile, weight := "cpu.shares", "1024"
	if l.Mode == ModeUnified {
		weightFile, weight = "cpu.weight", "39"
	}
	if got := readBack(t, dir(normal), "cpu.idle"); got != "0" {
		t.Errorf("normal task: cpu.idle = %q, want 0", got)
	}
	if got := readBack(t, dir(idle), "cpu.idle"); got != "1" {
		t.Errorf("idle task: cpu.idle = %q, want 1", got)
	}

	// A running process, then back to normal with a new weight, then idle
	// again.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := idle.AddProc(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := idle.Update(Limits{MilliCPU: 1000}); err != nil {
		t.Fatalf("Update to normal: %v", err)
	}
	if got := readBack(t, dir(idle), "cpu.idle"); got != "0" {
		t.Errorf("after Update to normal: cpu.idle = %q, want 0", got)
	}
	if got := readBack(t, dir(idle), weightFile); got != weight {
		t.Errorf("after Update to normal: %s = %q, want %q", weightFile, got, weight)
	}
	for range 2 { // idempotent
		if err := idle.Update(Limits{MilliCPU: 2000, CPUIdle: true}); err != nil {
			t.Fatalf("Update to idle: %v", err)
		}
	}
	if got := readBack(t, dir(idle), "cpu.idle"); got != "1" {
		t.Errorf("after Update to idle: cpu.idle = %q, want 1", got)
	}
	if got := readBack(t, dir(idle), "cpu.cfs_quota_us"); l.Mode != ModeUnified && got != "200000" {
		t.Errorf("idle task: cpu.cfs_quota_us = %q, want 200000 (the quota still applies)", got)
	}
	if err := idle.Kill(); err != nil {
		t.Fatal(err)
	}
}
