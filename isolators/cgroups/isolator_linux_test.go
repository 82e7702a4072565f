//go:build linux

package cgroups

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	cg "github.com/dcos-kernel/dcos/internal/cgroups"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

var seq atomic.Int64

// noSuchPid is above the kernel's pid_max limit (4194304): never a process.
const noSuchPid = 1 << 30

// skipUnlessCgroups skips when not root or when the host truly lacks a
// hierarchy or controller, saying which.
func skipUnlessCgroups(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: creating cgroups needs root")
	}
	l, err := cg.Detect()
	if err == nil {
		err = l.Check()
	}
	var nse *cg.NotSupportedError
	if errors.As(err, &nse) {
		t.Skipf("cgroups: %s missing: %v", nse.Controller, err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// newIsolator returns an isolator whose parent is unique to the test,
// beneath the test process's own cgroups. At the end of the test it checks
// that no task cgroup is left beneath the parent and removes the parent.
func newIsolator(t testing.TB) *Isolator {
	t.Helper()
	skipUnlessCgroups(t)
	parent := fmt.Sprintf("dcos-test-%d-%d", os.Getpid(), seq.Add(1))
	i, err := New(Config{Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkNoLeftovers(t, i) })
	return i
}

// checkNoLeftovers fails the test if any cgroup is left beneath i's parent,
// then removes the parent (so the test leaves nothing behind either way).
func checkNoLeftovers(t testing.TB, i *Isolator) {
	t.Helper()
	names, err := i.layout.Children(i.parent)
	if err != nil {
		t.Error(err)
	}
	for _, n := range names {
		t.Errorf("cgroup %s left beneath %s", n, i.parent)
		if task, err := i.layout.OpenTask(i.parent, n); err == nil {
			_ = task.Destroy()
		}
	}
	dirs, err := i.layout.ParentDirs(i.parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && err != syscall.ENOENT {
			t.Errorf("remove parent %s: %v", d, err)
		}
	}
}

// proc is a test process started inside a container's cgroups.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, once done is closed
}

// startIn starts sh, which joins every directory of dirs itself (as the
// exec driver's first process does) and then execs script. It returns once
// the shell has joined them. The process is killed and reaped at the end of
// the test if still running.
func startIn(t *testing.T, dirs []string, script string) *proc {
	t.Helper()
	args := append([]string{"-c", `for d do echo $$ > "$d/cgroup.procs" || exit 1; done; echo ready; exec ` + script, "sh"}, dirs...)
	cmd := exec.Command("sh", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	line, rerr := bufio.NewReader(out).ReadString('\n')
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	if rerr != nil || line != "ready\n" {
		<-p.done
		t.Fatalf("child did not join %v: %q, %v, exit %v", dirs, line, rerr, p.err)
	}
	return p
}

// wait waits up to 10 s for the process to end and returns its wait status.
func (p *proc) wait(t *testing.T) syscall.WaitStatus {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("pid %d still running after 10s", p.cmd.Process.Pid)
	}
	return p.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func readCgroupFile(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// dirOf returns the directory of LaunchInfo.Cgroups in the hierarchy of key.
func dirOf(t *testing.T, i *Isolator, id, key string) string {
	t.Helper()
	task, err := i.layout.OpenTask(i.parent, cgroupName(id))
	if err != nil {
		t.Fatal(err)
	}
	return task.Paths()[key]
}

func TestIsolator_Prepare_limits(t *testing.T) {
	i := newIsolator(t)
	ctx := context.Background()
	const v1Unlimited = "9223372036854771712" // PAGE_COUNTER_MAX pages, in bytes
	tests := []struct {
		name   string
		res    contract.Resources
		v1, v2 map[string]string // file → want, in the memory/cpu/pids or unified dir
	}{
		{
			name: "half a CPU",
			res:  contract.Resources{CPUs: 0.5, MemBytes: 64 << 20, PIDs: 64},
			v1:   map[string]string{"memory.limit_in_bytes": "67108864", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000", "cpu.shares": "512", "pids.max": "64"},
			v2:   map[string]string{"memory.max": "67108864", "cpu.max": "50000 100000", "pids.max": "64"},
		},
		{
			name: "rounded CPUs, default pids",
			res:  contract.Resources{CPUs: 1.2345, MemBytes: 32 << 20},
			v1:   map[string]string{"memory.limit_in_bytes": "33554432", "cpu.cfs_quota_us": "123500", "cpu.shares": "1264", "pids.max": "4096"},
			v2:   map[string]string{"memory.max": "33554432", "cpu.max": "123500 100000", "pids.max": "4096"},
		},
		{
			name: "no limits",
			res:  contract.Resources{},
			v1:   map[string]string{"memory.limit_in_bytes": v1Unlimited, "cpu.cfs_quota_us": "-1", "cpu.shares": "1024", "pids.max": "4096"},
			v2:   map[string]string{"memory.max": "max", "cpu.max": "max 100000", "pids.max": "4096"},
		},
	}
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("limits-%d", n)
			li, err := i.Prepare(ctx, id, tt.res)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := i.Cleanup(ctx, id); err != nil {
					t.Error(err)
				}
			}()
			// memory, cpu (cpuacct may share its directory), pids; plus
			// the v2 directory in hybrid mode; one directory on pure v2.
			want := 3
			switch i.layout.Mode {
			case cg.ModeUnified:
				want = 1
			case cg.ModeHybrid:
				want = 4
			}
			if len(li.Cgroups) < want {
				t.Errorf("LaunchInfo.Cgroups = %v, want at least %d directories", li.Cgroups, want)
			}
			p := startIn(t, li.Cgroups, "sleep 30")
			for _, d := range li.Cgroups {
				if pids := readCgroupFile(t, d, "cgroup.procs"); !slices.Contains(strings.Fields(pids), strconv.Itoa(p.cmd.Process.Pid)) {
					t.Errorf("pid %d not in %s (%q)", p.cmd.Process.Pid, d, pids)
				}
			}
			for f, w := range tt.v1 {
				if i.layout.Mode == cg.ModeUnified {
					break
				}
				key := strings.SplitN(f, ".", 2)[0]
				if got := readCgroupFile(t, dirOf(t, i, id, key), f); got != w {
					t.Errorf("%s = %s, want %s", f, got, w)
				}
			}
			for f, w := range tt.v2 {
				if i.layout.Mode != cg.ModeUnified {
					break
				}
				if got := readCgroupFile(t, dirOf(t, i, id, cg.KeyUnified), f); got != w {
					t.Errorf("%s = %s, want %s", f, got, w)
				}
			}
			u, err := i.Usage(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if u.PIDs != 1 || u.MemoryRSSBytes == 0 {
				t.Errorf("usage %+v, want 1 pid and some memory", u)
			}
			// Isolating the pid that joined by itself is a no-op.
			if err := i.Isolate(ctx, id, p.cmd.Process.Pid); err != nil {
				t.Errorf("Isolate of a joined pid: %v", err)
			}
		})
	}
}

func TestIsolator_Isolate(t *testing.T) {
	i := newIsolator(t)
	ctx := context.Background()
	li, err := i.Prepare(ctx, "isolate", contract.Resources{CPUs: 1, MemBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	p := startIn(t, nil, "sleep 30") // outside the container
	for range 2 {
		if err := i.Isolate(ctx, "isolate", p.cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range li.Cgroups {
		if pids := readCgroupFile(t, d, "cgroup.procs"); pids != strconv.Itoa(p.cmd.Process.Pid) {
			t.Errorf("%s holds %q, want pid %d", d, pids, p.cmd.Process.Pid)
		}
	}
	if err := i.Cleanup(ctx, "isolate"); err != nil {
		t.Fatal(err)
	}
	if ws := p.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("isolated process ended with %v, want SIGKILL", ws)
	}
}

func TestIsolator_OOM(t *testing.T) {
	i := newIsolator(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	li, err := i.Prepare(ctx, "oom", contract.Resources{CPUs: 1, MemBytes: 32 << 20, PIDs: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := i.Cleanup(ctx, "oom"); err != nil {
			t.Error(err)
		}
	}()
	lims, err := i.Watch(ctx, "oom")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p := startIn(t, li.Cgroups, "dd if=/dev/zero of=/dev/null bs=64M count=1")
	if ws := p.wait(t); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("dd ended with %v, want SIGKILL by the OOM killer", ws)
	}
	select {
	case l, ok := <-lims:
		if !ok {
			t.Fatal("watch closed without a limitation")
		}
		t.Logf("limitation after %v: %+v", time.Since(start), l)
		if l.Reason != contract.LimitationOOM || l.ContainerID != "oom" {
			t.Errorf("limitation %+v, want OOM of oom", l)
		}
		if want := "memory limit 32.0 MiB exceeded: OOM killer killed a process"; l.Message != want {
			t.Errorf("message %q, want %q", l.Message, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no limitation within 5s of the OOM kill")
	}
	u, err := i.Usage(ctx, "oom")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("usage %+v", u)
	if u.OOMKills < 1 {
		t.Errorf("OOMKills = %d, want >= 1", u.OOMKills)
	}
	if u.MemoryPeakBytes == 0 || u.MemoryPeakBytes > 32<<20 {
		t.Errorf("MemoryPeakBytes = %d, want in (0, 32 MiB]", u.MemoryPeakBytes)
	}
	// A second watch reports the kill that happened before it.
	ctx2, cancel2 := context.WithCancel(ctx)
	late, err := i.Watch(ctx2, "oom")
	if err != nil {
		t.Fatal(err)
	}
	if l := <-late; l.Reason != contract.LimitationOOM {
		t.Errorf("late watch: %+v", l)
	}
	cancel2()
	for range late { // closed on cancel
	}
}

// TestIsolator_Watch_cleanup: an OOM kill not yet read when Cleanup runs is
// still delivered, then the watch closes.
func TestIsolator_Watch_cleanup(t *testing.T) {
	i := newIsolator(t)
	ctx := context.Background()
	li, err := i.Prepare(ctx, "oom-then-cleanup", contract.Resources{MemBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	lims, err := i.Watch(ctx, "oom-then-cleanup")
	if err != nil {
		t.Fatal(err)
	}
	p := startIn(t, li.Cgroups, "dd if=/dev/zero of=/dev/null bs=64M count=1")
	p.wait(t)
	cleaned := make(chan error, 1)
	go func() { cleaned <- i.Cleanup(ctx, "oom-then-cleanup") }()
	var got []contract.Limitation
	for l := range lims {
		got = append(got, l)
	}
	if err := <-cleaned; err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Reason != contract.LimitationOOM {
		t.Errorf("limitations %+v, want one OOM", got)
	}
}

func TestIsolator_Update(t *testing.T) {
	i := newIsolator(t)
	ctx := context.Background()
	if _, err := i.Prepare(ctx, "upd", contract.Resources{CPUs: 1, MemBytes: 64 << 20, PIDs: 32}); err != nil {
		t.Fatal(err)
	}
	defer i.Cleanup(ctx, "upd")
	tests := []struct {
		name string
		res  contract.Resources
		mem  string
		cpu  string // quota (v1) or cpu.max (v2)
		pids string
	}{
		{"raise", contract.Resources{CPUs: 2, MemBytes: 128 << 20, PIDs: 100}, "134217728", "200000", "100"},
		{"lower", contract.Resources{CPUs: 0.25, MemBytes: 48 << 20, PIDs: 8}, "50331648", "25000", "8"},
		{"default pids", contract.Resources{CPUs: 0.25, MemBytes: 48 << 20}, "50331648", "25000", "4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := i.Update(ctx, "upd", tt.res); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			want := map[string]string{"mem": tt.mem, "cpu": tt.cpu, "pids": tt.pids}
			if i.layout.Mode == cg.ModeUnified {
				d := dirOf(t, i, "upd", cg.KeyUnified)
				got["mem"] = readCgroupFile(t, d, "memory.max")
				got["cpu"] = strings.Fields(readCgroupFile(t, d, "cpu.max"))[0]
				got["pids"] = readCgroupFile(t, d, "pids.max")
			} else {
				got["mem"] = readCgroupFile(t, dirOf(t, i, "upd", cg.KeyMemory), "memory.limit_in_bytes")
				got["cpu"] = readCgroupFile(t, dirOf(t, i, "upd", cg.KeyCPU), "cpu.cfs_quota_us")
				got["pids"] = readCgroupFile(t, dirOf(t, i, "upd", cg.KeyPids), "pids.max")
			}
			for k := range want {
				if got[k] != want[k] {
					t.Errorf("%s = %s, want %s", k, got[k], want[k])
				}
			}
		})
	}
	if err := i.Update(ctx, "upd", contract.Resources{MemBytes: -1}); err == nil {
		t.Error("negative memory accepted")
	}
	if err := i.Cleanup(ctx, "upd"); err != nil {
		t.Fatal(err)
	}
}

func TestIsolator_Cleanup(t *testing.T) {
	i := newIsolator(t)
	ctx := context.Background()
	li, err := i.Prepare(ctx, "clean", contract.Resources{CPUs: 1, MemBytes: 64 << 20, PIDs: 32})
	if err != nil {
		t.Fatal(err)
	}
	lims, err := i.Watch(ctx, "clean")
	if err != nil {
		t.Fatal(err)
	}
	p := startIn(t, li.Cgroups, "sh -c 'sleep 30 & sleep 30 & wait'")
	for n := 0; ; n++ { // until the shell has forked both sleeps
		u, err := i.Usage(ctx, "clean")
		if err != nil {
			t.Fatal(err)
		}
		if u.PIDs >= 3 {
			break
		}
		if n == 1000 {
			t.Fatalf("only %d processes after 1000 polls", u.PIDs)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for range 2 {
		if err := i.Cleanup(ctx, "clean"); err != nil {
			t.Fatal(err)
		}
	}
	if ws := p.wait(t); !ws.Signaled() {
		t.Errorf("shell ended with %v, want killed", ws)
	}
	for _, d := range li.Cgroups {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still there after Cleanup (%v)", d, err)
		}
	}
	select {
	case l, ok := <-lims:
		if ok {
			t.Errorf("limitation %+v, want the watch closed", l)
		}
	case <-time.After(5 * time.Second):
		t.Error("watch not closed by Cleanup")
	}
	if err := i.Cleanup(ctx, "never-prepared"); err != nil {
		t.Errorf("Cleanup of an unknown container: %v", err)
	}
}

func TestIsolator_Recover(t *testing.T) {
	a := newIsolator(t)
	ctx := context.Background()
	var procs []*proc
	for _, id := range []string{"keep", "leftover"} {
		li, err := a.Prepare(ctx, id, contract.Resources{CPUs: 1, MemBytes: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		procs = append(procs, startIn(t, li.Cgroups, "sleep 30"))
	}
	// Half-made cgroups, as a crash mid-Prepare leaves them: one listed,
	// one not, each in a single hierarchy.
	pdirs, err := a.layout.ParentDirs(a.parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{cgroupName("partial"), "stray"} {
		if err := os.Mkdir(filepath.Join(pdirs[cg.KeyPids], n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A second isolator on the same parent, as after an agent restart.
	b, err := New(Config{Parent: a.parent})
	if err != nil {
		t.Fatal(err)
	}
	state := []contract.ContainerState{
		{ContainerID: "keep", PID: procs[0].cmd.Process.Pid, Limits: contract.Resources{CPUs: 1, MemBytes: 64 << 20}},
		{ContainerID: "partial"},
		{ContainerID: "gone"},
	}
	if err := b.Recover(ctx, state); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"partial", "gone"} {
		if _, err := b.Usage(ctx, id); !errors.Is(err, contract.ErrTaskNotFound) {
			t.Errorf("Usage of %s (incomplete or no cgroups): %v, want ErrTaskNotFound", id, err)
		}
	}
	if ws := procs[1].wait(t); !ws.Signaled() {
		t.Errorf("leftover's process ended with %v, want killed", ws)
	}
	names, err := b.layout.Children(b.parent)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"keep"}) {
		t.Errorf("after Recover beneath the parent: %v, want [keep]", names)
	}
	u, err := b.Usage(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	if u.PIDs != 1 {
		t.Errorf("recovered container has %d pids, want 1", u.PIDs)
	}
	if _, err := b.Usage(ctx, "leftover"); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("Usage of the removed leftover: %v, want ErrTaskNotFound", err)
	}
	if err := b.Cleanup(ctx, "keep"); err != nil {
		t.Fatal(err)
	}
	if ws := procs[0].wait(t); !ws.Signaled() {
		t.Errorf("kept process ended with %v after Cleanup, want killed", ws)
	}
	// a still thinks it has both: its Cleanups are no-ops on removed cgroups.
	for _, id := range []string{"keep", "leftover"} {
		if err := a.Cleanup(ctx, id); err != nil {
			t.Errorf("Cleanup of %s already removed: %v", id, err)
		}
	}
	if err := b.Recover(ctx, nil); err != nil {
		t.Errorf("Recover of nothing: %v", err)
	}
}

func TestIsolator_Usage_busy(t *testing.T) {
	i := newIsolator(t)
	ctx := context.Background()
	li, err := i.Prepare(ctx, "busy", contract.Resources{CPUs: 1, MemBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := i.Cleanup(ctx, "busy"); err != nil {
			t.Error(err)
		}
	}()
	before, err := i.Usage(ctx, "busy")
	if err != nil {
		t.Fatal(err)
	}
	startIn(t, li.Cgroups, "sh -c 'while :; do :; done'")
	// Bounded by CPU consumed, not by wall time: the machine may be busy.
	cpu := func(u *contract.TaskUsage) uint64 { return u.CPUUserNanos + u.CPUSystemNanos }
	const want = uint64(100 * time.Millisecond)
	var after *contract.TaskUsage
	for deadline := time.Now().Add(20 * time.Second); ; {
		time.Sleep(50 * time.Millisecond)
		if after, err = i.Usage(ctx, "busy"); err != nil {
			t.Fatal(err)
		}
		if cpu(after)-cpu(before) >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU grew by only %v in 20s of a busy loop", time.Duration(cpu(after)-cpu(before)))
		}
	}
	t.Logf("before %+v\nafter  %+v", before, after)
	if after.CPUUserNanos == 0 {
		t.Error("no user time for a busy loop")
	}
	if after.PIDs < 1 || after.MemoryRSSBytes == 0 {
		t.Errorf("usage %+v", after)
	}
}

func TestIsolator_errors(t *testing.T) {
	i := newIsolator(t)
	ctx := context.Background()
	notFound := map[string]func() error{
		"Isolate": func() error { return i.Isolate(ctx, "nope", noSuchPid) },
		"Update":  func() error { return i.Update(ctx, "nope", contract.Resources{}) },
		"Usage":   func() error { _, err := i.Usage(ctx, "nope"); return err },
		"Watch":   func() error { _, err := i.Watch(ctx, "nope"); return err },
	}
	for name, f := range notFound {
		if err := f(); !errors.Is(err, contract.ErrTaskNotFound) {
			t.Errorf("%s of an unknown container: %v, want ErrTaskNotFound", name, err)
		}
	}
	if _, err := i.Prepare(ctx, "twice", contract.Resources{}); err != nil {
		t.Fatal(err)
	}
	if _, err := i.Prepare(ctx, "twice", contract.Resources{}); err == nil {
		t.Error("Prepare twice accepted")
	}
	if err := i.Cleanup(ctx, "twice"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []contract.Resources{{CPUs: -1}, {MemBytes: -1}, {PIDs: -1}} {
		if _, err := i.Prepare(ctx, "bad", r); err == nil {
			t.Errorf("Prepare(%+v) accepted", r)
			_ = i.Cleanup(ctx, "bad")
		}
	}
	if _, err := i.Prepare(ctx, "", contract.Resources{}); err == nil {
		t.Error("empty ID accepted")
	}
	// After Cleanup every call but Cleanup says not found.
	if err := i.Isolate(ctx, "twice", noSuchPid); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("Isolate after Cleanup: %v", err)
	}
	// Watch closes when its ctx ends.
	if _, err := i.Prepare(ctx, "w", contract.Resources{}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	ch, err := i.Watch(wctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("limitation from an idle container")
		}
	case <-time.After(5 * time.Second):
		t.Error("watch not closed by its ctx")
	}
	if err := i.Cleanup(ctx, "w"); err != nil {
		t.Fatal(err)
	}
}

func TestNew_config(t *testing.T) {
	for _, parent := range []string{".", "/", "..", "../x", "a/../.."} {
		if _, err := New(Config{Parent: parent}); err == nil {
			t.Errorf("parent %q accepted", parent)
		}
	}
	if _, err := New(Config{DefaultPIDs: -1}); err == nil {
		t.Error("negative DefaultPIDs accepted")
	}
}

// TestIsolator_concurrent runs every call at once on a few containers, for
// -race, with a watch per container open throughout.
func TestIsolator_concurrent(t *testing.T) {
	i := newIsolator(t)
	ctx := context.Background()
	var sleepers []*proc
	for range 4 {
		sleepers = append(sleepers, startIn(t, nil, "sleep 30"))
	}
	var wg sync.WaitGroup
	for c, sl := range sleepers {
		id := fmt.Sprintf("c%d", c)
		wg.Go(func() {
			if _, err := i.Prepare(ctx, id, contract.Resources{CPUs: 0.5, MemBytes: 64 << 20}); err != nil {
				t.Error(err)
				return
			}
			lims, err := i.Watch(ctx, id)
			if err != nil {
				t.Error(err)
				return
			}
			var inner sync.WaitGroup
			for k := range 8 {
				inner.Go(func() {
					var err error
					switch k % 4 {
					case 0:
						_, err = i.Usage(ctx, id)
					case 1:
						err = i.Update(ctx, id, contract.Resources{CPUs: float64(k) / 4, MemBytes: int64(64+k) << 20})
					case 2:
						err = i.Isolate(ctx, id, sl.cmd.Process.Pid)
					case 3:
						_, err = i.Watch(ctx, id) // closed by Cleanup, unread
					}
					if err != nil {
						t.Error(err)
					}
				})
			}
			inner.Wait()
			if err := i.Cleanup(ctx, id); err != nil {
				t.Error(err)
			}
			for range lims {
			}
		})
	}
	wg.Wait()
	for _, sl := range sleepers {
		if ws := sl.wait(t); !ws.Signaled() {
			t.Errorf("sleeper ended with %v, want killed by Cleanup", ws)
		}
	}
}

// BenchmarkIsolator_PrepareCleanup measures the cgroup setup cost of a task:
// Prepare (create and limit its cgroups) then Cleanup (kill nothing, remove).
func BenchmarkIsolator_PrepareCleanup(b *testing.B) {
	i := newIsolator(b)
	ctx := context.Background()
	r := contract.Resources{CPUs: 0.5, MemBytes: 64 << 20, PIDs: 64}
	for n := 0; b.Loop(); n++ {
		id := "bench-" + strconv.Itoa(n)
		if _, err := i.Prepare(ctx, id, r); err != nil {
			b.Fatal(err)
		}
		if err := i.Cleanup(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIsolator_Usage measures one accounting read of a container (the
// agent's periodic poll).
func BenchmarkIsolator_Usage(b *testing.B) {
	i := newIsolator(b)
	ctx := context.Background()
	if _, err := i.Prepare(ctx, "usage", contract.Resources{CPUs: 0.5, MemBytes: 64 << 20}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := i.Cleanup(ctx, "usage"); err != nil {
			b.Error(err)
		}
	})
	for b.Loop() {
		if _, err := i.Usage(ctx, "usage"); err != nil {
			b.Fatal(err)
		}
	}
}
