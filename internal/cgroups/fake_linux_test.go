//go:build linux

package cgroups

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeDir makes a directory of empty (or given) cgroup-like files, so the
// v2 code paths run on a host without a usable v2 hierarchy. Writes land at
// offset 0 of the regular files, as they would in cgroupfs.
func fakeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	d := t.TempDir()
	for f, v := range files {
		if err := os.WriteFile(filepath.Join(d, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestTask_Update_fakeV2(t *testing.T) {
	d := fakeDir(t, map[string]string{"memory.max": "", "memory.swap.max": "", "cpu.max": "", "cpu.weight": "", "pids.max": ""})
	task := &Task{mode: ModeUnified, paths: map[string]string{KeyUnified: d}, dirs: []string{d}, fd: -1}
	if err := task.Update(Limits{MemoryBytes: 64 << 20, MilliCPU: 500, Pids: 64}); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"memory.max": "67108864", "memory.swap.max": "0", "cpu.max": "50000 100000", "cpu.weight": "20", "pids.max": "64"} {
		if got := readBack(t, d, f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
}

func TestTask_Usage_fake(t *testing.T) {
	v2 := fakeDir(t, map[string]string{
		"cpu.stat":       "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
		"memory.current": "4096\n",
		"memory.peak":    "8192\n",
		"memory.events":  "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
		"cgroup.procs":   "12\n34\n",
	})
	v1mem := fakeDir(t, map[string]string{
		"memory.usage_in_bytes":     "4096\n",
		"memory.max_usage_in_bytes": "8192\n",
		"memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
		"cgroup.procs":              "12\n34\n",
	})
	v1acct := fakeDir(t, map[string]string{"cpuacct.usage": "1500000\n", "cpuacct.stat": "user 2\nsystem 1\n"})
	v1acctNoStat := fakeDir(t, map[string]string{"cpuacct.usage": "1500000\n"})
	split := Usage{CPUTimeNs: 1500000, CPUUserNs: 1000000, CPUSystemNs: 500000, MemoryBytes: 4096, MemoryPeakBytes: 8192, OOMKills: 1, Procs: 2}
	nosplit := split
	nosplit.CPUUserNs, nosplit.CPUSystemNs = 0, 0
	tests := []struct {
		name string
		task *Task
		want Usage
	}{
		{"unified", &Task{mode: ModeUnified, paths: map[string]string{KeyUnified: v2}}, split},
		{"hybrid", &Task{mode: ModeHybrid, paths: map[string]string{KeyMemory: v1mem, KeyCPUAcct: v1acct, KeyUnified: v2}}, split},
		{"hybrid without cpuacct", &Task{mode: ModeHybrid, paths: map[string]string{KeyMemory: v1mem, KeyUnified: v2}}, split},
		{"v1", &Task{mode: ModeV1, paths: map[string]string{KeyMemory: v1mem, KeyCPUAcct: v1acct}}, split},
		{"v1 without cpuacct.stat", &Task{mode: ModeV1, paths: map[string]string{KeyMemory: v1mem, KeyCPUAcct: v1acctNoStat}}, nosplit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tt.task.Usage()
			if err != nil {
				t.Fatal(err)
			}
			if u != tt.want {
				t.Errorf("Usage() = %+v, want %+v", u, tt.want)
			}
			if oom, err := tt.task.OOMKilled(); err != nil || !oom {
				t.Errorf("OOMKilled() = %v, %v", oom, err)
			}
		})
	}
}

func TestLayout_enableControllers_fake(t *testing.T) {
	root := fakeDir(t, map[string]string{"cgroup.subtree_control": "cpu memory pids"})
	sub := filepath.Join(root, "agent")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "cgroup.subtree_control"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l := Layout{Mode: ModeUnified, Unified: &Hierarchy{Mount: root, Root: "/", Self: "/agent"}}
	if err := l.enableControllers(sub); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, root, "cgroup.subtree_control"); got != "cpu memory pids" {
		t.Errorf("root rewritten: %q", got)
	}
	if got := readBack(t, sub, "cgroup.subtree_control"); got != "+memory +cpu +pids" {
		t.Errorf("agent subtree_control = %q, want one write of +memory +cpu +pids", got)
	}
	if err := l.enableControllers(filepath.Dir(root)); err == nil {
		t.Error("a directory outside the hierarchy was accepted")
	}
}

// TestTask_WatchOOM_fakeV2 drives the v2 (inotify on memory.events) path
// with a regular file, which inotify reports the same way.
func TestTask_WatchOOM_fakeV2(t *testing.T) {
	d := fakeDir(t, map[string]string{"memory.events": "oom 0\noom_kill 0\n"})
	task := &Task{mode: ModeUnified, paths: map[string]string{KeyUnified: d}, dirs: []string{d}, fd: -1}
	w, err := task.WatchOOM()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	next := func() uint64 {
		t.Helper()
		select {
		case n, ok := <-w.C:
			if !ok {
				t.Fatal("C closed")
			}
			return n
		case <-time.After(5 * time.Second):
			t.Fatal("no count within 5s")
		}
		return 0
	}
	if n := next(); n != 0 {
		t.Fatalf("first count %d, want 0", n)
	}
	start := time.Now()
	if err := os.WriteFile(filepath.Join(d, "memory.events"), []byte("oom 2\noom_kill 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := next(); n != 2 {
		t.Fatalf("count %d, want 2", n)
	}
	if el := time.Since(start); el >= oomBackstop {
		t.Errorf("count arrived after %v: inotify did not fire, the backstop did", el)
	}
	w.Close()
	w.Close()
	if _, ok := <-w.C; ok {
		t.Error("C open after Close")
	}
}
