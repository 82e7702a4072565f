package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	dinit "github.com/dcos-kernel/dcos/frameworks/init"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// The end-to-end proof of the distributed init (frameworks/init) on real
// binaries: dcosd kernel, agents and init replicas (or dcosd dev, which
// runs one replica in-process), driven with dcosctl svc.

// Host-port slots of the init tests: 40 ports each from 24000, below
// hostPortRange's 27000-30999 and the default 31000-32000 of other tests'
// agents, one fixed slot per test so that tests running together never
// hand out the same port (host-network tasks share the machine's ports).
const (
	portsFourAgents = iota
	portsRollingUpgrade
)

// initPorts returns the host-port ranges of slot: part i (0 to 3, 10
// ports: one agent's) and all 40.
func initPorts(slot, i int) (part, all string) {
	first := 24000 + slot*40
	return fmt.Sprintf("%d-%d", first+10*i, first+10*i+9), fmt.Sprintf("%d-%d", first, first+39)
}

// webSpec is a host-network HTTP service (python's http.server on its
// allocated port) with an HTTP health check on path, a version env and
// extra YAML lines.
func webSpec(name string, instances int, version, path string, extra ...string) string {
	return fmt.Sprintf(`name: %s
instances: %d
command: sh
args: ["-c", "exec python3 -m http.server --bind 127.0.0.1 $DCOS_PORT_HTTP"]
env: {VERSION: "%s"}
resources: {cpus: 0.3, mem: 64Mi, ports: 1}
ports: [{name: http}]
health: {http: {portName: http, path: %s}, gracePeriod: 5s, interval: 1s, timeout: 900ms, consecutiveFailures: 2}
%s
`, name, instances, version, path, strings.Join(extra, "\n"))
}

// applySvc writes spec to file in the env's dir and applies it with
// dcosctl (ctlArgs go before "svc", e.g. --kernel and --token).
func (e *env) applySvc(file, spec string, ctlArgs ...string) {
	e.t.Helper()
	p := e.path(file)
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.mustCtl(append(ctlArgs, "svc", "apply", "-f", p)...)
}

// svcStatusOut is what `dcosctl svc status NAME -o json` prints.
type svcStatusOut struct {
	Name            string `json:"name"`
	Version         int64  `json:"version"`
	TemplateVersion int64  `json:"templateVersion"`
	Instances       int    `json:"instances"`
	Message         string `json:"message"`
	Running         []struct {
		Instance   int    `json:"instance"`
		Version    int64  `json:"version"`
		Allocation string `json:"allocation"`
		Task       string `json:"task"`
		Agent      string `json:"agent"`
		State      string `json:"state"`
		Health     string `json:"health"`
		Ready      bool   `json:"ready"`
		Why        string `json:"why"`
	} `json:"running"`
	Deployment *dinit.Deployment `json:"deployment"`
}

func (e *env) svcStatus(name string, ctlArgs ...string) svcStatusOut {
	e.t.Helper()
	out := e.mustCtl(append(ctlArgs, "svc", "status", name, "-o", "json")...)
	var s svcStatusOut
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		e.t.Fatalf("svc status %s -o json: %v\n%s", name, err, out)
	}
	return s
}

// svcView is the kernel's view of one service's instances.
type svcView struct {
	allocs []*pb.Allocation
	tasks  []*pb.Task
}

// viewOf lists the allocations and tasks labeled dcos.svc=svc.
func viewOf(c syscallsv1connect.KernelClient, svc string) (svcView, error) {
	cx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ar, err := c.ListAllocations(cx, connect.NewRequest(&pb.ListAllocationsRequest{}))
	if err != nil {
		return svcView{}, err
	}
	tr, err := c.ListTasks(cx, connect.NewRequest(&pb.ListTasksRequest{}))
	if err != nil {
		return svcView{}, err
	}
	var v svcView
	for _, a := range ar.Msg.GetAllocations() {
		if a.GetLabels()[dinit.LabelService] == svc {
			v.allocs = append(v.allocs, a)
		}
	}
	for _, tk := range tr.Msg.GetTasks() {
		if tk.GetLabels()[dinit.LabelService] == svc {
			v.tasks = append(v.tasks, tk)
		}
	}
	return v, nil
}

func (e *env) view(svc string) svcView {
	e.t.Helper()
	v, err := viewOf(e.op(), svc)
	if err != nil {
		e.t.Fatalf("list %s: %v", svc, err)
	}
	for _, tk := range v.tasks {
		e.notePID(tk.GetPid())
	}
	return v
}

// running returns the RUNNING tasks of the view.
func (v svcView) running() []*pb.Task {
	var out []*pb.Task
	for _, tk := range v.tasks {
		if tk.GetState() == pb.TaskState_TASK_STATE_RUNNING {
			out = append(out, tk)
		}
	}
	return out
}

// healthy returns the RUNNING and HEALTHY tasks of the view, on version
// (a dcos.svc.version label) unless it is empty.
func (v svcView) healthy(version string) []*pb.Task {
	var out []*pb.Task
	for _, tk := range v.running() {
		if tk.GetHealth() == pb.HealthState_HEALTH_STATE_HEALTHY && (version == "" || tk.GetLabels()[dinit.LabelVersion] == version) {
			out = append(out, tk)
		}
	}
	return out
}

func (v svcView) String() string {
	var b strings.Builder
	for _, a := range v.allocs {
		fmt.Fprintf(&b, "\n  alloc %s %v on %s labels %v", a.GetId(), a.GetState(), a.GetAgentId(), a.GetLabels())
	}
	for _, tk := range v.tasks {
		fmt.Fprintf(&b, "\n  task %s %v %v pid %d on %s labels %v ready %v %q", tk.GetId(), tk.GetState(), tk.GetHealth(), tk.GetPid(), tk.GetAgentId(), tk.GetLabels(), tk.GetReady(), tk.GetHealthMessage())
	}
	return b.String()
}

// agentsOf returns the distinct agents of tasks.
func agentsOf(tasks []*pb.Task) []string {
	var out []string
	for _, tk := range tasks {
		if !slices.Contains(out, tk.GetAgentId()) {
			out = append(out, tk.GetAgentId())
		}
	}
	slices.Sort(out)
	return out
}

// hostPort returns the host port named http of a task.
func hostPort(tk *pb.Task) uint32 {
	for _, p := range tk.GetPorts() {
		if p.GetName() == "http" {
			return p.GetHostPort()
		}
	}
	return 0
}

// sampler calls sample every 50ms in the background until stopped, as an
// operator of the env's kernel (asked anew each time: a restarted dcosd
// dev has a new URL), and collects the problems sample reports.
type sampler struct {
	stopc chan struct{}
	done  chan struct{}

	mu       sync.Mutex
	problems []string
	n        int // samples taken (sample returned without a call error)
}

func (e *env) startSampler(sample func(c syscallsv1connect.KernelClient) (problem string, err error)) *sampler {
	s := &sampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			p, err := sample(e.op())
			s.mu.Lock()
			if err == nil {
				s.n++
				if p != "" && len(s.problems) < 20 {
					s.problems = append(s.problems, p)
				}
			}
			s.mu.Unlock()
			select {
			case <-s.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	e.t.Cleanup(s.stop)
	return s
}

func (s *sampler) stop() {
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	<-s.done
}

// check stops the sampler and fails t with every problem it saw.
func (s *sampler) check(t testing.TB, what string) {
	t.Helper()
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		t.Errorf("%s: the sampler never got an answer", what)
	}
	for _, p := range s.problems {
		t.Errorf("%s: %s", what, p)
	}
	t.Logf("%s: %d samples", what, s.n)
}

// maxInstances is a sample that reports more than max allocations of svc.
func maxInstances(svc string, max int) func(c syscallsv1connect.KernelClient) (string, error) {
	return func(c syscallsv1connect.KernelClient) (string, error) {
		v, err := viewOf(c, svc)
		if err != nil {
			return "", err
		}
		if len(v.allocs) > max {
			return fmt.Sprintf("%d instances (allocations), want at most %d:%s", len(v.allocs), max, v), nil
		}
		return "", nil
	}
}

// readyBetween is a sample that reports more than max allocations of svc
// or fewer than min of its tasks RUNNING and ready.
func readyBetween(svc string, min, max int) func(c syscallsv1connect.KernelClient) (string, error) {
	return func(c syscallsv1connect.KernelClient) (string, error) {
		v, err := viewOf(c, svc)
		if err != nil {
			return "", err
		}
		ready := 0
		for _, tk := range v.running() {
			if tk.GetReady() {
				ready++
			}
		}
		if len(v.allocs) > max || ready < min {
			return fmt.Sprintf("%d instances (allocations) and %d ready, want at most %d and at least %d:%s", len(v.allocs), ready, max, min, v), nil
		}
		return "", nil
	}
}

// TestInit_KernelAndFourAgents: dcosd kernel, four agents and one dcosd
// init; a 3-instance HTTP service with UNIQUE dcos.agent runs HEALTHY on 3
// agents; a killed instance is replaced; a killed agent's instance moves to
// the fourth agent, and when the agent comes back its stale instance is
// stopped, leaving exactly 3.
func TestInit_KernelAndFourAgents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opTok, initTok := newToken(), newToken()
	entries := []tokenEntry{{Token: opTok, Name: "ops", Role: "operator"}, {Token: initTok, Name: "init", Role: "framework"}}
	agentToks := make([]string, 4)
	for i := range agentToks {
		agentToks[i] = newToken()
		entries = append(entries, tokenEntry{Token: agentToks[i], Name: fmt.Sprintf("agent-%d", i), Role: "agent"})
	}
	e.startKernel(e.writeTokens(e.path("tokens.json"), entries...), opTok, "--heartbeat-timeout", "3s", "--heartbeat-interval", "200ms")
	agents := make([]*proc, 4)
	ids := make([]string, 4)
	agentArgs := func(i int) []string {
		part, _ := initPorts(portsFourAgents, i)
		return []string{"--resources", "cpus=1,mem=1Gi", "--host-ports", part}
	}
	for i := range agents {
		agents[i], ids[i] = e.startAgent(fmt.Sprintf("n%d", i), agentToks[i], agentArgs(i)...)
	}
	e.startInit("0", initTok)
	ctlArgs := []string{"--kernel", e.url, "--token", opTok}
	e.applySvc("web.yaml", webSpec("web", 3, "1", "/", "constraints: [{label: dcos.agent, op: UNIQUE}]"), ctlArgs...)

	// want3 waits for 3 RUNNING HEALTHY instances on 3 distinct agents,
	// none on an agent or with a task id of avoid, and returns them.
	want3 := func(what string, avoid ...string) []*pb.Task {
		t.Helper()
		var got []*pb.Task
		e.eventually(what, func() (bool, string) {
			v := e.view("web")
			h := v.healthy("")
			ags := agentsOf(h)
			for _, a := range avoid {
				if slices.Contains(ags, a) || slices.ContainsFunc(v.running(), func(tk *pb.Task) bool { return tk.GetId() == a }) {
					return false, a + " still has an instance:" + v.String()
				}
			}
			if len(h) != 3 || len(ags) != 3 || len(v.allocs) != 3 || len(v.running()) != 3 {
				return false, v.String()
			}
			got = h
			return true, ""
		})
		return got
	}
	first := want3("3 HEALTHY instances on 3 agents")
	st := e.svcStatus("web", ctlArgs...)
	if len(st.Running) != 3 || st.Instances != 3 {
		t.Fatalf("svc status web: %+v, want 3 instances", st)
	}
	for _, r := range st.Running {
		if r.State != "RUNNING" || r.Health != "HEALTHY" || !r.Ready || r.Agent == "" {
			t.Errorf("svc status web: instance %+v, want RUNNING, HEALTHY, ready, on an agent", r)
		}
	}
	for _, tk := range first {
		if tk.GetLabels()[dinit.LabelService] != "web" || tk.GetOwner() != "init" {
			t.Errorf("task %s: labels %v owner %q, want dcos.svc=web owned by init", tk.GetId(), tk.GetLabels(), tk.GetOwner())
		}
	}

	// SIGKILL one instance's processes (its task's process group: the
	// shell exec'ed python, but the task's pid may be a task init).
	victim := first[0]
	syscall.Kill(-int(victim.GetPid()), syscall.SIGKILL)
	eventually(t, "the killed instance's processes gone", func() (bool, string) {
		m := groupMembers(int(victim.GetPid()))
		return len(m) == 0, "members " + sprint(m)
	})
	// Its agent reports the task ended (it may still be listed RUNNING
	// until then), and the init replaces it.
	second := want3("a replacement of the killed instance HEALTHY, 3 in all", victim.GetId())

	// SIGKILL one agent's dcosd: its task keeps running; once the agent
	// is LOST its instance is placed on the fourth agent.
	lostTask := second[0]
	lost := slices.Index(ids, lostTask.GetAgentId())
	if lost < 0 {
		t.Fatalf("task %s on unknown agent %s (agents %v)", lostTask.GetId(), lostTask.GetAgentId(), ids)
	}
	agents[lost].kill()
	if !alive(int(lostTask.GetPid())) {
		t.Fatalf("task pid %d died with its agent", lostTask.GetPid())
	}
	third := want3("the lost agent's instance rescheduled on the fourth agent", ids[lost])
	up := map[string]bool{}
	for _, a := range listAgents(t, e.op()).GetAgents() {
		up[a.GetId()] = a.GetState() == pb.AgentState_AGENT_STATE_UP
	}
	for _, a := range agentsOf(third) {
		if !up[a] {
			t.Errorf("an instance runs on agent %s, which is not UP", a)
		}
	}
	if !alive(int(lostTask.GetPid())) {
		t.Fatalf("stale task pid %d died before its agent came back", lostTask.GetPid())
	}

	// The agent comes back (same name and data dir): it stops its stale
	// instance; the service has exactly 3.
	_, again := e.startAgent(fmt.Sprintf("n%d", lost), agentToks[lost], agentArgs(lost)...)
	if again != ids[lost] {
		t.Errorf("restarted agent is %s, want %s", again, ids[lost])
	}
	eventually(t, "the stale instance's process stopped by its returning agent", func() (bool, string) {
		return !alive(int(lostTask.GetPid())) && len(groupMembers(int(lostTask.GetPid()))) == 0, "alive"
	})
	final := want3("exactly 3 instances after the agent's return", ids[lost])
	for _, tk := range final {
		if !slices.ContainsFunc(third, func(o *pb.Task) bool { return o.GetId() == tk.GetId() }) {
			t.Errorf("instance %s changed after the agent's return (want the 3 of before)", tk.GetId())
		}
	}
	st = e.svcStatus("web", ctlArgs...)
	healthy := 0
	for _, r := range st.Running {
		if r.State == "RUNNING" && r.Health == "HEALTHY" && r.Agent != ids[lost] {
			healthy++
		}
	}
	if len(st.Running) != 3 || healthy != 3 {
		t.Errorf("svc status web after the agent's return: %+v, want exactly 3 instances, HEALTHY, none on %s", st.Running, ids[lost])
	}
}

// prober GETs every RUNNING instance of svc on its host port and reports
// a sample with fewer than minOK answering 200 or more than maxAllocs
// allocations.
func prober(svc string, minOK, maxAllocs int) func(c syscallsv1connect.KernelClient) (string, error) {
	// 2 s: a server under its 0.3-cpu quota on a machine the race-enabled
	// suite keeps busy can take more than 1 s to answer.
	hc := &http.Client{Timeout: 2 * time.Second}
	return func(c syscallsv1connect.KernelClient) (string, error) {
		v, err := viewOf(c, svc)
		if err != nil {
			return "", err
		}
		run := v.running()
		var wg sync.WaitGroup
		ok := make([]bool, len(run))
		for i, tk := range run {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/", hostPort(tk)))
				if err == nil {
					res.Body.Close()
					ok[i] = res.StatusCode == http.StatusOK
				}
			}()
		}
		wg.Wait()
		var p []string
		if n := len(slices.DeleteFunc(ok, func(b bool) bool { return !b })); n < minOK {
			p = append(p, fmt.Sprintf("%d instances answer 200, want at least %d", n, minOK))
		}
		if len(v.allocs) > maxAllocs {
			p = append(p, fmt.Sprintf("%d instances (allocations), want at most %d", len(v.allocs), maxAllocs))
		}
		if len(p) > 0 {
			return strings.Join(p, "; ") + ":" + v.String(), nil
		}
		return "", nil
	}
}

// waitDeployment waits until svc's deployment of spec version ver (0: any)
// has status want, and returns svc status.
func (e *env) waitDeployment(svc string, ver int64, want string, ctlArgs ...string) svcStatusOut {
	e.t.Helper()
	var st svcStatusOut
	e.eventually(fmt.Sprintf("deployment of %s version %d %s", svc, ver, want), func() (bool, string) {
		st = e.svcStatus(svc, ctlArgs...)
		d := st.Deployment
		if d == nil || (ver != 0 && d.SpecVersion != ver) || d.Status != want {
			return false, sprint(d)
		}
		return true, ""
	})
	e.t.Logf("%s: version %d template %d deployment %+v", svc, st.Version, st.TemplateVersion, *st.Deployment)
	return st
}

// TestInit_RollingUpgrade: on dcosd dev, 5 HTTP instances with
// upgradeStrategy 0.6/0.2 are upgraded while a prober checks every 50ms
// that at least 3 answer 200 and at most 6 exist; a version whose health
// check fails stops its deployment with the check's message, leaving the
// old instances serving; rollback restores the old version.
func TestInit_RollingUpgrade(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, ports := initPorts(portsRollingUpgrade, 0)
	e.startDev("--resources", "cpus=2,mem=2Gi", "--host-ports", ports)
	strategy := "upgradeStrategy: {minimumHealthCapacity: 0.6, maximumOverCapacity: 0.2}"
	e.applySvc("web1.yaml", webSpec("web", 5, "1", "/", strategy))
	st := e.waitDeployment("web", 0, dinit.DeploymentSucceeded)
	e.eventually("5 HEALTHY instances of version 1", func() (bool, string) {
		v := e.view("web")
		return len(v.healthy("")) == 5, v.String()
	})

	probe := e.startSampler(prober("web", 3, 6))
	e.applySvc("web2.yaml", webSpec("web", 5, "2", "/", strategy))
	st = e.waitDeployment("web", st.Version+1, dinit.DeploymentSucceeded)
	v2 := strconv.FormatInt(st.TemplateVersion, 10)
	e.eventually("5 HEALTHY instances of version 2", func() (bool, string) {
		v := e.view("web")
		return len(v.healthy(v2)) == 5 && len(v.allocs) == 5, v.String()
	})
	for _, tk := range e.view("web").running() {
		if tk.GetEnv()["VERSION"] != "2" {
			t.Errorf("task %s env %v, want VERSION=2", tk.GetId(), tk.GetEnv())
		}
	}

	// Version 3's health check fails (404): its deployment stops with the
	// check's message, and at least 3 instances of version 2 keep serving.
	e.applySvc("web3.yaml", webSpec("web", 5, "3", "/missing", strategy))
	st = e.waitDeployment("web", st.Version+1, dinit.DeploymentFailed)
	if !strings.Contains(st.Deployment.Reason, "404") {
		t.Errorf("failed deployment's reason %q, want the check's message (status 404)", st.Deployment.Reason)
	}
	e.eventually("at least 3 version-2 instances HEALTHY and none of version 3", func() (bool, string) {
		v := e.view("web")
		for _, a := range v.allocs {
			if a.GetLabels()[dinit.LabelVersion] != v2 {
				return false, v.String()
			}
		}
		return len(v.healthy(v2)) >= 3, v.String()
	})

	// Rollback: version 2's template again, 5 HEALTHY instances of it.
	e.mustCtl("svc", "rollback", "web")
	st = e.waitDeployment("web", st.Version+1, dinit.DeploymentSucceeded)
	if got := strconv.FormatInt(st.TemplateVersion, 10); got != v2 {
		t.Errorf("after rollback the template version is %s, want version 2's %s", got, v2)
	}
	e.eventually("5 HEALTHY instances of version 2 after rollback", func() (bool, string) {
		v := e.view("web")
		return len(v.healthy(v2)) == 5 && len(v.allocs) == 5, v.String()
	})
	probe.check(t, "prober")
}

// TestInit_CrashLoopBackoff: on dcosd dev, a service whose command exits
// at once is relaunched on the init's backoff schedule: its status shows
// later and later "delayed until" times, and the launches in a window
// match dinit.DefaultBackoff.Schedule within one. The issue asks for 60s;
// 20s (11 launches) keeps the suite short and shows the same curve.
func TestInit_CrashLoopBackoff(t *testing.T) {
	t.Parallel()
	const window = 20 * time.Second
	e := newEnv(t)
	e.startDev("--resources", "cpus=2,mem=1Gi")
	op := e.op()
	w := e.watch(op, listAgents(t, op).GetRevision())
	e.applySvc("crash.yaml", `name: crash
command: sh
args: ["-c", "exit 1"]
resources: {cpus: 0.1, mem: 16Mi}
`)
	isCrash := func(ev *pb.Event) bool {
		return ev.GetKind() == pb.EventKind_EVENT_KIND_TASK_STATE && ev.GetTask().GetLabels()[dinit.LabelService] == "crash"
	}
	w.waitFor(t, "the first task of crash", isCrash)
	start := time.Now()

	// Sample the init's status of the service: the precise delayedUntil
	// from its state (status/crash), and what svc status shows of it.
	type delay struct {
		failures int
		until    time.Time
	}
	var delays []delay
	format := func(ds []delay) string {
		var b strings.Builder
		for _, d := range ds {
			fmt.Fprintf(&b, " %d:%s", d.failures, d.until.Format("15:04:05.000"))
		}
		return b.String()
	}
	shown := 0
	for time.Since(start) < window {
		res, err := op.StateGet(ctx(t), connect.NewRequest(&pb.StateGetRequest{Key: dinit.StatusKey("crash"), Owner: "init"}))
		if err == nil {
			var s dinit.Status
			if err := json.Unmarshal(res.Msg.GetEntry().GetValue(), &s); err != nil {
				t.Fatalf("status/crash: %v", err)
			}
			if is := s.Instances["0"]; is != nil && !is.DelayedUntil.IsZero() {
				if n := len(delays); n == 0 || delays[n-1].failures != is.Failures || !delays[n-1].until.Equal(is.DelayedUntil) {
					delays = append(delays, delay{is.Failures, is.DelayedUntil})
				}
			}
		} else if connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("StateGet status/crash: %v", err)
		}
		for _, r := range e.svcStatus("crash").Running {
			if strings.Contains(r.Why, "delayed until") {
				shown++
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	launched := map[string]bool{}
	ended := map[string]*pb.Task{} // by task id: its FAILED event's task
	for _, ev := range w.snapshot() {
		if isCrash(ev) {
			launched[ev.GetTask().GetId()] = true
			if ev.GetTask().GetState() == pb.TaskState_TASK_STATE_FAILED {
				ended[ev.GetTask().GetId()] = ev.GetTask()
			}
		}
	}
	e.mustCtl("svc", "rm", "crash")

	// Launches follow the schedule: launch k+1 comes Delay(k) after
	// failure k, give or take the init's reaction (at most reactSlack),
	// never sooner. The count then follows Schedule, stretched by the
	// time the tasks themselves took to start and fail (on a loaded
	// machine a few hundred ms each): never more launches than the
	// schedule's, never fewer than the schedule of the window less
	// that time.
	const reactSlack = time.Second
	var runs []*pb.Task
	for _, tk := range ended {
		runs = append(runs, tk)
	}
	slices.SortFunc(runs, func(a, b *pb.Task) int { return a.GetCreated().AsTime().Compare(b.GetCreated().AsTime()) })
	var lifetimes time.Duration
	for i, tk := range runs {
		lifetimes += tk.GetUpdated().AsTime().Sub(tk.GetCreated().AsTime())
		if i == 0 {
			continue
		}
		prev := runs[i-1]
		gap := tk.GetCreated().AsTime().Sub(prev.GetUpdated().AsTime())
		if want := dinit.DefaultBackoff.Delay(i); gap < want || gap > want+reactSlack {
			t.Errorf("launch %d came %v after failure %d, want Delay(%d) = %v (+ up to %v)", i+1, gap, i, i, want, reactSlack)
		}
	}
	want := len(dinit.DefaultBackoff.Schedule(window))
	least := len(dinit.DefaultBackoff.Schedule(window - lifetimes))
	t.Logf("%d launches in %v (schedule: %d; %d with the tasks' own %v); failure:delayed until%s", len(launched), window, want, least, lifetimes, format(delays))
	if n := len(launched); n > want+1 || n < least-1 {
		t.Errorf("%d launches in %v, want between %d and %d (dinit.DefaultBackoff.Schedule of %v and of %v)", n, window, least-1, want+1, window, window-lifetimes)
	}
	if len(delays) < want/2 {
		t.Errorf("saw %d distinct delays in status/crash, want at least %d:%s", len(delays), want/2, format(delays))
	}
	if shown == 0 {
		t.Errorf("svc status crash never showed \"delayed until\"")
	}
	// Each failure k+1 happens after the launch that delay k allowed, so
	// its delayedUntil is at least Delay(k+1) after the previous one.
	for i := 1; i < len(delays); i++ {
		p, c := delays[i-1], delays[i]
		if c.failures <= p.failures {
			t.Errorf("failures went from %d to %d", p.failures, c.failures)
			continue
		}
		if gap, min := c.until.Sub(p.until), dinit.DefaultBackoff.Delay(c.failures); c.failures == p.failures+1 && gap < min {
			t.Errorf("delayed until %v after failure %d, only %v after failure %d's %v: want at least Delay(%d) = %v",
				c.until, c.failures, gap, p.failures, p.until, c.failures, min)
		}
	}
}

// slowSpec is a service whose instances turn ready 3s after they start
// (a readiness command checks for the file the task creates).
func slowSpec(version string) string {
	return fmt.Sprintf(`name: slow
instances: 5
command: sh
args: ["-c", "sleep 3; touch ready; exec sleep 600"]
env: {VERSION: "%s"}
resources: {cpus: 0.1, mem: 16Mi}
readiness: {command: {command: /bin/sh, args: ["-c", "test -f ready"]}, interval: 200ms}
upgradeStrategy: {minimumHealthCapacity: 0.6, maximumOverCapacity: 0.2}
`, version)
}

// midDeployment applies version 2 of slow (version 1 deployed) and
// returns, once 3 new instances run (the first step) and while the
// deployment still runs (they are not ready yet), the spec version, the
// template version and every RUNNING task of the service.
func (e *env) midDeployment(ctlArgs ...string) (ver int64, tmpl string, before []*pb.Task) {
	e.t.Helper()
	st := e.waitDeployment("slow", 0, dinit.DeploymentSucceeded, ctlArgs...)
	e.eventually("5 ready instances of version 1", func() (bool, string) {
		v := e.view("slow")
		n := 0
		for _, tk := range v.running() {
			if tk.GetReady() {
				n++
			}
		}
		return n == 5, v.String()
	})
	e.applySvc("slow2.yaml", slowSpec("2"), ctlArgs...)
	tmpl = strconv.FormatInt(st.Version+1, 10)
	e.eventually("3 instances of version 2 running", func() (bool, string) {
		v := e.view("slow")
		before = v.running()
		n := 0
		for _, tk := range before {
			if tk.GetLabels()[dinit.LabelVersion] == tmpl {
				n++
			}
		}
		return n >= 3, v.String()
	})
	if d := e.svcStatus("slow", ctlArgs...).Deployment; d == nil || d.SpecVersion != st.Version+1 || d.Status != dinit.DeploymentRunning {
		e.t.Fatalf("deployment %+v, want version %d running (its new instances are not ready for 3s)", d, st.Version+1)
	}
	return st.Version + 1, tmpl, before
}

// finishes waits for the deployment of version ver to succeed with 5
// ready instances of tmpl, and checks what became of the tasks that ran
// before the failover: those of tmpl still run (a new instance is never
// killed by a failover), old ones ended only by the deployment's plan.
func (e *env) finishes(ver int64, tmpl string, before []*pb.Task, ctlArgs ...string) {
	e.t.Helper()
	e.waitDeployment("slow", ver, dinit.DeploymentSucceeded, ctlArgs...)
	var v svcView
	e.eventually("5 ready instances of version 2", func() (bool, string) {
		v = e.view("slow")
		n := 0
		for _, tk := range v.running() {
			if tk.GetReady() && tk.GetLabels()[dinit.LabelVersion] == tmpl {
				n++
			}
		}
		return n == 5 && len(v.allocs) == 5, v.String()
	})
	for _, b := range before {
		i := slices.IndexFunc(v.tasks, func(tk *pb.Task) bool { return tk.GetId() == b.GetId() })
		if b.GetLabels()[dinit.LabelVersion] == tmpl {
			if i < 0 || v.tasks[i].GetState() != pb.TaskState_TASK_STATE_RUNNING || !alive(int(b.GetPid())) {
				e.t.Errorf("new-version task %s (pid %d), RUNNING before the failover, is gone or not RUNNING after it:%s", b.GetId(), b.GetPid(), v)
			}
			continue
		}
		// An old one: the plan replaces it. The kernel remembers ended
		// tasks in memory only (a restarted kernel does not list them).
		switch {
		case i < 0:
			e.t.Logf("old task %s: no longer listed", b.GetId())
		case v.tasks[i].GetState() == pb.TaskState_TASK_STATE_RUNNING:
			e.t.Errorf("old task %s still RUNNING after the deployment succeeded", b.GetId())
		case !strings.Contains(v.tasks[i].GetReason(), "replaced by version"):
			e.t.Errorf("old task %s ended %v (%q), want killed by the plan (\"replaced by version\")", b.GetId(), v.tasks[i].GetState(), v.tasks[i].GetReason())
		}
	}
}

// TestInit_Failover: a deployment survives the loss of its init. (a) On
// dcosd dev, dev is SIGKILLed mid-deployment and started again; (b) with
// dcosd kernel, two agents and two dcosd init replicas, the leading
// replica is SIGKILLed and the other takes over. Either way a sampler
// never sees more than 5 + 1 instances, no new-version task is killed,
// and the deployment succeeds; (b) then shows the deposed leader's fence
// refused.
func TestInit_Failover(t *testing.T) {
	t.Parallel()
	t.Run("dev", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		devArgs := []string{"--resources", "cpus=2,mem=1Gi", "--init-ttl", "2s"}
		dev := e.startDev(devArgs...)
		e.applySvc("slow1.yaml", slowSpec("1"))
		s := e.startSampler(maxInstances("slow", 6))
		ver, tmpl, before := e.midDeployment()
		dev.kill()
		e.startDev(devArgs...)
		e.finishes(ver, tmpl, before)
		s.check(t, "sampler")
	})
	t.Run("replicas", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		opTok, initTok, ag0, ag1 := newToken(), newToken(), newToken(), newToken()
		e.startKernel(e.writeTokens(e.path("tokens.json"),
			tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
			tokenEntry{Token: initTok, Name: "init", Role: "framework"},
			tokenEntry{Token: ag0, Name: "agent-0", Role: "agent"},
			tokenEntry{Token: ag1, Name: "agent-1", Role: "agent"},
		), opTok)
		e.startAgent("n0", ag0, "--resources", "cpus=1,mem=1Gi")
		e.startAgent("n1", ag1, "--resources", "cpus=1,mem=1Gi")
		inits := map[string]*proc{
			"a": e.startInit("a", initTok, "--init-candidate", "a", "--init-ttl", "2s"),
			"b": e.startInit("b", initTok, "--init-candidate", "b", "--init-ttl", "2s"),
		}
		leader := func() *pb.Leadership {
			res, err := e.op().Leader(ctx(t), connect.NewRequest(&pb.LeaderRequest{Owner: "init"}))
			if err != nil {
				t.Fatalf("Leader(owner init): %v", err)
			}
			return res.Msg.GetLeader()
		}
		var old *pb.Leadership
		e.eventually("an init replica leads", func() (bool, string) {
			old = leader()
			return inits[old.GetHolder()] != nil, sprint(old)
		})
		ctlArgs := []string{"--kernel", e.url, "--token", opTok}
		e.applySvc("slow1.yaml", slowSpec("1"), ctlArgs...)
		ver0 := e.waitDeployment("slow", 0, dinit.DeploymentSucceeded, ctlArgs...)
		e.eventually("5 ready instances of version 1", func() (bool, string) {
			p, err := readyBetween("slow", 5, 5)(e.op())
			return err == nil && p == "", p
		})
		// The kernel keeps running here, so ready flags never reset: the
		// sampler also checks minimumHealthCapacity (3 of 5 ready).
		s := e.startSampler(readyBetween("slow", 3, 6))
		ver, tmpl, before := e.midDeployment(ctlArgs...)
		if ver != ver0.Version+1 {
			t.Fatalf("deploying version %d, want %d", ver, ver0.Version+1)
		}
		if l := leader(); l.GetHolder() != old.GetHolder() || l.GetEpoch() != old.GetEpoch() {
			t.Fatalf("leadership changed during the deployment: %v, was %v", l, old)
		}
		inits[old.GetHolder()].kill()
		other := map[string]string{"a": "b", "b": "a"}[old.GetHolder()]
		e.eventually("replica "+other+" leads with a higher epoch", func() (bool, string) {
			l := leader()
			return l.GetHolder() == other && l.GetEpoch() > old.GetEpoch(), sprint(l)
		})
		e.finishes(ver, tmpl, before, ctlArgs...)
		s.check(t, "sampler")

		// The deposed leader's fence is refused.
		v := e.view("slow")
		_, err := e.client(initTok).Launch(ctx(t), connect.NewRequest(&pb.LaunchRequest{
			AllocationId: v.allocs[0].GetId(), Command: "true",
			Fence: &pb.Fence{Election: old.GetElection(), Epoch: old.GetEpoch()},
		}))
		if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "deposed") {
			t.Errorf("Launch with the old leader's fence (epoch %d): %v, want FailedPrecondition saying deposed", old.GetEpoch(), err)
		}
	})
}
