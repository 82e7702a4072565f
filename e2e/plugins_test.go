package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// cgroupOf returns pid's cgroup path in the hierarchy whose controller
// list (field 2 of /proc/PID/cgroup) contains controller; "" for the
// unified hierarchy.
func cgroupOf(t testing.TB, pid int, controller string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatalf("cgroup of %d: %v", pid, err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && (controller == "" && f[1] == "" || controller != "" && strings.Contains(","+f[1]+",", ","+controller+",")) {
			return f[2]
		}
	}
	return ""
}

// cgroupFile reads file of the cgroup path p in the hierarchy mounted for
// controller (v1), or in the unified one ("").
func cgroupFile(t testing.TB, controller, p, file string) string {
	t.Helper()
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		i := -1
		for j, x := range f {
			if x == "-" {
				i = j
				break
			}
		}
		if i < 0 || i+3 >= len(f) {
			continue
		}
		fstype, opts := f[i+1], f[i+3]
		if (controller == "" && fstype == "cgroup2") || (fstype == "cgroup" && strings.Contains(","+opts+",", ","+controller+",")) {
			v, err := os.ReadFile(filepath.Join(f[4], p, file))
			if err != nil {
				t.Fatalf("read %s: %v", filepath.Join(f[4], p, file), err)
			}
			return strings.TrimSpace(string(v))
		}
	}
	t.Fatalf("no cgroup hierarchy for %q", controller)
	return ""
}

// isHybridOrV1 reports whether the memory controller is on a v1 hierarchy.
func memoryOnV1() bool {
	b, _ := os.ReadFile("/proc/self/cgroup")
	return strings.Contains(string(b), ":memory:")
}

// ppidOf returns pid's parent pid.
func ppidOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n, _ := strconv.Atoi(f[1])
	return n
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// runTask runs `dcosctl run` with args and returns the task once RUNNING.
func runTask(e *env, args ...string) *pb.Task {
	e.t.Helper()
	out := e.mustCtl(append([]string{"run", "-o", "json"}, args...)...)
	var res struct{ Task struct{ ID string } }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Task.ID == "" {
		e.t.Fatalf("dcosctl run -o json: %v\n%s", err, out)
	}
	var task *pb.Task
	e.eventually("task "+res.Task.ID+" RUNNING", func() (bool, string) {
		for _, k := range listTasks(e.t, e.op()).GetTasks() {
			if k.GetId() == res.Task.ID {
				task = k
				if k.GetState() > pb.TaskState_TASK_STATE_RUNNING {
					e.t.Fatalf("task %s ended: %v %s", k.GetId(), k.GetState(), k.GetReason())
				}
				return k.GetState() == pb.TaskState_TASK_STATE_RUNNING && k.GetPid() > 0, sprint(k)
			}
		}
		return false, "not listed"
	})
	e.notePID(task.GetPid())
	return task
}

// taskByID returns the kernel's record of task id.
func taskByID(e *env, id string) *pb.Task {
	for _, k := range listTasks(e.t, e.op()).GetTasks() {
		if k.GetId() == id {
			return k
		}
	}
	return nil
}

// pluginPID returns the pid of the dcosd process (a child of parent) that
// serves the built-in plugin name: `dcosd plugin builtin` serves the exec
// driver and, with --isolator cgroups, the cgroups isolator.
func pluginPID(parent int, name string) int {
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || ppidOf(pid) != parent || !alive(pid) {
			continue
		}
		f := strings.Fields(cmdline(pid))
		if len(f) < 3 || f[1] != "plugin" || f[2] != "builtin" {
			continue
		}
		if name == "exec" {
			return pid
		}
		for i := 3; i+1 < len(f); i++ {
			if f[i] == "--isolator" && f[i+1] == name {
				return pid
			}
		}
	}
	return 0
}

// TestDev_ExecDriverAndCgroups runs a task through the exec driver plugin
// inside cgroups whose limits are the allocation's, OOM-kills a task that
// outgrows its memory, and keeps a task running across a SIGKILL of the
// exec driver's plugin process and of dcosd itself.
func TestDev_ExecDriverAndCgroups(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("cgroup isolation needs root (dcosd runs tasks without it otherwise)")
	}
	e := newEnv(t)
	dev := e.startDev("--resources", "cpus=2,mem=2Gi")

	// dcosctl plugin ls: both built-ins healthy.
	e.eventually("built-in plugins healthy", func() (bool, string) {
		out := e.mustCtl("plugin", "ls")
		return strings.Contains(out, "exec") && strings.Contains(out, "cgroups") && strings.Count(out, "healthy") == 2, out
	})

	task := runTask(e, "--cpus", "0.5", "--mem", "64Mi", "--", "sleep", "300")
	pid := int(task.GetPid())
	// Run by the exec driver: its parent is the driver's supervisor.
	if p := cmdline(ppidOf(pid)); !strings.Contains(p, "supervisor") {
		t.Errorf("task %d's parent is %q, want the exec driver's supervisor", pid, p)
	}
	if memoryOnV1() {
		mem := cgroupOf(t, pid, "memory")
		if !strings.HasSuffix(mem, "/"+task.GetId()) || !strings.Contains(mem, e.cgParent) {
			t.Fatalf("task's memory cgroup = %q, want .../%s beneath %s", mem, task.GetId(), e.cgParent)
		}
		if got := cgroupFile(t, "memory", mem, "memory.limit_in_bytes"); got != strconv.Itoa(64*mi) {
			t.Errorf("memory.limit_in_bytes = %s, want %d", got, 64*mi)
		}
		cpu := cgroupOf(t, pid, "cpu")
		if got := cgroupFile(t, "cpu", cpu, "cpu.cfs_quota_us"); got != "50000" {
			t.Errorf("cpu.cfs_quota_us = %s, want 50000 (0.5 cpu)", got)
		}
		if got := cgroupFile(t, "cpu", cpu, "cpu.shares"); got != "512" {
			t.Errorf("cpu.shares = %s, want 512", got)
		}
		if got := cgroupFile(t, "pids", cgroupOf(t, pid, "pids"), "pids.max"); got == "max" {
			t.Errorf("pids.max = max, want a limit")
		}
	} else {
		cg := cgroupOf(t, pid, "")
		if got := cgroupFile(t, "", cg, "memory.max"); got != strconv.Itoa(64*mi) {
			t.Errorf("memory.max = %s, want %d", got, 64*mi)
		}
		if got := cgroupFile(t, "", cg, "cpu.max"); got != "50000 100000" {
			t.Errorf("cpu.max = %s, want 50000 100000", got)
		}
	}

	// Usage flows to the kernel with heartbeats.
	e.eventually("usage of "+task.GetId(), func() (bool, string) {
		k := taskByID(e, task.GetId())
		return k.GetUsage().GetMemBytes() > 0, sprint(k.GetUsage())
	})

	// OOM: FAILED with reason OOM.
	oom := runTaskNoWait(e, "--cpus", "0.1", "--mem", "32Mi", "--", "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
	e.eventually("OOM task FAILED", func() (bool, string) {
		k := taskByID(e, oom)
		return k.GetState() == pb.TaskState_TASK_STATE_FAILED && strings.HasPrefix(k.GetReason(), "OOM"), sprint(k)
	})

	// SIGKILL the exec driver plugin: the task keeps running, the host
	// restarts the plugin, and the task is still tracked (revoke stops it
	// later).
	drv := pluginPID(dev.cmd.Process.Pid, "exec")
	if drv == 0 {
		t.Fatal("no exec driver plugin process under dcosd")
	}
	syscall.Kill(drv, syscall.SIGKILL)
	e.eventually("exec driver restarted", func() (bool, string) {
		out := e.mustCtl("plugin", "ls")
		p := pluginPID(dev.cmd.Process.Pid, "exec")
		return p != 0 && p != drv && strings.Contains(out, "healthy"), out
	})
	if !alive(pid) {
		t.Fatalf("task %d died with its driver plugin", pid)
	}

	// SIGKILL dcosd (kernel, agent, plugins): the task keeps running with
	// the same pid and is tracked by the new agent.
	dev.kill()
	if !alive(pid) {
		t.Fatalf("task %d died with dcosd", pid)
	}
	e.startDev("--resources", "cpus=2,mem=2Gi")
	e.eventually("task recovered", func() (bool, string) {
		k := taskByID(e, task.GetId())
		return k.GetState() == pb.TaskState_TASK_STATE_RUNNING && int(k.GetPid()) == pid, sprint(k)
	})
	e.mustCtl("revoke", task.GetAllocationId())
	e.eventually("task killed after revoke", func() (bool, string) {
		k := taskByID(e, task.GetId())
		return k.GetState() == pb.TaskState_TASK_STATE_KILLED && !alive(int(task.GetPid())), sprint(k)
	})
}

// runTaskNoWait runs `dcosctl run --detach` with args and returns the task
// id, however the task fares.
func runTaskNoWait(e *env, args ...string) string {
	e.t.Helper()
	out := e.mustCtl(append([]string{"run", "--detach", "-o", "json"}, args...)...)
	var res struct{ Task struct{ ID string } }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Task.ID == "" {
		e.t.Fatalf("dcosctl run -o json: %v\n%s", err, out)
	}
	return res.Task.ID
}

// installPlugin copies src into dir as name and, when catalog, registers
// its sha256 in dir/SHA256SUMS.
func installPlugin(t testing.TB, dir, src, name string, catalog bool) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if catalog {
		sum := sha256.Sum256(b)
		f, err := os.OpenFile(filepath.Join(dir, "SHA256SUMS"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "%s  %s\n", hex.EncodeToString(sum[:]), name)
		f.Close()
	}
	return dst
}

// TestDev_VendorPlugins installs vendor plugins into --plugin-dir: the
// example nice driver runs a task; an altered binary, one that speaks a
// newer protocol, and one that crashes on every start are refused or
// backed off and reported, while the agent keeps serving.
func TestDev_VendorPlugins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := e.path("plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	installPlugin(t, dir, bin.nicedriver, "dcos-driver-nice", true)
	altered := installPlugin(t, dir, bin.nicedriver, "dcos-driver-altered", true)
	f, _ := os.OpenFile(altered, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("tampered"))
	f.Close()
	installPlugin(t, dir, bin.futuredriver, "dcos-driver-future", true)
	installPlugin(t, dir, "/bin/false", "dcos-driver-crashy", true)
	installPlugin(t, dir, bin.nicedriver, "dcos-driver-unlisted", false)
	e.startDev("--resources", "cpus=2,mem=2Gi", "--plugin-dir", dir)

	plugins := func() map[string]*pb.PluginInfo {
		res := listAgents(t, e.op())
		m := map[string]*pb.PluginInfo{}
		for _, a := range res.GetAgents() {
			for _, p := range a.GetPlugins() {
				m[p.GetKind()+"/"+p.GetName()] = p
			}
		}
		return m
	}
	e.eventually("plugin states", func() (bool, string) {
		m := plugins()
		ok := m["driver/nice"].GetHealth() == "healthy" && m["driver/exec"].GetHealth() == "healthy" &&
			m["driver/altered"].GetHealth() == "refused" && strings.Contains(m["driver/altered"].GetLastError(), "sha256") &&
			m["driver/future"].GetHealth() == "refused" && strings.Contains(m["driver/future"].GetLastError(), "protocol version 2") &&
			m["driver/unlisted"].GetHealth() == "refused" &&
			m["driver/crashy"].GetHealth() != "healthy" && m["driver/crashy"].GetRestarts() >= 2
		return ok, sprint(m)
	})
	out := e.mustCtl("plugin", "ls")
	for _, want := range []string{"nice", "altered", "future", "crashy", "refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("dcosctl plugin ls lacks %q:\n%s", want, out)
		}
	}
	// The refused ones are not restarted.
	before := plugins()
	task := runTask(e, "--cpus", "0.1", "--mem", "32Mi", "--driver", "nice", "--driver-config", `{"nice":7,"env":{"VENDOR":"yes"}}`,
		"--", "sh", "-c", "echo $VENDOR; exec sleep 300")
	after := plugins()
	for _, n := range []string{"driver/altered", "driver/future"} {
		if after[n].GetRestarts() != before[n].GetRestarts() {
			t.Errorf("%s was restarted: %d → %d", n, before[n].GetRestarts(), after[n].GetRestarts())
		}
	}
	var nice int
	e.eventually("nice level of the vendor driver's task", func() (bool, string) {
		// The task runs isolated: the reported pid is its task init's,
		// the task is the init's child.
		pid := childOf(task.GetPid())
		if pid == 0 {
			return false, "no child of the task init " + sprint(task.GetPid())
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false, err.Error()
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		nice, _ = strconv.Atoi(f[16])
		return nice == 7, "nice " + f[16]
	})
	e.eventually("the task's output", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(task.GetSandbox(), "stdout"))
		return strings.TrimSpace(string(b)) == "yes", string(b)
	})
	// A task for a driver that is not there fails with a clear reason.
	bad := runTaskNoWait(e, "--cpus", "0.1", "--mem", "16Mi", "--driver", "nosuch", "--", "true")
	e.eventually("task of a missing driver FAILED", func() (bool, string) {
		k := taskByID(e, bad)
		return k.GetState() == pb.TaskState_TASK_STATE_FAILED && strings.Contains(k.GetReason(), `driver "nosuch"`), sprint(k)
	})
	e.mustCtl("revoke", task.GetAllocationId())
	e.eventually("vendor task killed", func() (bool, string) {
		k := taskByID(e, task.GetId())
		return k.GetState() == pb.TaskState_TASK_STATE_KILLED && !alive(int(task.GetPid())), sprint(k)
	})
}
