package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

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
