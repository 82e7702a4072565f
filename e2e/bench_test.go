package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// BenchmarkAllocateRoundTrip measures one Allocate syscall (0.001 cpu,
// 1Mi, granted) from a client to dcosd dev and back, over loopback HTTP
// with the Connect protocol, including the kernel's allocation cycle and
// its etcd commit. It reports the median and 99th percentile latency.
//
//	go test ./e2e -run '^$' -bench AllocateRoundTrip -benchtime 2000x
func BenchmarkAllocateRoundTrip(b *testing.B) {
	e := newEnv(b)
	e.startDev("--resources", "cpus=100000,mem=1000Ti")
	c := e.op()
	req := connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.001, MemBytes: mi}})
	ctx := context.Background()
	// One call to open the connection.
	if _, err := c.Allocate(ctx, req); err != nil {
		b.Fatal(err)
	}
	durs := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		res, err := c.Allocate(ctx, req)
		durs = append(durs, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if a := res.Msg.GetAllocations(); len(a) != 1 || a[0].GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED {
			b.Fatalf("Allocate = %v, want one GRANTED allocation", res.Msg)
		}
	}
	b.StopTimer()
	slices.Sort(durs)
	b.ReportMetric(float64(percentile(durs, 50).Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(percentile(durs, 99).Nanoseconds()), "p99-ns")
}

// percentile returns the p-th percentile of sorted (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

// BenchmarkLaunchToRunning measures a task's start on dcosd dev: from the
// Launch syscall to the RUNNING event on a Watch, through the kernel, the
// agent, the cgroups isolator and the exec driver plugin (and its
// supervisor's fork/exec). Tasks are `sleep 600`; each allocation is
// revoked after its task runs (outside the timing). Two dcosd dev run
// side by side, one with task isolation on (the default as root: the task
// init, a uid of the owner's, namespaces) and one with it off, and the
// launches alternate between them, so that both see the same load on the
// machine. It reports the median and 99th percentile of each, and the
// median of the paired differences (on minus off, launch i of each).
//
//	go test ./e2e -run '^$' -bench LaunchToRunning -benchtime 200x
func BenchmarkLaunchToRunning(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("task isolation needs root")
	}
	devs := []*launchBench{newLaunchBench(b, "--task-isolation=true"), newLaunchBench(b, "--task-isolation=false")}
	b.ResetTimer()
	for i := range b.N {
		for j := range devs {
			devs[(i+j)%2].once(b) // alternate which goes first
		}
	}
	b.StopTimer()
	on, off := devs[0].durs, devs[1].durs
	diffs := make([]time.Duration, len(on))
	for i := range on {
		diffs[i] = on[i] - off[i]
	}
	for name, d := range map[string]*launchBench{"on": devs[0], "off": devs[1]} {
		b.Logf("isolation %s: first launches %v", name, d.durs[:min(3, len(d.durs))])
		for _, l := range strings.Split(d.dev.stderr.String(), "\n") {
			if strings.Contains(l, d.slowestID+" ") || strings.Contains(l, d.slowestID+"\"") {
				b.Logf("isolation %s: slowest %s (%v): %s", name, d.slowestID, d.slowest, l)
			}
		}
	}
	for _, s := range [][]time.Duration{on, off, diffs} {
		slices.Sort(s)
	}
	b.Logf("slowest launches: on %v, off %v", on[max(0, len(on)-5):], off[max(0, len(off)-5):])
	b.ReportMetric(float64(percentile(on, 50).Nanoseconds()), "on-p50-ns")
	b.ReportMetric(float64(percentile(on, 99).Nanoseconds()), "on-p99-ns")
	b.ReportMetric(float64(percentile(off, 50).Nanoseconds()), "off-p50-ns")
	b.ReportMetric(float64(percentile(off, 99).Nanoseconds()), "off-p99-ns")
	b.ReportMetric(float64(percentile(diffs, 50).Nanoseconds()), "added-p50-ns")
}

// launchBench is one dcosd dev of BenchmarkLaunchToRunning.
type launchBench struct {
	e         *env
	dev       *proc
	c         syscallsv1connect.KernelClient
	w         *watcher
	durs      []time.Duration
	slowest   time.Duration
	slowestID string
}

func newLaunchBench(b *testing.B, flags ...string) *launchBench {
	e := newEnv(b)
	dev := e.startDev(append([]string{"--resources", "cpus=100000,mem=1000Ti"}, flags...)...)
	c := e.op()
	return &launchBench{e: e, dev: dev, c: c, w: e.watch(c, listAgents(b, c).GetRevision())}
}

// once launches one task and times it to RUNNING; the rest is untimed.
func (l *launchBench) once(b *testing.B) {
	b.StopTimer()
	alloc := allocateOne(b, l.c, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}})
	b.StartTimer()
	start := time.Now()
	res, err := l.c.Launch(context.Background(), connect.NewRequest(&pb.LaunchRequest{AllocationId: alloc.GetId(), Command: "sleep", Args: []string{"600"}}))
	if err != nil {
		b.Fatal(err)
	}
	id := res.Msg.GetTask().GetId()
	l.w.waitFor(b, "RUNNING of "+id, taskState(id, pb.TaskState_TASK_STATE_RUNNING))
	l.durs = append(l.durs, time.Since(start))
	if d := l.durs[len(l.durs)-1]; d > l.slowest && len(l.durs) > 1 {
		l.slowest, l.slowestID = d, id
	}
	b.StopTimer()
	revoke(b, l.c, alloc.GetId())
	l.w.waitFor(b, "KILLED of "+id, taskState(id, pb.TaskState_TASK_STATE_KILLED))
	b.StartTimer()
}

// BenchmarkBurst submits n tasks at once on one agent (n allocations,
// then n Launch calls from 8 clients) to `dcosd kernel` + `dcosd agent`,
// and measures the time until all are RUNNING; then, with the n tasks
// running, the proportional set size (PSS) of the agent side: the agent
// process, its plugin processes and the exec driver's supervisor.
//
//	go test ./e2e -run '^$' -bench Burst -benchtime 1x
func BenchmarkBurst(b *testing.B) {
	for _, n := range []int{100, 200} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				burst(b, n)
			}
		})
	}
}

func burst(b *testing.B, n int) {
	e := newEnv(b)
	opTok, agentTok := newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: agentTok, Name: "agents", Role: "agent"},
	)
	e.startKernel(tokens, opTok)
	ag, _ := e.startAgent("burst", agentTok, "--resources", "cpus=100000,mem=1000Ti")
	c := e.op()
	w := e.watch(c, listAgents(b, c).GetRevision())
	res := allocate(b, c, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}, Count: int32(n)})
	allocs := res.GetAllocations()
	b.StartTimer()
	start := time.Now()
	for _, id := range launchAll(b, c, allocs, func(*pb.LaunchRequest) {}) {
		w.waitFor(b, "RUNNING of "+id, taskState(id, pb.TaskState_TASK_STATE_RUNNING))
	}
	b.ReportMetric(time.Since(start).Seconds(), "s-all-running")
	b.StopTimer()
	agent, helpers := pssOfAgentSide(ag.cmd.Process.Pid, e.dir)
	b.ReportMetric(float64(agent+helpers)/1024, "MiB-pss-total")
	b.ReportMetric(float64(agent)/1024, "MiB-pss-agent")
	b.ReportMetric(float64(helpers)/1024, "MiB-pss-plugins+supervisor")
	for _, a := range allocs {
		revoke(b, c, a.GetId())
	}
}

// pss returns pid's proportional set size in KiB.
func pss(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Pss:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// pssOfAgentSide returns, in KiB, the PSS of the agent process and of its
// plugin processes plus the exec driver's supervisor (found by their
// command lines and state dirs inside dir).
func pssOfAgentSide(agent int, dir string) (self, helpers int) {
	self = pss(agent)
	for _, pid := range pidsWithArgUnder(dir) {
		if f := strings.Fields(cmdline(pid)); pid != agent && len(f) >= 2 && (f[1] == "plugin" || f[1] == "supervisor") {
			helpers += pss(pid)
		}
	}
	return self, helpers
}

// BenchmarkBridgeBurst: 200 tasks with their own network (bridge: netns,
// veth, address, one host port each) launched at once on one dcosd dev,
// until all are RUNNING; then all revoked, until every task is KILLED and
// its veth is gone from the bridge. After a clean stop of dcosd nothing of
// the node's network is left (bridge, VXLAN device, nftables table, netns
// mounts), or the benchmark fails.
func BenchmarkBridgeBurst(b *testing.B) {
	for range b.N {
		b.StopTimer()
		bridgeBurst(b, 200)
	}
}

func bridgeBurst(b *testing.B, n int) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: network namespaces")
	}
	e := newEnv(b)
	tok := newToken()
	br := "dcb" + tok[:8]
	b.Cleanup(func() { removeNode(b, br) }) // if dcosd did not remove it
	dev := e.startDev("--resources", "cpus=1000,mem=1000Gi", "--network-driver", "bridge", "--bridge", br,
		"--vxlan-port", strconv.Itoa(20000+int(tok[8])%64*100+int(tok[9])%100), "--cluster-cidr", "10.232.0.0/16",
		"--host-ports", "41000-41999")
	c := e.op()
	w := e.watch(c, listAgents(b, c).GetRevision())
	res := allocate(b, c, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi, Ports: 1}, Count: int32(n)})
	allocs := res.GetAllocations()
	b.StartTimer()
	start := time.Now()
	tasks := launchAll(b, c, allocs, func(r *pb.LaunchRequest) {
		r.Network, r.Ports = "bridge", []*pb.PortRequest{{Name: "http", ContainerPort: 8080}}
	})
	for _, id := range tasks {
		w.waitFor(b, "RUNNING of "+id, taskState(id, pb.TaskState_TASK_STATE_RUNNING))
	}
	b.ReportMetric(time.Since(start).Seconds(), "s-all-running")
	start = time.Now()
	for _, a := range allocs {
		revoke(b, c, a.GetId())
	}
	for _, id := range tasks {
		w.waitFor(b, "KILLED of "+id, taskState(id, pb.TaskState_TASK_STATE_KILLED))
	}
	eventually(b, "no veth left on "+br, func() (bool, string) {
		out, _ := exec.Command("ip", "-o", "link", "show", "master", br).CombinedOutput()
		return strings.TrimSpace(string(out)) == "", string(out)
	})
	b.ReportMetric(time.Since(start).Seconds(), "s-all-torn-down")
	b.StopTimer()
	if !dev.stop(30 * time.Second) {
		b.Fatal("dcosd dev did not stop on SIGTERM")
	}
	for _, l := range nodeNetworkOf(br) {
		b.Errorf("left after dcosd stopped: %s", l)
	}
	if m, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(m), e.dir) {
		b.Errorf("mounts left under %s", e.dir)
	}
}

// launchAll launches `sleep 600` in every allocation, from 8 clients at
// once, with the request adjusted by with, and returns the task ids; a
// failed Launch fails b.
func launchAll(b *testing.B, c syscallsv1connect.KernelClient, allocs []*pb.Allocation, with func(*pb.LaunchRequest)) []string {
	ids := make(chan string, len(allocs))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := i; j < len(allocs); j += 8 {
				req := &pb.LaunchRequest{AllocationId: allocs[j].GetId(), Command: "sleep", Args: []string{"600"}}
				with(req)
				r, err := c.Launch(context.Background(), connect.NewRequest(req))
				if err != nil {
					b.Error(err)
					return
				}
				ids <- r.Msg.GetTask().GetId()
			}
		})
	}
	wg.Wait()
	close(ids)
	var out []string
	for id := range ids {
		out = append(out, id)
	}
	return out
}
