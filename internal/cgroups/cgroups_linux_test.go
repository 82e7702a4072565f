//go:build linux

package cgroups

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var taskSeq atomic.Int64

// testLayout returns the detected layout, skipping the test when not root or
// when a controller is truly missing (saying which).
func testLayout(t *testing.T) Layout {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: creating cgroups needs root")
	}
	l, err := Detect()
	if err != nil {
		if errors.Is(err, ErrNotSupported) {
			t.Skipf("cgroups: %v", err)
		}
		t.Fatal(err)
	}
	if err := l.Check(); err != nil {
		var nse *NotSupportedError
		if errors.As(err, &nse) {
			t.Skipf("controller %s missing: %v", nse.Controller, err)
		}
		t.Fatal(err)
	}
	t.Logf("layout %v", l.Mode)
	return l
}

var nonName = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// testName returns a cgroup name unique to this process and test.
func testName(t *testing.T) string {
	return fmt.Sprintf("dcos-test-%d-%d-%s", os.Getpid(), taskSeq.Add(1), nonName.ReplaceAllString(t.Name(), "_"))
}

// newTestTask creates a task beneath the test process's own cgroups and
// destroys it at cleanup, asserting its directories are gone.
func newTestTask(t *testing.T, l Layout, limits Limits) *Task {
	t.Helper()
	task, err := l.NewTask("", testName(t), limits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { destroyAndCheck(t, task) })
	return task
}

// taskName returns the name a task was created with.
func taskName(task *Task) string {
	for _, d := range task.Paths() {
		return filepath.Base(d)
	}
	return ""
}

func destroyAndCheck(t *testing.T, task *Task) {
	t.Helper()
	if err := task.Destroy(); err != nil {
		t.Errorf("Destroy: %v", err)
	}
	for k, d := range task.Paths() {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s cgroup %s still there after Destroy (stat: %v)", k, d, err)
		}
	}
}

func readBack(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestDetect(t *testing.T) {
	l := testLayout(t)
	if l.Mode == ModeHybrid || l.Mode == ModeV1 {
		for _, c := range requiredV1 {
			if _, err := os.Stat(l.V1[c].Dir("")); err != nil {
				t.Errorf("own %s cgroup: %v", c, err)
			}
		}
	}
	if l.Unified != nil {
		if _, err := os.Stat(filepath.Join(l.Unified.Dir(""), "cgroup.procs")); err != nil {
			t.Errorf("own v2 cgroup: %v", err)
		}
	}
	if err := l.CheckAccess(""); err != nil {
		t.Errorf("CheckAccess as root: %v", err)
	}
}

func TestLayout_NewTask_limits(t *testing.T) {
	l := testLayout(t)
	task := newTestTask(t, l, Limits{MemoryBytes: 64 << 20, MilliCPU: 500, Pids: 64})
	p := task.Paths()
	check := func(dir, file, want string) {
		t.Helper()
		if got := readBack(t, dir, file); got != want {
			t.Errorf("%s/%s = %q, want %q", dir, file, got, want)
		}
	}
	if l.Mode == ModeUnified {
		check(p[KeyUnified], "memory.max", "67108864")
		check(p[KeyUnified], "cpu.max", "50000 100000")
		check(p[KeyUnified], "pids.max", "64")
	} else {
		check(p[KeyMemory], "memory.limit_in_bytes", "67108864")
		if exists(p[KeyMemory], "memory.memsw.limit_in_bytes") {
			check(p[KeyMemory], "memory.memsw.limit_in_bytes", "67108864")
		}
		check(p[KeyCPU], "cpu.cfs_quota_us", "50000")
		check(p[KeyCPU], "cpu.cfs_period_us", "100000")
		check(p[KeyCPU], "cpu.shares", "512")
		check(p[KeyPids], "pids.max", "64")
	}
	if l.Mode == ModeHybrid {
		if _, err := os.Stat(p[KeyUnified]); err != nil {
			t.Errorf("hybrid: no v2 directory: %v", err)
		}
	}

	// Raise, then lower: memsw must follow the limit both ways.
	for _, lim := range []Limits{{MemoryBytes: 128 << 20, MilliCPU: 2000}, {MemoryBytes: 32 << 20, MilliCPU: 250, Pids: 8}} {
		if err := task.Update(lim); err != nil {
			t.Fatalf("Update(%+v): %v", lim, err)
		}
		mem := strconv.FormatInt(lim.MemoryBytes, 10)
		pids := "max"
		if lim.Pids > 0 {
			pids = strconv.FormatInt(lim.Pids, 10)
		}
		if l.Mode == ModeUnified {
			check(p[KeyUnified], "memory.max", mem)
			check(p[KeyUnified], "cpu.max", fmt.Sprintf("%d 100000", lim.MilliCPU*100))
			check(p[KeyUnified], "pids.max", pids)
		} else {
			check(p[KeyMemory], "memory.limit_in_bytes", mem)
			if exists(p[KeyMemory], "memory.memsw.limit_in_bytes") {
				check(p[KeyMemory], "memory.memsw.limit_in_bytes", mem)
			}
			check(p[KeyCPU], "cpu.cfs_quota_us", strconv.FormatInt(lim.MilliCPU*100, 10))
			check(p[KeyPids], "pids.max", pids)
		}
	}
}

func TestLayout_NewTask_parent(t *testing.T) {
	l := testLayout(t)
	parent := "/" + testName(t)
	task, err := l.NewTask(parent, "task", Limits{MemoryBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		destroyAndCheck(t, task)
		for k, d := range task.Paths() {
			if err := rmdirRetry(filepath.Dir(d)); err != nil {
				t.Errorf("remove %s parent: %v", k, err)
			}
		}
	})
	for k, d := range task.Paths() {
		if want := filepath.Join(parent, "task"); !strings.HasSuffix(d, want) {
			t.Errorf("%s path %s does not end in %s", k, d, want)
		}
		if _, err := os.Stat(d); err != nil {
			t.Error(err)
		}
	}
}

func TestLayout_NewTask_errors(t *testing.T) {
	l := testLayout(t)
	task := newTestTask(t, l, Limits{})
	_, err := l.NewTask("", taskName(task), Limits{})
	var fe *FileError
	if !errors.As(err, &fe) || fe.Op != "mkdir" || !errors.Is(err, os.ErrExist) {
		t.Errorf("NewTask on an existing name: %v, want mkdir EEXIST", err)
	}
	if _, err := l.NewTask("", testName(t), Limits{Pids: -1}); err == nil {
		t.Error("negative limit accepted")
	}
	if _, err := l.NewTask("", "a/b", Limits{}); err == nil {
		t.Error("name with a slash accepted")
	}
	// Errors name the file, the value and the directory.
	dir, file := task.Paths()[KeyCPU], "cpu.cfs_quota_us"
	if l.Mode == ModeUnified {
		dir, file = task.UnifiedDir(), "cpu.max"
	}
	err = writeFile(dir, file, "10")
	want := fmt.Sprintf("write %s=10 in %s: EINVAL", file, dir)
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

// startGated starts sh -c "read x; script": the shell waits on stdin, so it
// can be moved into a cgroup before the script runs. release starts it.
func startGated(t *testing.T, script string, attr *syscall.SysProcAttr) (cmd *exec.Cmd, release func()) {
	t.Helper()
	cmd = exec.Command("sh", "-c", "read x; "+script)
	cmd.SysProcAttr = attr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = in.Close()
		<-done
	})
	return cmd, func() {
		if _, err := io.WriteString(in, "go\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func procsOf(t *testing.T, dir string) []int {
	t.Helper()
	pids, err := parsePids(readBack(t, dir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

func TestTask_AddProc(t *testing.T) {
	l := testLayout(t)
	task := newTestTask(t, l, Limits{MemoryBytes: 64 << 20, MilliCPU: 500, Pids: 64})
	cmd, _ := startGated(t, "sleep 30", nil)
	if err := task.AddProc(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	for k, d := range task.Paths() {
		if !slices.Contains(procsOf(t, d), cmd.Process.Pid) {
			t.Errorf("pid %d not in %s cgroup.procs", cmd.Process.Pid, k)
		}
	}
	if err := task.AddProc(0); err == nil {
		t.Error("AddProc(0) accepted")
	}
}

func TestTask_FD(t *testing.T) {
	l := testLayout(t)
	task := newTestTask(t, l, Limits{MemoryBytes: 64 << 20, MilliCPU: 500, Pids: 64})
	fd, err := task.FD()
	if l.Mode == ModeV1 {
		if !errors.Is(err, ErrNotSupported) {
			t.Fatalf("FD on v1: %v, want ErrNotSupported", err)
		}
		t.Skip("v1 only: clone3(CLONE_INTO_CGROUP) needs a v2 hierarchy")
	}
	if err != nil {
		t.Fatal(err)
	}
	if fd2, _ := task.FD(); fd2 != fd {
		t.Errorf("FD not cached: %d then %d", fd, fd2)
	}
	cmd, _ := startGated(t, "sleep 30", &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd})
	if !slices.Contains(procsOf(t, task.UnifiedDir()), cmd.Process.Pid) {
		t.Errorf("pid %d started with UseCgroupFD not in %s", cmd.Process.Pid, task.UnifiedDir())
	}
}

func TestTask_OOM(t *testing.T) {
	l := testLayout(t)
	task := newTestTask(t, l, Limits{MemoryBytes: 32 << 20, MilliCPU: 1000, Pids: 64})
	cmd := exec.Command("sh", "-c", `read x; x=$(head -c 200000000 /dev/zero | tr "\0" "x"); echo survived`)
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
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("wait: %v, want the shell killed", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("shell ended with %v, want SIGKILL", ws)
	}
	oom, err := task.OOMKilled()
	if err != nil || !oom {
		t.Errorf("OOMKilled() = %v, %v; want true", oom, err)
	}
	u, err := task.Usage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("usage %+v", u)
	if u.OOMKills < 1 {
		t.Errorf("Usage().OOMKills = %d, want >= 1", u.OOMKills)
	}
	if u.MemoryPeakBytes == 0 && l.Mode != ModeUnified {
		t.Error("Usage().MemoryPeakBytes = 0")
	}
	if u.MemoryPeakBytes > 32<<20 {
		t.Errorf("peak %d above the 32 MiB limit", u.MemoryPeakBytes)
	}
}

func TestTask_Usage(t *testing.T) {
	l := testLayout(t)
	task := newTestTask(t, l, Limits{MemoryBytes: 64 << 20, MilliCPU: 1000, Pids: 64})
	before, err := task.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if before.CPUTimeNs != 0 {
		t.Errorf("fresh task used CPU: %+v", before)
	}
	cmd := exec.Command("sh", "-c", `read x; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done`)
	in, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := task.AddProc(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal(err)
	}
	_, _ = io.WriteString(in, "go\n")
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	u, err := task.Usage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("usage %+v", u)
	if u.CPUTimeNs == 0 {
		t.Error("CPUTimeNs = 0 after a busy loop")
	}
	if u.OOMKills != 0 {
		t.Errorf("OOMKills = %d", u.OOMKills)
	}
	if oom, err := task.OOMKilled(); err != nil || oom {
		t.Errorf("OOMKilled() = %v, %v", oom, err)
	}
}

func TestTask_Kill(t *testing.T) {
	l := testLayout(t)
	task := newTestTask(t, l, Limits{MemoryBytes: 64 << 20, MilliCPU: 500, Pids: 64})
	cmd, release := startGated(t, "sleep 30 & sleep 30 & wait", nil)
	if err := task.AddProc(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	release()
	// Wait until the shell has forked both sleeps (bounded, not timed).
	for i := 0; ; i++ {
		pids, err := task.Procs()
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) >= 3 {
			break
		}
		if i == 1000 {
			t.Fatalf("only %v in the task after 1000 polls", pids)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := task.Kill(); err != nil {
		t.Fatal(err)
	}
	for k, d := range task.Paths() {
		if pids := procsOf(t, d); len(pids) != 0 {
			t.Errorf("%s cgroup.procs after Kill: %v", k, pids)
		}
	}
	if err := task.Kill(); err != nil {
		t.Errorf("Kill on an empty task: %v", err)
	}
}

func TestTask_Destroy(t *testing.T) {
	l := testLayout(t)
	task, err := l.NewTask("", testName(t), Limits{MemoryBytes: 64 << 20, MilliCPU: 500, Pids: 64})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := task.FD(); err != nil && l.Mode != ModeV1 {
		t.Fatal(err)
	}
	cmd, _ := startGated(t, "sleep 30", nil)
	if err := task.AddProc(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	destroyAndCheck(t, task)
	destroyAndCheck(t, task)
	// Reopening a removed task and destroying it is fine too.
	again, err := l.OpenTask("", taskName(task))
	if err != nil {
		t.Fatal(err)
	}
	destroyAndCheck(t, again)
}

// TestLayout_NewTask_unprivileged re-runs this test binary as nobody: the
// agent must learn, through ErrNotSupported naming a controller, that it
// cannot isolate tasks.
func TestLayout_NewTask_unprivileged(t *testing.T) {
	testLayout(t)
	dir, err := os.MkdirTemp("", "dcos-cgroups-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "cgroups.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestUnprivilegedHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "DCOS_CGROUPS_UNPRIVILEGED=1")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody:\n%s", out)
	if err != nil {
		t.Fatalf("helper as nobody: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestUnprivilegedHelper") {
		t.Fatal("helper did not run")
	}
}

// TestUnprivilegedHelper runs only inside TestLayout_NewTask_unprivileged.
func TestUnprivilegedHelper(t *testing.T) {
	if os.Getenv("DCOS_CGROUPS_UNPRIVILEGED") != "1" {
		t.Skip("helper for TestLayout_NewTask_unprivileged")
	}
	if os.Geteuid() == 0 {
		t.Fatal("helper runs as root")
	}
	l, err := Detect()
	if err != nil {
		t.Fatal(err)
	}
	var nse *NotSupportedError
	err = l.CheckAccess("")
	if !errors.As(err, &nse) || !errors.Is(err, ErrNotSupported) || nse.Controller == "" {
		t.Errorf("CheckAccess: %v, want a NotSupportedError naming a controller", err)
	}
	t.Logf("CheckAccess: %v", err)
	name := testName(t)
	task, err := l.NewTask("", name, Limits{MemoryBytes: 64 << 20})
	if err == nil {
		_ = task.Destroy()
		t.Fatal("NewTask succeeded without privileges")
	}
	if !errors.As(err, &nse) || !errors.Is(err, ErrNotSupported) || nse.Controller == "" {
		t.Errorf("NewTask: %v, want a NotSupportedError naming a controller", err)
	}
	t.Logf("NewTask: %v", err)
	paths, _ := l.taskPaths("", name)
	for k, d := range paths {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s cgroup %s left behind", k, d)
		}
	}
}

func TestLayout_Check_pureV2OnThisHost(t *testing.T) {
	l := testLayout(t)
	if l.Unified == nil || l.Mode == ModeUnified {
		t.Skip("not a hybrid host")
	}
	// On a hybrid host the resource controllers are bound to v1, so the v2
	// hierarchy alone must be refused, naming a missing controller.
	v2 := Layout{Mode: ModeUnified, Unified: l.Unified, UnifiedControllers: l.UnifiedControllers}
	err := v2.Check()
	var nse *NotSupportedError
	if !errors.As(err, &nse) || !slices.Contains(requiredV2, nse.Controller) {
		t.Fatalf("Check() = %v, want a missing-controller error", err)
	}
	t.Logf("v2 only: %v (controllers %v)", err, l.UnifiedControllers)
}

func TestTask_concurrent(t *testing.T) {
	l := testLayout(t)
	task := newTestTask(t, l, Limits{MemoryBytes: 64 << 20, MilliCPU: 500, Pids: 64})
	cmd, _ := startGated(t, "sleep 30", nil)
	errs := make(chan error, 4*8)
	for i := range 8 {
		go func() { errs <- task.Update(Limits{MemoryBytes: int64(64+i) << 20, MilliCPU: 500, Pids: 64}) }()
		go func() { _, err := task.Usage(); errs <- err }()
		go func() { errs <- task.AddProc(cmd.Process.Pid) }()
		go func() {
			if l.Mode == ModeV1 {
				errs <- nil
				return
			}
			_, err := task.FD()
			errs <- err
		}()
	}
	for range 4 * 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkLayout_NewTask measures the cgroup part of a task launch: create
// with limits, then destroy.
func BenchmarkLayout_NewTask(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("not root")
	}
	l, err := Detect()
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Check(); err != nil {
		b.Skip(err)
	}
	for i := 0; b.Loop(); i++ {
		task, err := l.NewTask("", fmt.Sprintf("dcos-bench-%d-%d", os.Getpid(), i), Limits{MemoryBytes: 64 << 20, MilliCPU: 500, Pids: 64})
		if err != nil {
			b.Fatal(err)
		}
		if err := task.Destroy(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTask_Usage measures one accounting read of a task.
func BenchmarkTask_Usage(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("not root")
	}
	l, err := Detect()
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Check(); err != nil {
		b.Skip(err)
	}
	task, err := l.NewTask("", fmt.Sprintf("dcos-bench-usage-%d", os.Getpid()), Limits{MemoryBytes: 64 << 20, MilliCPU: 500, Pids: 64})
	if err != nil {
		b.Fatal(err)
	}
	defer task.Destroy()
	for b.Loop() {
		if _, err := task.Usage(); err != nil {
			b.Fatal(err)
		}
	}
}
