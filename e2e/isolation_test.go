package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// waitRunning waits for task id to run and returns it.
func waitRunning(e *env, id string) *pb.Task {
	e.t.Helper()
	var task *pb.Task
	e.eventually("task "+id+" RUNNING", func() (bool, string) {
		task = taskByID(e, id)
		if task != nil && task.GetState() > pb.TaskState_TASK_STATE_RUNNING {
			e.t.Fatalf("task %s ended: %v %s", id, task.GetState(), task.GetReason())
		}
		return task != nil && task.GetState() == pb.TaskState_TASK_STATE_RUNNING && task.GetPid() > 0, sprint(task)
	})
	e.notePID(task.GetPid())
	return task
}

// outputOf parses the "key=value" lines of a task's stdout.
func outputOf(t testing.TB, task *pb.Task) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(task.GetSandbox(), "stdout"))
	if err != nil {
		t.Fatalf("task %s's stdout: %v", task.GetId(), err)
	}
	t.Logf("task %s's stdout:\n%s", task.GetId(), b)
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = strings.TrimSpace(v)
		} else if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// childOf returns the first child of pid (the task under its init).
func childOf(pid int32) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/task/" + strconv.Itoa(int(pid)) + "/children")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// TestIsolation_HostileTenant: framework B's task, on the same agent as
// framework A's, tries what a hostile tenant would (issue 12): read A's
// sandbox and environment, the tokens, the client config and the data dir,
// see or signal A's processes, leave its cgroups; it runs with no
// capabilities and a uid of its own.
func TestIsolation_HostileTenant(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("task isolation needs root")
	}
	e := newEnv(t)
	opTok, aTok, bTok := newToken(), newToken(), newToken()
	tokens := e.writeTokens(e.path("data", "tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: aTok, Name: "fw-a", Role: "framework"},
		tokenEntry{Token: bTok, Name: "fw-b", Role: "framework"},
	)
	p := e.startDev("--resources", "cpus=2,mem=1Gi")
	if !strings.Contains(p.stderr.String(), "tasks run isolated") {
		t.Errorf("dcosd dev did not say that tasks run isolated; stderr:\n%s", tail(p.stderr.String(), 30))
	}
	fwA, fwB := e.client(aTok), e.client(bTok)

	allocA := allocateOne(t, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.25, MemBytes: 64 * mi}})
	taskA := launch(t, fwA, &pb.LaunchRequest{AllocationId: allocA.GetId(), Command: "sh",
		Env:  map[string]string{"A_SECRET": "a-env-secret"},
		Args: []string{"-c", `echo a-file-secret >"$DCOS_SANDBOX/secret"; chmod 644 "$DCOS_SANDBOX/secret"; exec sleep 300`}})
	taskA = waitRunning(e, taskA.GetId())
	sbA := taskA.GetSandbox()
	e.eventually("A's secret file", func() (bool, string) {
		_, err := os.Stat(filepath.Join(sbA, "secret"))
		return err == nil, sprint(err)
	})
	initA := taskA.GetPid()
	sleepA := 0
	e.eventually("A's sleep under its init", func() (bool, string) {
		sleepA = childOf(initA)
		return sleepA > 0 && strings.HasPrefix(cmdline(sleepA), "sleep"), cmdline(sleepA)
	})
	dataDir := e.path("data")
	probe := `
grep -E '^(Uid|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status
try() { name=$1; shift; if out=$("$@" 2>/dev/null) && [ -n "$out" ]; then echo "$name=LEAK $(echo "$out" | head -c 60 | tr '\n' ' ')"; else echo "$name=denied"; fi; }
try sandbox_file cat "$SBA/secret"
try sandbox_ls ls -A "$SBA"
try environ cat /proc/$INITA/environ
try environ_sleep cat /proc/$SLEEPA/environ
try tokens cat "$TOKENS"
try client_config cat "$CC"
try etcd sh -c 'ls -A "$DATA"/etcd* "$DATA"/member 2>/dev/null'
try agent_checkpoints ls -A "$DATA/agent/tasks"
echo "data_dir=$(ls -A "$DATA" | tr '\n' ' ')"
echo "procs=$(ls /proc | grep -E '^[0-9]+$' | wc -l)"
try signal_init kill -0 $INITA
try signal_sleep kill -0 $SLEEPA
escaped=
for f in $(find /sys/fs/cgroup -maxdepth 2 -name cgroup.procs 2>/dev/null); do
	if echo $$ 2>/dev/null >"$f"; then escaped="$escaped $f"; fi
done
echo "cgroup_escape=${escaped:-none}"
echo "cgroups_checked=$(find /sys/fs/cgroup -maxdepth 2 -name cgroup.procs 2>/dev/null | wc -l)"
`
	allocB := allocateOne(t, fwB, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.25, MemBytes: 64 * mi}})
	taskB := launch(t, fwB, &pb.LaunchRequest{AllocationId: allocB.GetId(), Command: "sh", Args: []string{"-c", probe},
		Env: map[string]string{"SBA": sbA, "INITA": strconv.Itoa(int(initA)), "SLEEPA": strconv.Itoa(sleepA),
			"TOKENS": tokens, "CC": e.ccPath, "DATA": dataDir}})
	taskB = waitEnded(e, taskB.GetId())
	if taskB.GetState() != pb.TaskState_TASK_STATE_FINISHED {
		b, _ := os.ReadFile(filepath.Join(taskB.GetSandbox(), "stderr"))
		t.Fatalf("B's probe: %v %s; stderr:\n%s", taskB.GetState(), taskB.GetReason(), b)
	}
	out := outputOf(t, taskB)
	for _, k := range []string{"sandbox_file", "sandbox_ls", "environ", "environ_sleep", "tokens", "client_config",
		"etcd", "agent_checkpoints", "signal_init", "signal_sleep"} {
		if out[k] != "denied" {
			t.Errorf("B's task: %s = %q, want denied", k, out[k])
		}
	}
	// What B sees of the data dir is the way to its own sandbox.
	if out["data_dir"] != "agent" {
		t.Errorf("B's task sees %q in the data dir, want only the way to its sandbox (agent)", out["data_dir"])
	}
	if n, _ := strconv.Atoi(out["procs"]); n < 2 || n > 8 {
		t.Errorf("B's task sees %s processes, want its init, itself and its shell's children", out["procs"])
	}
	if out["cgroup_escape"] != "none" || out["cgroups_checked"] == "0" {
		t.Errorf("B's task left its cgroup: %q (of %s cgroup.procs files)", out["cgroup_escape"], out["cgroups_checked"])
	}
	zero := "0000000000000000"
	for _, k := range []string{"CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if out[k] != zero {
			t.Errorf("B's task: %s = %q, want none", k, out[k])
		}
	}
	if out["NoNewPrivs"] != "1" {
		t.Errorf("B's task: NoNewPrivs = %q, want 1", out["NoNewPrivs"])
	}
	uidB := strings.Fields(out["Uid"])
	var stA, stB syscall.Stat_t
	syscall.Stat(sbA, &stA)
	syscall.Stat(taskB.GetSandbox(), &stB)
	if len(uidB) != 4 || uidB[0] == "0" || uidB[0] != strconv.Itoa(int(stB.Uid)) {
		t.Errorf("B's task runs as %q, want its sandbox's non-root owner %d", out["Uid"], stB.Uid)
	}
	if stA.Uid == stB.Uid || stA.Uid == 0 || stA.Mode&0o077 != 0 {
		t.Errorf("sandboxes: A's owner %d mode %o, B's owner %d: want two users, A's private", stA.Uid, stA.Mode&0o777, stB.Uid)
	}
	// A is untouched.
	if got := taskByID(e, taskA.GetId()); got.GetState() != pb.TaskState_TASK_STATE_RUNNING || !alive(sleepA) {
		t.Errorf("A's task after B's probe: %v", got)
	}
	for _, f := range []string{tokens, e.ccPath} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, st.Mode(), err)
		}
	}
	for _, d := range []string{dataDir, filepath.Join(dataDir, "agent")} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, %v; want 0700", d, st.Mode(), err)
		}
	}
}

// TestIsolation_AllowedRootTask: a role the operator allowed (dcosd
// --role-users ROLE=root) still runs a root task. It needs the kernel's
// part of issue 12 (LaunchRequest.user checked against --role-users).
func TestIsolation_AllowedRootTask(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("task isolation needs root")
	}
	e := newEnv(t)
	opTok, aTok := newToken(), newToken()
	e.writeTokens(e.path("data", "tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: aTok, Name: "fw-a", Role: "framework"},
	)
	e.startDev("--resources", "cpus=2,mem=1Gi", "--role-users", "infra=root")
	fwA := e.client(aTok)
	alloc := allocateOne(t, fwA, &pb.AllocateRequest{Role: "infra", Resources: &pb.Resources{Cpus: 0.25, MemBytes: 64 * mi}})
	task := launch(t, fwA, &pb.LaunchRequest{AllocationId: alloc.GetId(), User: "root", Command: "sh",
		Args: []string{"-c", `grep -E '^(Uid|CapEff):' /proc/self/status`}})
	task = waitEnded(e, task.GetId())
	if task.GetState() != pb.TaskState_TASK_STATE_FINISHED {
		t.Fatalf("root task: %v %s", task.GetState(), task.GetReason())
	}
	out := outputOf(t, task)
	if f := strings.Fields(out["Uid"]); len(f) != 4 || f[0] != "0" || f[1] != "0" {
		t.Errorf("root task runs as %q, want uid 0", out["Uid"])
	}
	if out["CapEff"] == "0000000000000000" {
		t.Errorf("root task has no capabilities")
	}
}
