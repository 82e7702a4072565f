package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestEngines_MPI: dcosd kernel and three agents of 0.6 cpus each; an
// 8-instance gang of 0.2 cpus (so it spans all three agents: 3+3+2), a
// waiting task in each instance, and Open MPI's mpirun run by the test (in
// the place of the jobs framework) with a hostfile of the 8 task ids and
// testdata/engines/dcos-rsh as its remote-shell agent, which starts
// Open MPI's daemon inside each task with dcosctl exec. The ring program
// (testdata/engines/ring.c, built with mpicc) prints the right allreduce
// and ring sums, and each of its 8 ranks ran in a different one of the
// gang's tasks: in its pid and cgroup namespaces, in its cgroup.
func TestEngines_MPI(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"mpirun", "mpicc", "orted"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (scripts/test installs openmpi-bin and libopenmpi-dev)", tool, err)
		}
	}
	e := newEnv(t)
	scripts := engineScripts(t)
	ring := filepath.Join(scripts, "ring")
	if out, err := exec.Command("mpicc", "-O2", "-o", ring, filepath.Join(scripts, "ring.c")).CombinedOutput(); err != nil {
		t.Fatalf("mpicc ring.c: %v\n%s", err, out)
	}

	opTok := newToken()
	entries := []tokenEntry{{Token: opTok, Name: "ops", Role: "operator"}}
	agentToks := make([]string, 3)
	for i := range agentToks {
		agentToks[i] = newToken()
		entries = append(entries, tokenEntry{Token: agentToks[i], Name: fmt.Sprintf("agent-%d", i), Role: "agent"})
	}
	e.startKernel(e.writeTokens(e.path("tokens.json"), entries...), opTok)
	ctlArgs := []string{"--kernel", e.url, "--token", opTok}
	for i := range agentToks {
		e.startAgent(fmt.Sprintf("mpi%d", i), agentToks[i], "--resources", "cpus=0.6,mem=1Gi")
	}

	// The gang: all 8 or none, in one cycle.
	out := e.mustCtl(append(ctlArgs, "alloc", "--cpus", "0.2", "--mem", "64Mi", "--count", "8", "--gang", "-o", "json")...)
	var res pb.AllocateResponse
	if err := protojson.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("dcosctl alloc -o json: %v\n%s", err, out)
	}
	allocs := res.GetAllocations()
	agents := map[string]int{}
	for _, a := range allocs {
		if a.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
			t.Fatalf("gang allocation %s is %v, want GRANTED (pending: %s)", a.GetId(), a.GetState(), res.GetPendingReason())
		}
		agents[a.GetAgentId()]++
	}
	if len(allocs) != 8 || len(agents) != 3 {
		t.Fatalf("gang = %d allocations on agents %v, want 8 on 3 agents", len(allocs), agents)
	}

	// A rank host per instance: a task that waits; the ranks are started
	// inside it by mpirun through dcos-rsh.
	taskIDs := make([]string, len(allocs))
	for i, a := range allocs {
		out := e.mustCtl(append(ctlArgs, "launch", a.GetId(), "-o", "json", "--", "sleep", "3600")...)
		var lr pb.LaunchResponse
		if err := protojson.Unmarshal([]byte(out), &lr); err != nil {
			t.Fatalf("dcosctl launch -o json: %v\n%s", err, out)
		}
		taskIDs[i] = lr.GetTask().GetId()
	}
	hostPIDs := map[string]int32{} // task id -> its process's pid on the host
	e.eventually("8 rank hosts RUNNING", func() (bool, string) {
		for _, tk := range listTasks(t, e.op()).GetTasks() {
			e.notePID(tk.GetPid())
			if slices.Contains(taskIDs, tk.GetId()) && tk.GetState() == pb.TaskState_TASK_STATE_RUNNING && tk.GetPid() > 0 {
				hostPIDs[tk.GetId()] = tk.GetPid()
			}
		}
		return len(hostPIDs) == len(taskIDs), fmt.Sprintf("%d running", len(hostPIDs))
	})

	hostfile := e.path("hostfile")
	var hf strings.Builder
	for _, id := range taskIDs {
		fmt.Fprintf(&hf, "%s slots=1\n", id)
	}
	if err := os.WriteFile(hostfile, []byte(hf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	out, err := runMPI(t, e, opTok, hostfile, filepath.Join(scripts, "dcos-rsh"), 8, ring)
	t.Logf("mpirun took %v", time.Since(started).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("mpirun: %v\n%s", err, out)
	}
	if !strings.Contains(out, "allreduce=36 ring=28 size=8") {
		t.Fatalf("mpirun output lacks \"allreduce=36 ring=28 size=8\":\n%s", out)
	}
	// Each rank ran inside a different task of the gang: in the pid and
	// cgroup namespaces of the task's own process (the rank host), at the
	// root of its cgroup namespace, i.e. in the task's cgroup.
	rankTask := map[string]string{} // rank -> the task it ran in
	for _, m := range regexp.MustCompile(`(?m)^rank (\d+) of 8: task (\S+) pidns (\S+) cgroupns (\S+) cgroup (\S+)$`).FindAllStringSubmatch(out, -1) {
		rankTask[m[1]] = m[2]
		pid := hostPIDs[m[2]]
		for _, n := range []struct{ name, got string }{{"pid", m[3]}, {"cgroup", m[4]}} {
			want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, n.name))
			if err != nil || n.got != want {
				t.Errorf("rank %s: %s namespace %s, want task %s's (pid %d): %s (%v)", m[1], n.name, n.got, m[2], pid, want, err)
			}
		}
		if m[5] != "0::/" {
			t.Errorf("rank %s: cgroup %s, want the root of task %s's cgroup namespace (0::/)", m[1], m[5], m[2])
		}
	}
	var ran []string
	for _, task := range rankTask {
		ran = append(ran, task)
	}
	slices.Sort(ran)
	want := slices.Sorted(slices.Values(taskIDs))
	if !slices.Equal(ran, want) {
		t.Fatalf("ranks ran in tasks %v, want one rank in each of %v:\n%s", rankTask, want, out)
	}
}

// runMPI runs mpirun -np np of prog over hostfile with rsh as its
// remote-shell agent, as the jobs framework will: the agent's dcosctl
// reaches the env's kernel with token. It returns mpirun's output.
func runMPI(t *testing.T, e *env, token, hostfile, rsh string, np int, prog string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append(mpirunArgs(hostfile, rsh, np), prog)
	cmd := exec.CommandContext(ctx, "mpirun", args...)
	cmd.Env = append(e.baseEnv(), "DCOS_KERNEL="+e.url, "DCOS_TOKEN="+token, "DCOSCTL="+bin.dcosctl, "SHELL=/bin/sh")
	if os.Geteuid() == 0 {
		// mpirun itself runs as the test's user; the ranks run as the
		// tasks' unprivileged uid.
		cmd.Env = append(cmd.Env, "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mpirunArgs are the arguments of mpirun for ranks in dcos tasks (see
// docs/big-data.md, "MPI"): the hosts are task ids launched through rsh,
// every daemon is started by mpirun itself (no tree spawn: the tasks have
// no dcosctl), ranks talk TCP (tasks have their own IPC namespaces, so no
// shared memory between tasks) over loopback, as every agent of the test
// is on this machine.
func mpirunArgs(hostfile, rsh string, np int) []string {
	return []string{"-np", fmt.Sprint(np), "--hostfile", hostfile,
		"--mca", "plm_rsh_agent", rsh, "--mca", "plm_rsh_no_tree_spawn", "1",
		"--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo", "--mca", "oob_tcp_if_include", "lo",
		"--mca", "pml", "ob1"}
}

// lineWith returns the rest of the first line of s that starts with prefix.
func lineWith(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if rest, ok := strings.CutPrefix(l, prefix); ok {
			return rest
		}
	}
	return ""
}

// engineScripts copies testdata/engines into a new directory that tasks,
// which run as their framework's unprivileged uid, can read, and returns
// its path. The directory is removed when the test ends.
func engineScripts(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dcos-e2e-engines-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join("testdata", "engines"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join("testdata", "engines", ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, err := ent.Info()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ent.Name()), b, info.Mode().Perm()|0o444); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
