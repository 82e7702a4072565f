package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
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

// daskSpec runs a Dask scheduler and two workers as services of the init.
// %[1]s is the scripts' directory. The scheduler listens on a host port the
// kernel reserved for it and writes its address into the host volume
// "dask", which the workers (and the job) read it from.
const daskSpec = `services:
- name: dask-scheduler
  command: /bin/sh
  args: ["-c", "exec /usr/bin/python3 -m distributed.cli.dask_scheduler --host 127.0.0.1 --port $DCOS_PORT_SCHED --no-dashboard --scheduler-file shared/scheduler.json"]
  role: dask
  resources: {cpus: 0.2, mem: 256Mi, ports: 1}
  ports: [{name: sched}]
  volumes: [{name: dask, path: shared, host: true}]
  health: {tcp: {portName: sched}, gracePeriod: 60s, interval: 1s, timeout: 900ms}
- name: dask-workers
  instances: 2
  command: /usr/bin/python3
  args: ["%[1]s/dask_worker.py", "--host", "127.0.0.1", "--scheduler-file", "shared/scheduler.json", "--death-timeout", "60"]
  role: dask
  resources: {cpus: 1, mem: 512Mi}
  volumes: [{name: dask, path: shared, host: true}]
`

// TestEngines_Dask: dcosd dev with a host volume "dask"; a Dask scheduler
// and two workers as init services (daskSpec), the workers sized from
// their allocation's cgroup (1 thread, a 512 MiB memory limit each); then
// the job, a task with a persistent volume that makes its input there and
// runs a word count and a group-by on the workers. Its results equal what
// plain Python computes from the same input, the workers are the two
// services' tasks with the sizes of their allocations, and the job's
// partitions ran in them.
func TestEngines_Dask(t *testing.T) {
	t.Parallel()
	needRoot(t)
	if err := exec.Command("/usr/bin/python3", "-c", "import distributed, dask.dataframe, pandas").Run(); err != nil {
		t.Fatalf("python3 distributed, pandas: %v (scripts/test installs python3-distributed and python3-pandas)", err)
	}
	e := newEnv(t)
	scripts := engineScripts(t)
	shared := e.path("dask-shared")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o1777); err != nil { // the tasks' uid writes the scheduler file
		t.Fatal(err)
	}
	// The job's sandbox is kept after it ends, for its logs.
	e.startDev("--resources", "cpus=4,mem=4Gi,disk=4Gi", "--storage-driver", "local", "--sandbox-retention", "1h",
		"--host-volume", "dask="+shared)
	started := time.Now()
	e.applySvc("dask.yaml", fmt.Sprintf(daskSpec, scripts))

	job := runTaskNoWait(e, "--cpus", "0.5", "--mem", "512Mi", "--role", "dask",
		"--volume", "words=32Mi:data", "--host-volume", "dask:shared", "--",
		"/usr/bin/python3", filepath.Join(scripts, "dask_job.py"), "data", "shared/scheduler.json", "2")
	task := waitEnded(e, job)
	logs, _, _ := e.ctl("logs", job)
	t.Logf("Dask services and job took %v", time.Since(started).Round(time.Millisecond))
	if task.GetState() != pb.TaskState_TASK_STATE_FINISHED {
		_, errs, _ := e.ctl("logs", "--stderr", job)
		t.Fatalf("job %v exit %d (%s)\nstdout:\n%s\nstderr:\n%s", task.GetState(), task.GetExitCode(), task.GetReason(), logs, tail(errs, 40))
	}

	var workers map[string]struct {
		Nthreads    int    `json:"nthreads"`
		MemoryLimit int64  `json:"memory_limit"`
		Task        string `json:"task"`
	}
	var ranOn []string
	var got map[string]any
	for prefix, v := range map[string]any{"WORKERS ": &workers, "RAN_ON ": &ranOn, "RESULT ": &got} {
		line := lineWith(logs, prefix)
		if err := json.Unmarshal([]byte(line), v); err != nil {
			t.Fatalf("job's %sline: %v\n%s", prefix, err, logs)
		}
	}

	t.Logf("job: WORKERS %s; RAN_ON %s", lineWith(logs, "WORKERS "), lineWith(logs, "RAN_ON "))

	// The same computation in plain Python over the same input.
	local := e.path("input")
	if out, err := exec.Command("/usr/bin/python3", filepath.Join(scripts, "dask_gen.py"), local).CombinedOutput(); err != nil {
		t.Fatalf("dask_gen.py: %v\n%s", err, out)
	}
	out, err := exec.Command("/usr/bin/python3", filepath.Join(scripts, "plain_count.py"), local).Output()
	if err != nil {
		t.Fatalf("plain_count.py: %v", err)
	}
	var want map[string]any
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Dask's results differ from plain Python's:\n dask: %v\nplain: %v", got, want)
	}

	var workerTasks []string
	for _, tk := range e.view("dask-workers").running() {
		workerTasks = append(workerTasks, tk.GetId())
	}
	if len(workers) != 2 {
		t.Fatalf("workers = %v, want 2", workers)
	}
	for addr, w := range workers {
		if w.Nthreads != 1 || w.MemoryLimit != 512<<20 || !slices.Contains(workerTasks, w.Task) {
			t.Errorf("worker %s = %+v, want 1 thread and 512 MiB, in one of the tasks %v", addr, w, workerTasks)
		}
	}
	if len(ranOn) == 0 {
		t.Error("RAN_ON is empty")
	}
	for _, id := range ranOn {
		if !slices.Contains(workerTasks, id) {
			t.Errorf("a partition ran in %q, not in a worker task %v", id, workerTasks)
		}
	}
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
func engineScripts(t *testing.T) string {
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
