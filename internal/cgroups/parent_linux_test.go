//go:build linux

package cgroups

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// removeParent removes parent's directories, failing the test if any is left.
func removeParent(t *testing.T, l Layout, parent string) {
	t.Helper()
	dirs, err := l.ParentDirs(parent)
	if err != nil {
		t.Fatal(err)
	}
	for k, d := range dirs {
		if err := rmdirRetry(d); err != nil {
			t.Errorf("remove %s parent: %v", k, err)
		}
	}
}

func TestLayout_MakeParent_Children(t *testing.T) {
	l := testLayout(t)
	parent := testName(t) // relative: beneath the test's own cgroups
	t.Cleanup(func() { removeParent(t, l, parent) })
	if names, err := l.Children(parent); err != nil || len(names) != 0 {
		t.Fatalf("Children of a missing parent = %v, %v", names, err)
	}
	for range 2 { // idempotent
		if err := l.MakeParent(parent); err != nil {
			t.Fatal(err)
		}
	}
	dirs, err := l.ParentDirs(parent)
	if err != nil {
		t.Fatal(err)
	}
	for k, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err != nil {
			t.Errorf("%s parent: %v", k, err)
		}
		if h, ok := l.V1[k]; ok && filepath.Dir(d) != h.Dir("") {
			t.Errorf("%s parent %s not beneath own cgroup %s", k, d, h.Dir(""))
		}
	}
	var tasks []*Task
	for _, n := range []string{"b", "a"} {
		task, err := l.NewTask(parent, n, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, task)
	}
	// Only in one hierarchy: still a child.
	stray := filepath.Join(dirs[KeyPids], "c")
	if err := os.Mkdir(stray, 0o755); err != nil {
		t.Fatal(err)
	}
	names, err := l.Children(parent)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(names, want) {
		t.Errorf("Children = %v, want %v", names, want)
	}
	for _, task := range tasks {
		destroyAndCheck(t, task)
	}
	if err := rmdirRetry(stray); err != nil {
		t.Fatal(err)
	}
}

// TestLayout_MoveToLeaf runs in the unified hierarchy (the v2 one of a hybrid
// host will do: moving processes needs no controller).
func TestLayout_MoveToLeaf(t *testing.T) {
	l := testLayout(t)
	if l.Unified == nil {
		t.Skip("no cgroup v2 hierarchy mounted")
	}
	v2 := Layout{Mode: l.Mode, Unified: l.Unified, V1: l.V1, UnifiedControllers: l.UnifiedControllers}
	name := testName(t)
	d := v2.Unified.Dir(name)
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	leafDir := filepath.Join(d, "agent")
	t.Cleanup(func() {
		for _, dir := range []string{leafDir, d} {
			task := &Task{mode: ModeUnified, paths: map[string]string{KeyUnified: dir}, dirs: []string{dir}, fd: -1}
			if err := task.Destroy(); err != nil {
				t.Error(err)
			}
		}
	})
	if n, err := v2.MoveToLeaf(name, "agent"); err != nil || n != 0 {
		t.Fatalf("MoveToLeaf of an empty cgroup = %d, %v", n, err)
	}
	if _, err := os.Stat(leafDir); !os.IsNotExist(err) {
		t.Errorf("leaf made for an empty cgroup: %v", err)
	}
	var pids []int
	for range 2 {
		cmd, _ := startGated(t, "sleep 30", nil)
		if err := writeFile(d, "cgroup.procs", strconv.Itoa(cmd.Process.Pid)); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, cmd.Process.Pid)
	}
	n, err := v2.MoveToLeaf(name, "agent")
	if err != nil || n != 2 {
		t.Fatalf("MoveToLeaf = %d, %v; want 2", n, err)
	}
	if got := procsOf(t, d); len(got) != 0 {
		t.Errorf("left in %s: %v", d, got)
	}
	if got := procsOf(t, leafDir); !slices.Equal(got, pids) && !slices.Equal(got, []int{pids[1], pids[0]}) {
		t.Errorf("leaf holds %v, want %v", got, pids)
	}
	if _, err := v2.MoveToLeaf("/", "agent"); err == nil {
		t.Error("MoveToLeaf of the root cgroup accepted")
	}
	if _, err := v2.MoveToLeaf(name, "a/b"); !errors.Is(err, errBadName) {
		t.Errorf("leaf a/b: %v, want errBadName", err)
	}
}

func TestTask_WatchOOM(t *testing.T) {
	l := testLayout(t)
	task := newTestTask(t, l, Limits{MemoryBytes: 32 << 20, MilliCPU: 1000, Pids: 64})
	w, err := task.WatchOOM()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if n := <-w.C; n != 0 {
		t.Fatalf("first count %d, want 0", n)
	}
	cmd := exec.Command("sh", "-c", `read x; exec dd if=/dev/zero of=/dev/null bs=64M count=1`)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := task.AddProc(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal(err)
	}
	start := time.Now()
	_, _ = io.WriteString(in, "go\n")
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("dd: %v, want killed", err)
	}
	select {
	case n := <-w.C:
		t.Logf("oom_kill %d after %v", n, time.Since(start))
		if n < 1 {
			t.Errorf("count %d", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no OOM kill reported within 5s")
	}
	// Removing the cgroup closes C.
	if err := task.Destroy(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-w.C:
		if ok {
			t.Error("another count after Destroy")
		}
	case <-time.After(5 * time.Second):
		t.Error("C not closed within 5s of Destroy")
	}
}
