package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dinit "github.com/dcos-kernel/dcos/frameworks/init"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Dask on dcos beside a web service (issue 18, items 3 and 4; docs/big-data.md,
// "Dask" and "Beside the services"): the scheduler and the workers are init
// services, the computation is a job of the jobs framework, all under the
// role batch; a light HTTP service under the role web (a higher DRF weight
// and priority) keeps answering a steady request stream whose latency the
// test measures before and during the computation.

// sideConfig sizes one side-by-side run.
type sideConfig struct {
	// webCpus is the web service's allocation (its cgroup's CFS quota and
	// cpu.shares); workerCpus, schedCpus and jobCpus the batch side's.
	webCpus, workerCpus, schedCpus, jobCpus float64
	// batchQuota, when set, is dcosd's --role-quota for batch (cpus=...).
	batchQuota string
	// batchIdle puts the role batch in the idle CPU class (dcosctl role
	// set batch --cpu-class idle) before its services start.
	batchIdle bool
	// batchCPUSet, when set, confines the role batch to these CPUs
	// (dcosctl role set batch --cpuset LIST) before its services start;
	// the web service runs anywhere.
	batchCPUSet string
	// daemonsOnBatch, with batchCPUSet, pins dcosd dev (kernel, agent,
	// frameworks, embedded etcd: every thread, and the processes it forks
	// outside task cgroups) to the batch CPUs too (taskset -a -p), so that
	// CPU 0 runs only the web service and the test's request stream: to
	// measure whether the daemons' work for the job matters.
	daemonsOnBatch bool
	// webCPUSet, when set, confines the role web to these CPUs (dcosctl
	// role set web --cpuset LIST): with batchCPUSet, the machine is split
	// between services and batch.
	webCPUSet string
	// probeCPUSet, when set, pins the test process (the request stream,
	// which stands for the service's clients elsewhere) to these CPUs
	// while it measures (taskset -a -p), so that the instrument does not
	// wait on the batch CPUs itself.
	probeCPUSet string
	// parts, lines, rows size the input (dask_gen.py); volume is each
	// worker's persistent volume.
	parts, lines, rows int
	volume             string
	// rate is the request stream (requests per second); before the
	// window measured before the job runs.
	rate   int
	before time.Duration
}

// ciSide is the CI test's run: small, so the whole test stays well under
// 90 s on a loaded 2-core machine; batch in the idle CPU class, as
// docs/big-data.md advises, and on CPUs 1..N-1, so that the test checks a
// role's cpuset reaches its tasks (docs/roles.md, "Cpusets").
var ciSide = sideConfig{webCpus: 0.5, workerCpus: 1, schedCpus: 0.2, jobCpus: 0.5, batchIdle: true, batchCPUSet: batchCores(),
	parts: 4, lines: 1500, rows: 20000, volume: "32Mi", rate: 200, before: 5 * time.Second}

// latencies are the results of the requests of one window.
type latencies struct {
	n, failed int
	p50, p99  time.Duration
	firstErr  string
}

func (l latencies) String() string {
	return fmt.Sprintf("%d requests, %d failed, p50 %v p99 %v", l.n, l.failed, l.p50, l.p99)
}

// sideResult is what one side-by-side run measured.
type sideResult struct {
	before, during latencies
	jobTook        time.Duration
	loadavg        string // /proc/loadavg when the job ended
	// selfCPU is the test process's cpu use (the request stream, mostly)
	// and busy the machine's, in cores, over each window.
	selfCPU, busy [2]float64
	// throttled is how many CFS periods the web service's cgroup was
	// throttled in (its own cpu quota reached), before and during.
	throttled [2]uint64
}

// throttledPeriods returns nr_throttled of the cpu cgroup of pid (v1 cpu
// controller or v2), 0 when it cannot be read.
func throttledPeriods(pid int32) uint64 {
	st, err := os.ReadFile(filepath.Join(cpuCgroupDir(pid), "cpu.stat"))
	if err != nil {
		return 0
	}
	n, _ := parseStat(string(st), "nr_throttled")
	return n
}

// cpuIdleOf returns the cpu.idle of the cpu cgroup of pid (v1 cpu
// controller or v2): "1" for the idle class, "0" for the normal one.
func cpuIdleOf(pid int32) (string, error) {
	b, err := os.ReadFile(filepath.Join(cpuCgroupDir(pid), "cpu.idle"))
	return strings.TrimSpace(string(b)), err
}

// cpuCgroupDir returns the directory of pid's cpu cgroup (v1 cpu
// controller or v2), "" when /proc/PID/cgroup cannot be read.
func cpuCgroupDir(pid int32) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	dir := ""
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		if slices.Contains(strings.Split(f[1], ","), "cpu") {
			dir = filepath.Join("/sys/fs/cgroup", f[1], f[2])
			break
		}
		if f[0] == "0" && f[1] == "" && dir == "" {
			dir = filepath.Join("/sys/fs/cgroup", f[2])
		}
	}
	return dir
}

// parseStat returns the value of key in a "key value" per line file.
func parseStat(text, key string) (uint64, bool) {
	for _, l := range strings.Split(text, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == key {
			n, err := strconv.ParseUint(f[1], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// cpuMark is a point on the test process's and the machine's cpu clocks.
type cpuMark struct {
	at         time.Time
	self       time.Duration // this process's user+system time
	busy, idle uint64        // /proc/stat's first line, in ticks
}

func markCPU() cpuMark {
	m := cpuMark{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		m.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		for i, v := range f[1:] {
			n, _ := strconv.ParseUint(v, 10, 64)
			if i == 3 || i == 4 { // idle, iowait
				m.idle += n
			} else if i < 8 { // not guest time, counted in user already
				m.busy += n
			}
		}
	}
	return m
}

// cores returns the cpus used between a and b: by this process, and by the
// whole machine (busy ticks over all ticks, times the number of cpus).
func cores(a, b cpuMark) (self, busy float64) {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return 0, 0
	}
	self = (b.self - a.self).Seconds() / wall
	if t := float64(b.busy + b.idle - a.busy - a.idle); t > 0 {
		busy = float64(b.busy-a.busy) / t * float64(runtime.NumCPU())
	}
	return self, busy
}

// ratio is p99 during / p99 before.
func (r sideResult) ratio() float64 {
	if r.before.p99 == 0 {
		return 0
	}
	return float64(r.during.p99) / float64(r.before.p99)
}

// daskServices is the Dask cluster as init services under the role batch.
// The scheduler listens on a host port the kernel reserved for it and writes
// its address into the host volume "dask"; each worker has a persistent
// volume "words" (dask-workers-words-N) at data in its sandbox, where the
// job has it make the input.
func daskServices(scripts string, c sideConfig) string {
	return fmt.Sprintf(`services:
- name: dask-scheduler
  command: /bin/sh
  args: ["-c", "exec /usr/bin/python3 -m distributed.cli.dask_scheduler --host 127.0.0.1 --port $DCOS_PORT_SCHED --no-dashboard --scheduler-file shared/scheduler.json"]
  role: batch
  resources: {cpus: %[2]g, mem: 256Mi, ports: 1}
  ports: [{name: sched}]
  volumes: [{name: dask, path: shared, host: true}]
  health: {tcp: {portName: sched}, gracePeriod: 60s, interval: 1s, timeout: 900ms}
- name: dask-workers
  instances: 2
  command: /usr/bin/python3
  args: ["%[1]s/dask_worker.py", "--host", "127.0.0.1", "--scheduler-file", "shared/scheduler.json", "--death-timeout", "60", "--local-directory", "dask-worker-space"]
  role: batch
  resources: {cpus: %[3]g, mem: 512Mi}
  volumes:
  - {name: dask, path: shared, host: true}
  - {name: words, path: data, size: %[4]s}
`, scripts, c.schedCpus, c.workerCpus, c.volume)
}

// webService is httphello under the role web, with priority over batch.
func webService(bin string, cpus float64) string {
	return fmt.Sprintf(`name: web
command: /bin/sh
args: ["-c", "exec %s $DCOS_PORT_HTTP"]
role: web
priority: 100
resources: {cpus: %g, mem: 32Mi, ports: 1}
ports: [{name: http}]
health: {http: {portName: http, path: /}, gracePeriod: 10s, interval: 1s, timeout: 900ms, consecutiveFailures: 2}
`, bin, cpus)
}

// daskJob is the Dask client as a job under the role batch. Job specs have
// no volumes: the client reads the scheduler's address from the host
// volume's directory on the agent (sharedDir) and the input is the workers'.
func daskJob(scripts, sharedDir string, c sideConfig) string {
	return fmt.Sprintf(`name: dask-count
command: /usr/bin/python3
args: ["%s/dask_job.py", "--scheduler-file", "%s/scheduler.json", "--data", "data", "--workers", "2",
       "--parts", "%d", "--lines", "%d", "--rows", "%d"]
role: batch
resources: {cpus: %g, mem: 512Mi}
backoffLimit: 0
activeDeadline: 10m
`, scripts, sharedDir, c.parts, c.lines, c.rows, c.jobCpus)
}

// TestEngines_Dask: dcosd dev; a Dask scheduler and two workers as init
// services (role batch), the workers sized from their allocation's cgroup
// (1 thread, a 512 MiB memory limit each), each with a persistent volume;
// a web service (httphello, role web, higher weight and priority); then the
// computation as a job (dcosctl job apply, dcosctl job run): it has each
// worker make the input in its volume and runs a word count and a group-by
// on them. Its results equal what plain Python computes from the same
// input, the workers are the two services' tasks with the sizes of their
// allocations, and the job's partitions ran in them. The role batch is in
// the idle CPU class (dcosctl role set batch --cpu-class idle): the
// workers' cpu cgroups have cpu.idle = 1, the web service's 0; and on CPUs
// 1..N-1 (dcosctl role set batch --cpuset): the workers' processes may run
// there only (Cpus_allowed_list), the web service's anywhere. A steady stream of
// 200 requests/s to the web service, before and while the job runs, has
// no failed request, and the service's task stays the same and healthy;
// the p99s before and during and their ratio are logged (the goal, a
// ratio ≤ 1.1, is BenchmarkSideBySide's: docs/benchmarks.md).
func TestEngines_Dask(t *testing.T) {
	t.Parallel()
	needRoot(t)
	r := runSideBySide(t, ciSide)
	t.Logf("web service before the job: %v; during: %v; p99 ratio %.2f; job took %v; load average %s; "+
		"cpus used before/during: machine %.2f/%.2f, test process %.2f/%.2f; web throttled in %d/%d CFS periods",
		r.before, r.during, r.ratio(), r.jobTook.Round(time.Millisecond), r.loadavg, r.busy[0], r.busy[1], r.selfCPU[0], r.selfCPU[1], r.throttled[0], r.throttled[1])
}

// BenchmarkSideBySide: the side-by-side run with a heavier computation
// (8 text parts of 40,000 lines, 400,000 rows: 2.6 M words) and a 20 s
// window before it, once per variant; it reports the web service's p50 and
// p99 before and during the job and the p99 ratio (goal ≤ 1.1), and the
// load average when the job ended. The variants are what is cheap to try
// for the service's share: its cpu weight (cpus → cpu.shares), the batch
// role's quota (which caps what batch allocations hold, and so their CFS
// quotas), the batch role's idle CPU class (cpu.idle; batch-idle), a
// cpuset that keeps CPU 0 free of batch work (dcosctl role set batch
// --cpuset 1-(N-1); batch-cpuset), both (batch-idle-cpuset), and both
// with dcosd dev itself pinned to the batch CPUs (idle-cpuset-dcosd:
// CPU 0 is left to the web service and the request stream). The web
// service runs on every CPU in those; in split-cpus the role web is
// confined to CPU 0 too (dcosctl role set web --cpuset 0: services and
// batch each on their own CPUs), and partitioned adds the request stream
// pinned to CPU 0 while it measures (the clients, which are elsewhere in
// production, must not wait on the batch CPU either); isolated is
// partitioned with dcosd dev pinned to the batch CPUs as in
// idle-cpuset-dcosd, so that CPU 0 runs the web service and its clients
// only. Only the idle variants put batch in the idle class.
//
//	go test ./e2e -run '^$' -bench SideBySide -benchtime 1x -timeout 30m
func BenchmarkSideBySide(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: cgroup isolation, sized sandboxes")
	}
	heavy := ciSide
	heavy.parts, heavy.lines, heavy.rows, heavy.volume, heavy.before = 8, 40000, 400000, "128Mi", 20*time.Second
	heavy.batchIdle = false
	webHeavy := heavy
	webHeavy.webCpus = 2
	quota := heavy
	quota.batchQuota, quota.workerCpus, quota.schedCpus, quota.jobCpus = "cpus=1.2", 0.4, 0.1, 0.3
	idle := heavy
	idle.batchIdle = true
	cpuset := heavy
	cpuset.batchCPUSet = batchCores()
	idleCPUSet := idle
	idleCPUSet.batchCPUSet = batchCores()
	daemons := idleCPUSet
	daemons.daemonsOnBatch = true
	split := idleCPUSet
	split.webCPUSet = serviceCores()
	partitioned := split
	partitioned.probeCPUSet = serviceCores()
	isolated := partitioned
	isolated.daemonsOnBatch = true
	for _, v := range []struct {
		name string
		c    sideConfig
	}{{"baseline", heavy}, {"web-cpus-2", webHeavy}, {"batch-quota-1.2", quota}, {"batch-idle", idle},
		{"batch-cpuset", cpuset}, {"batch-idle-cpuset", idleCPUSet}, {"idle-cpuset-dcosd", daemons},
		{"split-cpus", split}, {"partitioned", partitioned}, {"isolated", isolated}} {
		b.Run(v.name, func(b *testing.B) {
			if v.c.batchCPUSet == "" && (strings.Contains(v.name, "cpu") || v.name == "partitioned" || v.name == "isolated") {
				b.Skip("one CPU: no core to keep free of batch work")
			}
			for range b.N {
				r := runSideBySide(b, v.c)
				b.Logf("%s: before %v; during %v; ratio %.2f; job %v; load %s; cpus used before/during: machine %.2f/%.2f, test process %.2f/%.2f; web throttled in %d/%d CFS periods",
					v.name, r.before, r.during, r.ratio(), r.jobTook.Round(time.Millisecond), r.loadavg, r.busy[0], r.busy[1], r.selfCPU[0], r.selfCPU[1], r.throttled[0], r.throttled[1])
				b.ReportMetric(ms(r.before.p50), "p50-before-ms")
				b.ReportMetric(ms(r.before.p99), "p99-before-ms")
				b.ReportMetric(ms(r.during.p50), "p50-during-ms")
				b.ReportMetric(ms(r.during.p99), "p99-during-ms")
				b.ReportMetric(r.ratio(), "p99-ratio")
				b.ReportMetric(r.jobTook.Seconds(), "job-s")
				b.ReportMetric(r.busy[1], "busy-during-cpus")
			}
		})
	}
}

// runSideBySide starts dcosd dev, the web service and the Dask services,
// measures the web service for c.before, runs the Dask job with dcosctl
// job run while measuring, and checks the job's results against plain
// Python's, the workers' sizes and where the partitions ran, that no
// request failed and that the web service's task stayed healthy.
func runSideBySide(tb testing.TB, c sideConfig) sideResult {
	tb.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import distributed, dask.dataframe, pandas").Run(); err != nil {
		tb.Fatalf("python3 distributed, pandas: %v (scripts/test installs python3-distributed and python3-pandas)", err)
	}
	e := newEnv(tb)
	scripts := engineScripts(tb)
	web := filepath.Join(scripts, "httphello")
	if out, err := exec.Command("go", "build", "-o", web, "github.com/dcos-kernel/dcos/e2e/internal/httphello").CombinedOutput(); err != nil {
		tb.Fatalf("go build httphello: %v\n%s", err, out)
	}
	// The host volume "dask" holds the scheduler's address; the job, which
	// has no volumes, reads it at its path on the agent: a directory every
	// task's uid can reach (the env's own dir is the test user's only).
	shared, err := os.MkdirTemp("", "dcos-e2e-dask-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(shared) })
	if err := os.Chmod(shared, 0o1777); err != nil { // the scheduler's uid writes there
		tb.Fatal(err)
	}
	_, ports := hostPortRange(newToken(), 10)
	dev := []string{"--resources", "cpus=8,mem=6Gi,disk=4Gi", "--storage-driver", "local", "--sandbox-retention", "1h",
		"--host-volume", "dask=" + shared, "--host-ports", ports, "--role-weight", "web=4"}
	if c.batchQuota != "" {
		dev = append(dev, "--role-quota", "batch:"+c.batchQuota)
	}
	devProc := e.startDev(dev...)
	started := time.Now()
	if c.daemonsOnBatch {
		pid := strconv.Itoa(devProc.cmd.Process.Pid)
		if out, err := exec.Command("taskset", "-a", "-p", "-c", c.batchCPUSet, pid).CombinedOutput(); err != nil {
			tb.Fatalf("taskset -a -p -c %s %s: %v\n%s", c.batchCPUSet, pid, err, out)
		}
	}
	if c.batchIdle {
		if out := e.mustCtl("role", "set", "batch", "--cpu-class", "idle"); !strings.Contains(out, "idle") {
			tb.Fatalf("dcosctl role set batch --cpu-class idle answered %q", out)
		}
	}
	if c.batchCPUSet != "" {
		if out := e.mustCtl("role", "set", "batch", "--cpuset", c.batchCPUSet); !strings.Contains(out, c.batchCPUSet) {
			tb.Fatalf("dcosctl role set batch --cpuset %s answered %q", c.batchCPUSet, out)
		}
	}
	if c.webCPUSet != "" {
		if out := e.mustCtl("role", "set", "web", "--cpuset", c.webCPUSet); !strings.Contains(out, c.webCPUSet) {
			tb.Fatalf("dcosctl role set web --cpuset %s answered %q", c.webCPUSet, out)
		}
	}

	e.applySvc("web.yaml", webService(web, c.webCpus))
	var webTask *pb.Task
	e.eventually("web healthy", func() (bool, string) {
		h := e.view("web").healthy("")
		if len(h) == 1 {
			webTask = h[0]
		}
		return webTask != nil, fmt.Sprintf("%+v", e.svcStatus("web"))
	})
	e.applySvc("dask.yaml", daskServices(scripts, c))
	// Both workers registered with the scheduler (and done importing Dask,
	// which would load the machine in the window "before").
	var workerTasks []string
	var lastErrs string
	e.eventually("2 Dask workers registered", func() (bool, string) {
		workerTasks = workerTasks[:0]
		for _, tk := range e.view("dask-workers").running() {
			outs, errs, _ := e.ctl("logs", "--all", tk.GetId())
			lastErrs = tail(outs, 5) + tail(errs, 10)
			if strings.Contains(errs, "Registered to:") {
				workerTasks = append(workerTasks, tk.GetId())
			}
		}
		sched := ""
		if tks := e.view("dask-scheduler").running(); len(tks) > 0 {
			o, x, _ := e.ctl("logs", "--all", tks[0].GetId())
			sched = tail(o, 5) + tail(x, 10)
		}
		return len(workerTasks) == 2, fmt.Sprintf("%d registered; %+v; a worker's output:\n%s\nthe scheduler: %+v; its output:\n%s",
			len(workerTasks), e.svcStatus("dask-workers"), lastErrs, e.svcStatus("dask-scheduler"), sched)
	})
	tb.Logf("web and Dask services up in %v", time.Since(started).Round(time.Millisecond))
	checkCPUClasses(tb, webTask, e.view("dask-workers").running(), c.batchIdle)
	checkCPUSets(tb, webTask, e.view("dask-workers").running(), c.batchCPUSet, c.webCPUSet)
	if c.probeCPUSet != "" {
		all, err := cpusAllowedList(int32(os.Getpid()))
		if err != nil {
			tb.Fatal(err)
		}
		pin := func(cpus string) {
			if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
				tb.Fatalf("taskset -a -p -c %s (the test process): %v\n%s", cpus, err, out)
			}
		}
		pin(c.probeCPUSet)
		defer pin(all)
	}

	// The request stream runs from here to the job's end; a watch sees any
	// change of the web service's task.
	w := e.watch(e.op(), listTasks(tb, e.op()).GetRevision())
	p := startProbe(fmt.Sprintf("http://127.0.0.1:%d/", hostPort(webTask)), c.rate)
	defer p.stop()
	m0 := markCPU()
	th0 := throttledPeriods(webTask.GetPid())
	time.Sleep(c.before)
	th1 := throttledPeriods(webTask.GetPid())

	spec := e.path("dask-job.yaml")
	if err := os.WriteFile(spec, []byte(daskJob(scripts, shared, c)), 0o644); err != nil {
		tb.Fatal(err)
	}
	m1 := markCPU()
	jobStart := m1.at
	e.mustCtl("job", "apply", "-f", spec)
	out, errOut, code := e.ctl("job", "run", "dask-count")
	m2 := markCPU()
	jobEnd := m2.at
	th2 := throttledPeriods(webTask.GetPid())
	loadavg, _ := os.ReadFile("/proc/loadavg")
	p.stop()
	logs, _, _ := e.ctl("job", "logs", "dask-count")
	if code != 0 {
		_, stderr, _ := e.ctl("job", "logs", "dask-count", "--stderr")
		tb.Fatalf("dcosctl job run dask-count: exit %d\n%s%s\njob stdout:\n%s\njob stderr:\n%s", code, out, errOut, logs, tail(stderr, 40))
	}
	r := sideResult{before: p.window(jobStart.Add(-c.before), jobStart), during: p.window(jobStart, jobEnd),
		jobTook: jobEnd.Sub(jobStart), loadavg: strings.TrimSpace(string(loadavg))}
	r.selfCPU[0], r.busy[0] = cores(m0, m1)
	r.selfCPU[1], r.busy[1] = cores(m1, m2)
	r.throttled = [2]uint64{th1 - th0, th2 - th1}

	var workers map[string]struct {
		Nthreads    int    `json:"nthreads"`
		MemoryLimit int64  `json:"memory_limit"`
		Task        string `json:"task"`
	}
	var ranOn []string
	var got map[string]any
	for prefix, v := range map[string]any{"WORKERS ": &workers, "RAN_ON ": &ranOn, "RESULT ": &got} {
		if err := json.Unmarshal([]byte(lineWith(logs, prefix)), v); err != nil {
			tb.Fatalf("job's %sline: %v\n%s", prefix, err, logs)
		}
	}
	tb.Logf("job: WORKERS %s; INPUT %s; RAN_ON %s", lineWith(logs, "WORKERS "), lineWith(logs, "INPUT "), lineWith(logs, "RAN_ON "))

	// The same computation in plain Python over the same input.
	local := e.path("input")
	sizes := []string{fmt.Sprint(c.parts), fmt.Sprint(c.lines), fmt.Sprint(c.rows)}
	if out, err := exec.Command("/usr/bin/python3", append([]string{filepath.Join(scripts, "dask_gen.py"), local}, sizes...)...).CombinedOutput(); err != nil {
		tb.Fatalf("dask_gen.py: %v\n%s", err, out)
	}
	plain, err := exec.Command("/usr/bin/python3", filepath.Join(scripts, "plain_count.py"), local).Output()
	if err != nil {
		tb.Fatalf("plain_count.py: %v", err)
	}
	var want map[string]any
	if err := json.Unmarshal(plain, &want); err != nil {
		tb.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("Dask's results differ from plain Python's:\n dask: %v\nplain: %v", got, want)
	}

	wantThreads := max(1, int(c.workerCpus+0.999))
	if len(workers) != 2 {
		tb.Fatalf("workers = %v, want 2", workers)
	}
	for addr, wk := range workers {
		if wk.Nthreads != wantThreads || wk.MemoryLimit != 512<<20 || !slices.Contains(workerTasks, wk.Task) {
			tb.Errorf("worker %s = %+v, want %d thread(s) and 512 MiB, in one of the tasks %v", addr, wk, wantThreads, workerTasks)
		}
	}
	if len(ranOn) == 0 {
		tb.Error("RAN_ON is empty")
	}
	for _, id := range ranOn {
		if !slices.Contains(workerTasks, id) {
			tb.Errorf("a partition ran in %q, not in a worker task %v", id, workerTasks)
		}
	}

	// The web service answered every request and stayed the same healthy
	// task throughout.
	for name, l := range map[string]latencies{"before": r.before, "during": r.during} {
		if l.n == 0 || l.failed != 0 {
			tb.Errorf("web service %s the job: %v (first error: %s)", name, l, l.firstErr)
		}
	}
	for _, ev := range w.snapshot() {
		tk := ev.GetTask()
		if tk.GetLabels()[dinit.LabelService] != "web" {
			continue
		}
		if tk.GetId() != webTask.GetId() || tk.GetState() != pb.TaskState_TASK_STATE_RUNNING || (ev.GetKind() == pb.EventKind_EVENT_KIND_TASK_HEALTH && tk.GetHealth() != pb.HealthState_HEALTH_STATE_HEALTHY) {
			tb.Errorf("web service changed while the job ran: %s", eventString(ev))
		}
	}
	if h := e.view("web").healthy(""); len(h) != 1 || h[0].GetId() != webTask.GetId() {
		tb.Errorf("web service after the job: %v, want %s healthy", e.view("web").tasks, webTask.GetId())
	}
	return r
}

// checkCPUClasses checks the cpu.idle of the web task's and the workers'
// cpu cgroups: 0 for web, 1 for the workers when batch is idle (else 0).
// It skips when the kernel has no cpu.idle (Linux < 5.15): the class is
// not enforced there.
func checkCPUClasses(tb testing.TB, web *pb.Task, workers []*pb.Task, batchIdle bool) {
	tb.Helper()
	if _, err := cpuIdleOf(web.GetPid()); os.IsNotExist(err) {
		if batchIdle {
			tb.Logf("the kernel has no cgroup cpu.idle: the idle class is not enforced here")
		}
		return
	}
	want := "0"
	if batchIdle {
		want = "1"
	}
	for _, tk := range append([]*pb.Task{web}, workers...) {
		w := want
		if tk == web {
			w = "0"
		}
		if got, err := cpuIdleOf(tk.GetPid()); err != nil || got != w {
			tb.Errorf("task %s (pid %d, cgroup %s): cpu.idle %q, %v; want %s", tk.GetId(), tk.GetPid(), cpuCgroupDir(tk.GetPid()), got, err, w)
		}
	}
	if len(workers) != 2 {
		tb.Errorf("%d running worker tasks, want 2", len(workers))
	}
}

// cpusAllowedList returns the Cpus_allowed_list of /proc/PID/status: the
// CPUs the scheduler lets pid run on.
func cpusAllowedList(pid int32) (string, error) {
	return statusField(int(pid), "Cpus_allowed_list")
}

// checkCPUSets checks where the web task and the workers may run: the
// workers on batchCPUSet when set, the web service (and the workers
// otherwise) on every CPU the test process may use.
func checkCPUSets(tb testing.TB, web *pb.Task, workers []*pb.Task, batchCPUSet, webCPUSet string) {
	tb.Helper()
	all, err := cpusAllowedList(int32(os.Getpid()))
	if err != nil {
		tb.Fatal(err)
	}
	for _, tk := range append([]*pb.Task{web}, workers...) {
		want := all
		if tk != web && batchCPUSet != "" {
			want = batchCPUSet
		}
		if tk == web && webCPUSet != "" {
			want = webCPUSet
		}
		if got, err := cpusAllowedList(tk.GetPid()); err != nil || got != want {
			tb.Errorf("task %s (pid %d): Cpus_allowed_list %q, %v; want %q", tk.GetId(), tk.GetPid(), got, err, want)
		}
	}
}

// serviceCores is CPU 0, the one batchCores leaves to the services.
func serviceCores() string { return "0" }

// batchCores is the CPU list 1..N-1 of this machine's N CPUs ("1" on two),
// the cores a batch role gets so that CPU 0 stays free of batch work; ""
// on one CPU.
func batchCores() string {
	switch n := runtime.NumCPU(); n {
	case 1:
		return ""
	case 2:
		return "1"
	default:
		return fmt.Sprintf("1-%d", n-1)
	}
}

// probe sends a steady stream of GET requests (open loop: one every
// 1/rate s, whatever the answers take, each in its own goroutine) and
// records when each was sent, its latency and whether it failed.
type probe struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	samples []probeSample
}

type probeSample struct {
	at  time.Time
	lat time.Duration
	err error
}

func startProbe(url string, rate int) *probe {
	ctx, cancel := context.WithCancel(context.Background())
	p := &probe{cancel: cancel, done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	go func() {
		defer close(p.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				at := time.Now()
				err := get(client, url)
				lat := time.Since(at)
				p.mu.Lock()
				p.samples = append(p.samples, probeSample{at, lat, err})
				p.mu.Unlock()
			}()
		}
	}()
	return p
}

// get does one request and reads the whole answer; anything but 200
// "hello\n" is an error.
func get(c *http.Client, url string) error {
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || string(b) != "hello\n" {
		return fmt.Errorf("status %d, body %q", res.StatusCode, b)
	}
	return nil
}

// stop ends the stream and waits for the requests in flight. Idempotent.
func (p *probe) stop() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
	})
}

// window summarises the requests sent in [from, to).
func (p *probe) window(from, to time.Time) latencies {
	p.mu.Lock()
	defer p.mu.Unlock()
	var l latencies
	var lats []time.Duration
	for _, s := range p.samples {
		if s.at.Before(from) || !s.at.Before(to) {
			continue
		}
		l.n++
		if s.err != nil {
			if l.failed == 0 {
				l.firstErr = s.err.Error()
			}
			l.failed++
			continue
		}
		lats = append(lats, s.lat)
	}
	slices.Sort(lats)
	l.p50, l.p99 = percentile(lats, 50), percentile(lats, 99)
	return l
}
