package e2e

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dinit "github.com/dcos-kernel/dcos/frameworks/init"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// The init's benchmarks (issue 13, docs/benchmarks.md "Distributed init").
// They run real binaries: dcosd dev (whose init runs in-process), or
// dcosd kernel + dcosd agents + a dcosd init process.

// httpService is a host-network HTTP server per instance, health-checked
// over HTTP every second.
func httpService(name string, instances int, extra string) string {
	return fmt.Sprintf(`name: %s
instances: %d
command: sh
args: ["-c", "exec python3 -m http.server --bind 127.0.0.1 $DCOS_PORT_HTTP"]
resources: {cpus: 0.5, mem: 32Mi, ports: 1}
ports: [{name: http}]
health: {http: {portName: http, path: /}, interval: 1s}
%s`, name, instances, extra)
}

// serviceTasks returns the tasks of service name (by the init's labels)
// that have not ended.
func serviceTasks(t testing.TB, c syscallsv1connect.KernelClient, name string) []*pb.Task {
	t.Helper()
	var out []*pb.Task
	for _, tk := range listTasks(t, c).GetTasks() {
		if tk.GetLabels()[dinit.LabelService] == name && tk.GetState() <= pb.TaskState_TASK_STATE_RUNNING {
			out = append(out, tk)
		}
	}
	return out
}

// BenchmarkInitReplace: on dcosd dev, a service of b.N HTTP instances
// (python3 -m http.server, HTTP health check); each instance's process is
// killed once (SIGKILL of its task, whose pid is the task init: the whole
// task dies), one after the other, and the time from the kill to its
// replacement's RUNNING and HEALTHY events (on a Watch) is measured. Each
// instance is killed once, so every replacement is a first failure
// (replaced at once; a crash loop backs off: see docs/init.md).
//
//	go test ./e2e -run '^$' -bench InitReplace -benchtime 20x
func BenchmarkInitReplace(b *testing.B) {
	e := newEnv(b)
	e.startDev("--resources", "cpus=64,mem=64Gi")
	c := e.op()
	n := b.N
	e.applySvc("bench.yaml", httpService("bench", n, ""))
	e.eventually(fmt.Sprintf("%d healthy instances", n), func() (bool, string) {
		healthy := 0
		for _, tk := range serviceTasks(b, c, "bench") {
			if tk.GetState() == pb.TaskState_TASK_STATE_RUNNING && tk.GetHealth() == pb.HealthState_HEALTH_STATE_HEALTHY {
				healthy++
				e.notePID(tk.GetPid())
			}
		}
		return healthy == n, fmt.Sprintf("%d healthy", healthy)
	})
	w := e.watch(c, listAgents(b, c).GetRevision())
	var running, healthy []time.Duration
	b.ResetTimer()
	for i := range n {
		var victim *pb.Task
		for _, tk := range serviceTasks(b, c, "bench") {
			if tk.GetLabels()[dinit.LabelInstance] == fmt.Sprint(i) && tk.GetState() == pb.TaskState_TASK_STATE_RUNNING {
				victim = tk
			}
		}
		if victim == nil || victim.GetPid() <= 0 {
			b.Fatalf("instance %d: no running task with a pid", i)
		}
		inst := fmt.Sprint(i)
		isNew := func(ev *pb.Event) bool {
			tk := ev.GetTask()
			return tk.GetLabels()[dinit.LabelInstance] == inst && tk.GetId() != victim.GetId() && !tk.GetCreated().AsTime().Before(victim.GetCreated().AsTime())
		}
		start := time.Now()
		if err := syscall.Kill(int(victim.GetPid()), syscall.SIGKILL); err != nil {
			b.Fatalf("kill %d: %v", victim.GetPid(), err)
		}
		up := w.waitFor(b, "a RUNNING replacement of instance "+inst, func(ev *pb.Event) bool {
			return ev.GetKind() == pb.EventKind_EVENT_KIND_TASK_STATE && ev.GetTask().GetState() == pb.TaskState_TASK_STATE_RUNNING && isNew(ev)
		})
		running = append(running, time.Since(start))
		e.notePID(up.GetTask().GetPid())
		w.waitFor(b, "the replacement of instance "+inst+" HEALTHY", func(ev *pb.Event) bool {
			return ev.GetKind() == pb.EventKind_EVENT_KIND_TASK_HEALTH && ev.GetTask().GetHealth() == pb.HealthState_HEALTH_STATE_HEALTHY && isNew(ev)
		})
		healthy = append(healthy, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(running)
	slices.Sort(healthy)
	b.ReportMetric(float64(percentile(running, 50).Milliseconds()), "running-p50-ms")
	b.ReportMetric(float64(percentile(running, 99).Milliseconds()), "running-p99-ms")
	b.ReportMetric(float64(percentile(healthy, 50).Milliseconds()), "healthy-p50-ms")
	b.ReportMetric(float64(percentile(healthy, 99).Milliseconds()), "healthy-p99-ms")
	e.mustCtl("svc", "rm", "bench")
	e.eventually("the service's tasks gone", func() (bool, string) {
		n := len(serviceTasks(b, c, "bench"))
		return n == 0, fmt.Sprintf("%d left", n)
	})
}

// initCluster is dcosd kernel + agents + one dcosd init process.
type initCluster struct {
	*env
	opTok, initTok string
	agentToks      []string
	ctlFlags       []string // --kernel URL --token OP for dcosctl
}

// startInitCluster starts a kernel (extra flags) whose tokens file has
// tokens for n agents named agent-0…, starts the first started of them
// (each with resources res; start more with startAgentN) and a dcosd init.
func startInitCluster(t testing.TB, n, started int, res string, kernelFlags ...string) *initCluster {
	e := newEnv(t)
	c := &initCluster{env: e, opTok: newToken(), initTok: newToken()}
	entries := []tokenEntry{{Token: c.opTok, Name: "ops", Role: "operator"}, {Token: c.initTok, Name: "init", Role: "framework"}}
	for i := range n {
		tok := newToken()
		c.agentToks = append(c.agentToks, tok)
		entries = append(entries, tokenEntry{Token: tok, Name: fmt.Sprintf("agent-%d", i), Role: "agent"})
	}
	tokens := e.writeTokens(e.path("tokens.json"), entries...)
	e.startKernel(tokens, c.opTok, append([]string{"--rate-limit", "framework:init=unlimited"}, kernelFlags...)...)
	for i := range started {
		c.startAgentN(i, res)
	}
	e.startInit("init", c.initTok)
	c.ctlFlags = []string{"--kernel", e.url, "--token", c.opTok}
	return c
}

// startAgentN starts agent-i; it returns its process and id.
func (c *initCluster) startAgentN(i int, res string) (*proc, string) {
	args := []string{"--resources", res}
	if f := os.Getenv("BENCH_AGENT_FLAGS"); f != "" {
		args = append(args, strings.Fields(f)...)
	}
	return c.startAgent(fmt.Sprintf("agent-%d", i), c.agentToks[i], args...)
}

// BenchmarkInitAgentLost: dcosd kernel (heartbeat timeout 3s, interval
// 200ms) + agent-0 running 3 instances of a `sleep` service + an idle
// agent-1 (started once they run) + a dcosd init. agent-0's dcosd is
// SIGKILLed (its tasks keep running, as on a host cut off from the
// kernel); the benchmark times the kill to all 3 instances RUNNING on
// agent-1, and reports that less the heartbeat timeout (goal ≤ 1 s).
//
//	go test ./e2e -run '^$' -bench InitAgentLost -benchtime 1x -count 3
func BenchmarkInitAgentLost(b *testing.B) {
	const timeout = 3 * time.Second
	for range b.N {
		b.StopTimer()
		c := startInitCluster(b, 2, 1, "cpus=4,mem=4Gi", "--heartbeat-timeout", timeout.String(), "--heartbeat-interval", "200ms")
		op := c.op()
		c.applySvc("lost.yaml", "name: lost\ninstances: 3\ncommand: sleep\nargs: [\"3600\"]\nresources: {cpus: 0.1, mem: 16Mi}\n", c.ctlFlags...)
		var on0 string
		c.eventually("3 instances RUNNING on agent-0", func() (bool, string) {
			running := 0
			for _, tk := range serviceTasks(b, op, "lost") {
				if tk.GetState() == pb.TaskState_TASK_STATE_RUNNING {
					running++
					on0 = tk.GetAgentId()
					c.notePID(tk.GetPid())
				}
			}
			return running == 3, fmt.Sprintf("%d RUNNING", running)
		})
		_, id1 := c.startAgentN(1, "cpus=4,mem=4Gi")
		var ag0 *proc
		c.mu.Lock()
		for _, p := range c.procs {
			if p.name == "dcosd agent agent-0" {
				ag0 = p
			}
		}
		c.mu.Unlock()
		b.StartTimer()
		start := time.Now()
		ag0.signal(syscall.SIGKILL)
		c.eventually("3 instances RUNNING on agent-1", func() (bool, string) {
			running := 0
			for _, tk := range serviceTasks(b, op, "lost") {
				if tk.GetState() == pb.TaskState_TASK_STATE_RUNNING && tk.GetAgentId() == id1 {
					running++
				}
			}
			return running == 3, fmt.Sprintf("%d RUNNING on %s (lost agent %s)", running, id1, on0)
		})
		d := time.Since(start)
		b.StopTimer()
		b.ReportMetric(d.Seconds(), "s-lost-to-running")
		b.ReportMetric((d - timeout).Seconds(), "s-after-timeout")
		c.mustCtl(append(c.ctlFlags, "svc", "rm", "lost")...)
		c.eventually("the service's tasks gone", func() (bool, string) {
			left := len(serviceTasks(b, op, "lost"))
			return left == 0, fmt.Sprintf("%d left", left)
		})
	}
}

// BenchmarkInitApply1000: `svc apply` of 1,000 instances of a 0.001-cpu
// `sleep` service on dcosd kernel + 3 dcosd agents + a dcosd init: the
// time from the apply to all 1,000 RUNNING (goal ≤ 10 s), and to all gone
// after `svc rm`. Knobs for comparisons: BENCH_CPUS (the instances' cpus,
// default 0.001), BENCH_POLICY (the kernel's --default-policy),
// BENCH_AGENT_FLAGS (extra dcosd agent flags, e.g.
// "--max-concurrent-starts 16").
//
//	go test ./e2e -run '^$' -bench InitApply1000 -benchtime 1x
func BenchmarkInitApply1000(b *testing.B) {
	const n = 1000
	for range b.N {
		b.StopTimer()
		var kflags []string
		if p := os.Getenv("BENCH_POLICY"); p != "" {
			kflags = append(kflags, "--default-policy", p)
		}
		c := startInitCluster(b, 3, 3, "cpus=64,mem=16Gi", kflags...)
		op := c.op()
		spec := fmt.Sprintf("name: many\ninstances: %d\ncommand: sleep\nargs: [\"3600\"]\nresources: {cpus: %s, mem: 4Mi}\n", n, cmp.Or(os.Getenv("BENCH_CPUS"), "0.001"))
		b.StartTimer()
		start := time.Now()
		c.applySvc("many.yaml", spec, c.ctlFlags...)
		c.eventually(fmt.Sprintf("%d RUNNING", n), func() (bool, string) {
			running := 0
			for _, tk := range serviceTasks(b, op, "many") {
				if tk.GetState() == pb.TaskState_TASK_STATE_RUNNING {
					running++
				}
			}
			return running == n, fmt.Sprintf("%d RUNNING", running)
		})
		b.ReportMetric(time.Since(start).Seconds(), "s-all-running")
		b.StopTimer()
		perAgent := map[string]int{}
		for _, tk := range serviceTasks(b, op, "many") {
			perAgent[tk.GetAgentId()]++
		}
		b.Logf("instances per agent: %v", perAgent)
		stop := time.Now()
		c.mustCtl(append(c.ctlFlags, "svc", "rm", "many")...)
		c.eventually("all gone", func() (bool, string) {
			left := len(serviceTasks(b, op, "many"))
			return left == 0, fmt.Sprintf("%d left", left)
		})
		b.ReportMetric(time.Since(stop).Seconds(), "s-all-gone")
	}
}
