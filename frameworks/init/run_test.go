package dinit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/framework"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

const (
	initToken = "init-token-0123456789abcdef"
	opToken   = "operator-token-0123456789ab"
)

// agentToken is agent i's token: a token registers one agent only.
func agentToken(i int) string { return fmt.Sprintf("agent-token-%d-0123456789abcd", i) }

// cluster is a real kernel on an embedded etcd behind the API door, with
// agents faked through the agent syscalls (the real agent needs root).
type cluster struct {
	t   testing.TB
	url string
	op  *framework.Client
	// srv is the kernel, its store and etcd's directory.
	srv *kerneltest.Server

	mu     sync.Mutex
	agents map[string]*fakeAgent
	// quiet drops the replicas' logs (benchmarks).
	quiet bool
	// readyAfter is how long "slow" tasks take to turn ready.
	readyAfter time.Duration
}

func startCluster(t testing.TB, heartbeatTimeout time.Duration) *cluster {
	t.Helper()
	entries := []api.TokenEntry{
		{Token: initToken, Name: "init", Role: "framework"},
		{Token: opToken, Name: "ops", Role: "operator"},
	}
	for i := range 4 {
		entries = append(entries, api.TokenEntry{Token: agentToken(i), Name: fmt.Sprintf("agent-%d", i), Role: "agent"})
	}
	srv := kerneltest.Start(t, kerneltest.Options{
		Tokens: entries,
		Kernel: func(c *kernel.Config) {
			c.HeartbeatTimeout, c.Tick = heartbeatTimeout, 20*time.Millisecond
			c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		},
		// The init is unlimited, as dcosd dev runs it (--rate-limit
		// framework:init=unlimited); everyone else has the defaults.
		API: func(c *api.Config) {
			c.PrincipalRateLimits = map[kernel.Principal]api.RateLimit{{Name: "init", Role: kernel.RoleFramework}: {}}
		},
	})
	c := &cluster{t: t, url: srv.URL, srv: srv, agents: map[string]*fakeAgent{}}
	c.op = c.client(opToken)
	if _, err := c.op.StateList(context.Background(), &pb.StateListRequest{Owner: "init"}); framework.Code(err) == connect.CodeUnimplemented {
		t.Skipf("kernel does not serve framework state yet: %v", err)
	}
	return c
}

func (c *cluster) client(token string) *framework.Client {
	c.t.Helper()
	cl, err := framework.New(framework.Config{Endpoints: []string{c.url}, Token: token, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		c.t.Fatal(err)
	}
	return cl
}

// fakeAgent registers a node, heartbeats, and reports the tasks launched
// on it RUNNING and ready, as a real agent whose checks pass would.
type fakeAgent struct {
	id     string
	client *framework.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *cluster) addAgent(ctx context.Context, i int) *fakeAgent {
	c.t.Helper()
	name := fmt.Sprintf("node-%d", i)
	cl := c.client(agentToken(i))
	r, err := cl.RegisterAgent(ctx, &pb.RegisterAgentRequest{Hostname: name, Labels: map[string]string{"node": name},
		Resources: &pb.Resources{Cpus: 8, MemBytes: 8 << 30, DiskBytes: 1 << 40}})
	if err != nil {
		c.t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	a := &fakeAgent{id: r.GetAgentId(), client: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for actx.Err() == nil {
			cl.Heartbeat(actx, &pb.HeartbeatRequest{AgentId: a.id})
			l, err := cl.ListTasks(actx, &pb.ListTasksRequest{AgentId: a.id})
			for _, tk := range l.GetTasks() {
				if err != nil {
					break
				}
				ready := func() {
					cl.ReportTaskStatus(actx, &pb.ReportTaskStatusRequest{TaskId: tk.GetId(), AgentId: a.id, State: pb.TaskState_TASK_STATE_RUNNING,
						Health: &pb.TaskHealthReport{Health: pb.HealthState_HEALTH_STATE_HEALTHY, Ready: true}})
				}
				if tk.GetState() == pb.TaskState_TASK_STATE_RUNNING {
					// A slow starter turns ready readyAfter after its start.
					if !tk.GetReady() && tk.GetArgs()[0] == "slow" && time.Since(tk.GetCreated().AsTime()) >= c.readyAfter {
						ready()
					}
					continue
				}
				if tk.GetState() > pb.TaskState_TASK_STATE_RUNNING {
					continue
				}
				// What the task does is in its first argument: "crash"
				// exits 1 at once, "unhealthy" fails its health check,
				// "slow" turns ready after readyAfter.
				switch tk.GetArgs()[0] {
				case "crash":
					cl.ReportTaskStatus(actx, &pb.ReportTaskStatusRequest{TaskId: tk.GetId(), AgentId: a.id, State: pb.TaskState_TASK_STATE_FAILED,
						ExitCode: 1, Reason: "exit code 1"})
				case "unhealthy":
					cl.ReportTaskStatus(actx, &pb.ReportTaskStatusRequest{TaskId: tk.GetId(), AgentId: a.id, State: pb.TaskState_TASK_STATE_RUNNING, Pid: 100})
					cl.ReportTaskStatus(actx, &pb.ReportTaskStatusRequest{TaskId: tk.GetId(), AgentId: a.id, State: pb.TaskState_TASK_STATE_RUNNING,
						Health: &pb.TaskHealthReport{Health: pb.HealthState_HEALTH_STATE_UNHEALTHY, Message: "GET /health: status 503"}})
				case "slow":
					cl.ReportTaskStatus(actx, &pb.ReportTaskStatusRequest{TaskId: tk.GetId(), AgentId: a.id, State: pb.TaskState_TASK_STATE_RUNNING, Pid: 100})
				default:
					cl.ReportTaskStatus(actx, &pb.ReportTaskStatusRequest{TaskId: tk.GetId(), AgentId: a.id, State: pb.TaskState_TASK_STATE_RUNNING, Pid: 100})
					ready()
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	c.mu.Lock()
	c.agents[a.id] = a
	c.mu.Unlock()
	return a
}

// stop ends the agent's heartbeats and reports (its tasks "keep running",
// as on a host cut off from the kernel).
func (a *fakeAgent) stop() { a.cancel(); <-a.done }

// apply stores spec as the next version, as dcosctl svc apply does.
func (c *cluster) apply(ctx context.Context, yaml string, restart bool) *Record {
	c.t.Helper()
	svcs, err := Parse([]byte(yaml))
	if err != nil {
		c.t.Fatal(err)
	}
	s := svcs[0]
	var cur *Record
	rev := int64(0)
	if res, err := c.op.StateGet(ctx, &pb.StateGetRequest{Key: SpecKey(s.Name), Owner: "init"}); err == nil {
		cur = &Record{}
		if err := json.Unmarshal(res.GetEntry().GetValue(), cur); err != nil {
			c.t.Fatal(err)
		}
		cur.Spec.Default()
		rev = res.GetEntry().GetRevision()
	}
	next := Next(cur, s, "apply", restart, time.Now())
	for _, key := range []string{SpecKey(s.Name), HistoryKey(s.Name, next.Version)} {
		b, _ := json.Marshal(next)
		req := &pb.StatePutRequest{Key: key, Value: b, Owner: "init", Secret: next.Spec.HasSecrets()}
		if key == SpecKey(s.Name) {
			req.ExpectedRevision = &rev
		}
		if _, err := c.op.StatePut(ctx, req); err != nil {
			c.t.Fatal(err)
		}
	}
	return next
}

// view is the service's live instances as the kernel lists them.
type view struct {
	allocs  []*pb.Allocation
	running map[string]*pb.Task // by allocation
	ready   int
}

func (c *cluster) view(ctx context.Context, name string) view {
	c.t.Helper()
	ar, err := c.op.ListAllocations(ctx, &pb.ListAllocationsRequest{})
	if err != nil {
		c.t.Fatal(err)
	}
	tr, err := c.op.ListTasks(ctx, &pb.ListTasksRequest{})
	if err != nil {
		c.t.Fatal(err)
	}
	v := view{running: map[string]*pb.Task{}}
	for _, a := range ar.GetAllocations() {
		if a.GetLabels()[LabelService] == name {
			v.allocs = append(v.allocs, a)
		}
	}
	for _, tk := range tr.GetTasks() {
		if tk.GetLabels()[LabelService] == name && tk.GetState() == pb.TaskState_TASK_STATE_RUNNING {
			v.running[tk.GetAllocationId()] = tk
			if tk.GetReady() {
				v.ready++
			}
		}
	}
	return v
}

func (v view) versions() string {
	var out []string
	for _, a := range v.allocs {
		out = append(out, a.GetLabels()[LabelVersion])
	}
	sort.Strings(out)
	return fmt.Sprint(out)
}

func (c *cluster) deployment(ctx context.Context, name string) *Deployment {
	res, err := c.op.StateGet(ctx, &pb.StateGetRequest{Key: DeploymentKey(name), Owner: "init"})
	if err != nil {
		return nil
	}
	var d Deployment
	if json.Unmarshal(res.GetEntry().GetValue(), &d) != nil {
		return nil
	}
	return &d
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

type replica struct {
	cancel context.CancelFunc
	done   chan error
}

func (c *cluster) startInit(ctx context.Context, name string) *replica {
	rctx, cancel := context.WithCancel(ctx)
	r := &replica{cancel: cancel, done: make(chan error, 1)}
	go func() {
		var w io.Writer = testLog{c.t, name}
		if c.quiet {
			w = io.Discard
		}
		r.done <- Run(rctx, Config{Client: c.client(initToken), Candidate: name, TTL: time.Second,
			Logger: slog.New(slog.NewTextHandler(w, nil))})
	}()
	return r
}

func (r *replica) stop(t testing.TB) {
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("init replica: %v", err)
	}
}

const svcYAML = `name: web
instances: 3
command: sleep
args: ['1000']
resources: {cpus: 0.1, mem: 16Mi}
constraints: [{label: dcos.agent, op: UNIQUE}]
backoff: {seconds: 0.05, factor: 2, maxLaunchDelaySeconds: 1}
upgradeStrategy: {minimumHealthCapacity: 0.6, maximumOverCapacity: 0.34}
`

func TestRun_KeepsServiceUp(t *testing.T) {
	c := startCluster(t, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var agents []*fakeAgent
	for i := range 4 {
		agents = append(agents, c.addAgent(ctx, i))
	}
	defer func() {
		for _, a := range agents {
			a.stop()
		}
	}()
	a := c.startInit(ctx, "replica-a")
	defer func() { a.stop(t) }()

	c.apply(ctx, svcYAML, false)
	eventually(t, "3 running instances on 3 agents", func() bool {
		v := c.view(ctx, "web")
		used := map[string]bool{}
		for _, al := range v.allocs {
			used[al.GetAgentId()] = true
		}
		if len(v.allocs) != 3 || len(v.running) != 3 || len(used) != 3 {
			for _, al := range v.allocs {
				t.Logf("%s %s %s %v %q", al.GetId(), al.GetState(), al.GetAgentId(), al.GetConstraints(), al.GetPendingReason())
			}
			return false
		}
		return true
	})
	eventually(t, "the deployment to succeed", func() bool {
		d := c.deployment(ctx, "web")
		return d != nil && d.Status == DeploymentSucceeded
	})

	// A task fails: it is launched again in its allocation.
	v := c.view(ctx, "web")
	victim := v.allocs[0]
	old := v.running[victim.GetId()]
	var agent *framework.Client
	for _, ag := range agents {
		if ag.id == old.GetAgentId() {
			agent = ag.client
		}
	}
	if _, err := agent.ReportTaskStatus(ctx, &pb.ReportTaskStatusRequest{TaskId: old.GetId(), AgentId: old.GetAgentId(),
		State: pb.TaskState_TASK_STATE_FAILED, ExitCode: 1, Reason: "exit code 1"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the failed task replaced in its allocation", func() bool {
		v := c.view(ctx, "web")
		tk := v.running[victim.GetId()]
		return len(v.allocs) == 3 && tk != nil && tk.GetId() != old.GetId()
	})

	// An agent is lost: its instance is rescheduled on the spare agent,
	// never two on one agent.
	var lost *fakeAgent
	used := map[string]bool{}
	for _, al := range c.view(ctx, "web").allocs {
		used[al.GetAgentId()] = true
	}
	for _, ag := range agents {
		if used[ag.id] {
			lost = ag
			break
		}
	}
	var stale string
	for _, tk := range c.view(ctx, "web").running {
		if tk.GetAgentId() == lost.id {
			stale = tk.GetId()
		}
	}
	if stale == "" {
		t.Fatalf("no running task on agent %s", lost.id)
	}
	lost.stop()
	eventually(t, "the lost agent's instance running elsewhere", func() bool {
		v := c.view(ctx, "web")
		on := map[string]bool{}
		for _, al := range v.allocs {
			on[al.GetAgentId()] = true
		}
		return len(v.allocs) == 3 && len(v.running) == 3 && len(on) == 3 && !on[lost.id]
	})
	// The lost agent comes back with its stale instance still running: the
	// kernel does not list that task among those it expects, so the agent
	// kills it, and the service keeps exactly 3 instances.
	back, err := lost.client.RegisterAgent(ctx, &pb.RegisterAgentRequest{AgentId: lost.id, Hostname: "node-back",
		Resources: &pb.Resources{Cpus: 8, MemBytes: 8 << 30, DiskBytes: 1 << 40}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range back.GetTasks() {
		if tk.GetId() == stale {
			t.Fatalf("the kernel expects the returning agent to keep running stale task %s", stale)
		}
	}
	time.Sleep(200 * time.Millisecond) // a few passes with the agent back
	if v := c.view(ctx, "web"); len(v.allocs) != 3 || len(v.running) != 3 {
		t.Fatalf("with the lost agent back: %d instances, %d running; want 3", len(v.allocs), len(v.running))
	}

	// A rolling upgrade under the strategy: sampled, never fewer than
	// minHealthy ready nor more than maxTotal instances.
	next := c.apply(ctx, strings.Replace(svcYAML, "'1000'", "'2000'", 1), false)
	want := fmt.Sprint([]string{strconv.FormatInt(next.TemplateVersion, 10), strconv.FormatInt(next.TemplateVersion, 10), strconv.FormatInt(next.TemplateVersion, 10)})
	eventually(t, "every instance at the new version", func() bool {
		v := c.view(ctx, "web")
		if len(v.allocs) > 4 {
			t.Fatalf("%d instances, more than instances + maximumOverCapacity (4)", len(v.allocs))
		}
		if v.ready < 2 {
			t.Fatalf("%d ready instances, fewer than minimumHealthCapacity × instances (2)", v.ready)
		}
		return v.versions() == want && v.ready == 3
	})

	// Failover: a second replica takes over and changes nothing.
	before := c.view(ctx, "web")
	b := c.startInit(ctx, "replica-b")
	defer func() { b.stop(t) }()
	a.stop(t)
	a = &replica{cancel: func() {}, done: make(chan error, 1)}
	a.done <- nil
	eventually(t, "replica-b to lead", func() bool {
		l, err := c.client(initToken).Leader(ctx, &pb.LeaderRequest{})
		return err == nil && l.GetLeader().GetHolder() == "replica-b"
	})
	time.Sleep(300 * time.Millisecond) // a few passes of the new leader
	after := c.view(ctx, "web")
	ids := func(v view) string {
		var out []string
		for _, al := range v.allocs {
			out = append(out, al.GetId())
		}
		for _, tk := range v.running {
			out = append(out, tk.GetId())
		}
		sort.Strings(out)
		return fmt.Sprint(out)
	}
	if ids(before) != ids(after) {
		t.Fatalf("failover changed the instances:\nbefore %s\nafter  %s", ids(before), ids(after))
	}

	// Removal stops everything and forgets the deployment.
	if _, err := c.op.StateDelete(ctx, &pb.StateDeleteRequest{Key: SpecKey("web"), Owner: "init"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the removed service's instances gone", func() bool {
		return len(c.view(ctx, "web").allocs) == 0 && c.deployment(ctx, "web") == nil
	})
}

// testLog writes a replica's log to the test's log (shown on failure or
// with -v).
type testLog struct {
	t    testing.TB
	name string
}

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(l.name + ": " + strings.TrimSpace(string(p)))
	return len(p), nil
}

func (c *cluster) status(ctx context.Context, name string) *Status {
	res, err := c.op.StateGet(ctx, &pb.StateGetRequest{Key: StatusKey(name), Owner: "init"})
	if err != nil {
		return nil
	}
	var st Status
	if json.Unmarshal(res.GetEntry().GetValue(), &st) != nil {
		return nil
	}
	return &st
}

func TestRun_FailedDeploymentAndRollback(t *testing.T) {
	c := startCluster(t, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i := range 2 {
		defer c.addAgent(ctx, i).stop()
	}
	r := c.startInit(ctx, "replica-a")
	defer r.stop(t)

	const spec = `name: api
instances: 5
command: server
args: ['%s']
resources: {cpus: 0.1, mem: 16Mi}
health: {tcp: {port: 80}}
upgradeStrategy: {minimumHealthCapacity: 0.6, maximumOverCapacity: 0.2}
`
	v1 := c.apply(ctx, fmt.Sprintf(spec, "good"), false)
	eventually(t, "5 ready instances", func() bool { v := c.view(ctx, "api"); return len(v.allocs) == 5 && v.ready == 5 })

	// A version whose health check fails: the deployment stops with the
	// check's message, never below 3 ready, and the old ones stay.
	c.apply(ctx, fmt.Sprintf(spec, "unhealthy"), false)
	eventually(t, "the deployment to fail", func() bool {
		v := c.view(ctx, "api")
		if v.ready < 3 || len(v.allocs) > 6 {
			t.Fatalf("%d ready of %d instances: below 3 ready or above 6", v.ready, len(v.allocs))
		}
		d := c.deployment(ctx, "api")
		return d != nil && d.Status == DeploymentFailed
	})
	if d := c.deployment(ctx, "api"); !strings.Contains(d.Reason, "GET /health: status 503") {
		t.Errorf("reason = %q, want the check's message", d.Reason)
	}
	eventually(t, "only old instances, ready", func() bool {
		v := c.view(ctx, "api")
		for _, a := range v.allocs {
			if a.GetLabels()[LabelVersion] != strconv.FormatInt(v1.TemplateVersion, 10) {
				return false
			}
		}
		return v.ready >= 3 && len(v.allocs) == v.ready
	})
	// The old version is what runs now: its instances come back to 5 (the
	// new ones the rolling upgrade replaced them with are gone), and an
	// old instance whose allocation is revoked is replaced at version 1.
	old := strconv.FormatInt(v1.TemplateVersion, 10)
	allOld := func(n int) func() bool {
		return func() bool {
			v := c.view(ctx, "api")
			return len(v.allocs) == n && v.ready == n && v.versions() == fmt.Sprint(slices.Repeat([]string{old}, n))
		}
	}
	eventually(t, "5 ready old instances after the failed deployment", allOld(5))
	gone := c.view(ctx, "api").allocs[0]
	if _, err := c.op.Revoke(ctx, &pb.RevokeRequest{Id: gone.GetId(), Reason: "test: operator revoke"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revoked old instance replaced at the old version", func() bool {
		v := c.view(ctx, "api")
		for _, a := range v.allocs {
			if a.GetId() == gone.GetId() {
				return false
			}
		}
		return allOld(5)()
	})
	if d := c.deployment(ctx, "api"); d.Status != DeploymentFailed {
		t.Errorf("deployment %s after the replacement, want it still failed", d.Status)
	}

	// Rollback, as dcosctl svc rollback writes it: version 1's spec and
	// instance template again. The old instances are kept.
	kept := map[string]bool{}
	for _, a := range c.view(ctx, "api").allocs {
		kept[a.GetId()] = true
	}
	back := &Record{Spec: v1.Spec, Version: v1.Version + 2, TemplateVersion: v1.TemplateVersion, Applied: time.Now(), Cause: "rollback to 1"}
	b, _ := json.Marshal(back)
	if _, err := c.op.StatePut(ctx, &pb.StatePutRequest{Key: SpecKey("api"), Value: b, Owner: "init"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "5 ready instances after the rollback", func() bool {
		v := c.view(ctx, "api")
		d := c.deployment(ctx, "api")
		return len(v.allocs) == 5 && v.ready == 5 && d != nil && d.SpecVersion == back.Version && d.Status == DeploymentSucceeded
	})
	now := map[string]bool{}
	for _, a := range c.view(ctx, "api").allocs {
		now[a.GetId()] = true
	}
	for id := range kept {
		if !now[id] {
			t.Errorf("the rollback replaced old instance %s", id)
		}
	}
}

func TestRun_CrashLoopBacksOff(t *testing.T) {
	c := startCluster(t, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	defer c.addAgent(ctx, 0).stop()
	r := c.startInit(ctx, "replica-a")
	defer r.stop(t)

	c.apply(ctx, `name: crashy
command: sh
args: ['crash']
resources: {cpus: 0.1, mem: 16Mi}
backoff: {seconds: 0.05, factor: 2, maxLaunchDelaySeconds: 10}
`, false)
	// Each failure is counted once and pushes the next launch further:
	// the first relaunch is at once, then the delays follow
	// seconds × factor^(failures-2).
	var is *InstanceStatus
	eventually(t, "5 failures", func() bool {
		st := c.status(ctx, "crashy")
		if st == nil || st.Instances["0"] == nil {
			return false
		}
		is = st.Instances["0"]
		return is.Failures >= 5
	})
	if !strings.Contains(is.LastFailure, "exit code 1") {
		t.Errorf("last failure = %q, want the task's reason", is.LastFailure)
	}
	tr, err := c.op.ListTasks(ctx, &pb.ListTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var tasks []*pb.Task
	found := false
	for _, tk := range tr.GetTasks() {
		if tk.GetLabels()[LabelService] != "crashy" {
			continue
		}
		tasks = append(tasks, tk)
		if tk.GetId() == is.LastFailedTask {
			found = true
			if got, want := is.DelayedUntil.Sub(tk.GetUpdated().AsTime()), 50*time.Millisecond<<(is.Failures-2); got != want {
				t.Errorf("delayed %s after failure %d, want %s", got, is.Failures, want)
			}
		}
	}
	if !found {
		t.Errorf("the last failed task %s is not listed", is.LastFailedTask)
	}
	// Launches follow the schedule: one task at a time, each started no
	// sooner than its predecessor ended plus the delay of that failure.
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].GetCreated().AsTime().Before(tasks[j].GetCreated().AsTime()) })
	b := Backoff{Seconds: 0.05, Factor: 2, MaxLaunchDelaySeconds: 10}
	for i := 1; i < len(tasks); i++ {
		prev, next := tasks[i-1], tasks[i]
		if !terminal(prev.GetState()) {
			t.Fatalf("task %s started while %s (same instance) was still %v", next.GetId(), prev.GetId(), prev.GetState())
		}
		if gap, want := next.GetCreated().AsTime().Sub(prev.GetUpdated().AsTime()), b.Delay(i); gap < want {
			t.Errorf("launch %d (%s) came %v after failure %d, want at least %v", i+1, next.GetId(), gap, i, want)
		}
	}
}

func TestController_DeposedCannotAct(t *testing.T) {
	c := startCluster(t, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	defer c.addAgent(ctx, 0).stop()
	cl := c.client(initToken)
	won := func(candidate string) *pb.Fence {
		t.Helper()
		res, err := cl.Campaign(ctx, &pb.CampaignRequest{Candidate: candidate, Ttl: durationpb.New(time.Minute)})
		if err != nil || !res.GetElected() {
			t.Fatalf("campaign %s: %v %v", candidate, res, err)
		}
		return &pb.Fence{Epoch: res.GetLeader().GetEpoch()}
	}
	old := won("a")
	if _, err := cl.Resign(ctx, &pb.ResignRequest{Candidate: "a", Epoch: old.GetEpoch()}); err != nil {
		t.Fatal(err)
	}
	won("b")

	c.apply(ctx, "name: web\ncommand: sleep\nargs: ['1']\nresources: {cpus: 0.1}\n", false)
	cache := framework.NewCache(cl)
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { cache.Run(cctx); close(done) }()
	defer func() { stop(); <-done }()
	if err := cache.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	deposed := &Controller{Kernel: cl.Fenced(old), Cache: cache}
	_, err := deposed.Reconcile(ctx, "web")
	if !errors.Is(err, framework.ErrDeposed) {
		t.Fatalf("Reconcile with epoch %d after epoch %d won = %v, want ErrDeposed", old.GetEpoch(), old.GetEpoch()+1, err)
	}
	if v := c.view(ctx, "web"); len(v.allocs) != 0 {
		t.Errorf("a deposed controller allocated %d instances", len(v.allocs))
	}
	if c.deployment(ctx, "web") != nil {
		t.Error("a deposed controller wrote a deployment")
	}
}

// BenchmarkRun_Apply1000 is the time from storing a 1,000-instance spec
// (0.001 cpu each) to all of them RUNNING, on 3 agents faked over the
// agent syscalls (the goal on real agents: ≤ 10 s).
func BenchmarkRun_Apply1000(b *testing.B) {
	for range b.N {
		b.StopTimer()
		c := startCluster(b, time.Hour)
		c.quiet = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		var agents []*fakeAgent
		for j := range 3 {
			agents = append(agents, c.addAgent(ctx, j))
		}
		r := c.startInit(ctx, "bench")
		b.StartTimer()
		c.apply(ctx, "name: many\ninstances: 1000\ncommand: sleep\nargs: ['1000']\nresources: {cpus: 0.001, mem: 1Mi}\n", false)
		start := time.Now()
		eventually(b, "1000 launched", func() bool {
			tr, err := c.op.ListTasks(ctx, &pb.ListTasksRequest{})
			return err == nil && len(tr.GetTasks()) == 1000
		})
		b.ReportMetric(time.Since(start).Seconds(), "s-launched")
		eventually(b, "1000 running", func() bool { return len(c.view(ctx, "many").running) == 1000 })
		b.StopTimer()
		r.stop(b)
		for _, a := range agents {
			a.stop()
		}
		cancel()
	}
}

func TestRun_FailoverMidDeployment(t *testing.T) {
	c := startCluster(t, time.Hour)
	c.readyAfter = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i := range 2 {
		defer c.addAgent(ctx, i).stop()
	}
	a := c.startInit(ctx, "replica-a")
	eventually(t, "replica-a to lead", func() bool {
		l, err := c.op.Leader(ctx, &pb.LeaderRequest{Owner: "init"})
		return err == nil && l.GetLeader().GetHolder() == "replica-a"
	})
	b := c.startInit(ctx, "replica-b")
	defer b.stop(t)

	const spec = "name: web\ninstances: 5\ncommand: server\nargs: [slow, '%d']\nresources: {cpus: 0.1, mem: 16Mi}\n" +
		"readiness: {tcp: {port: 80}}\nupgradeStrategy: {minimumHealthCapacity: 0.6, maximumOverCapacity: 0.2}\n"
	c.apply(ctx, fmt.Sprintf(spec, 1), false)
	eventually(t, "5 ready", func() bool { return c.view(ctx, "web").ready == 5 })

	next := c.apply(ctx, fmt.Sprintf(spec, 2), false)
	newVersion := strconv.FormatInt(next.TemplateVersion, 10)
	// Sample throughout: never more than 6 instances nor fewer than 3
	// ready, and no instance of the new version ever killed (only the
	// deployment's kills of old ones happen, failover or not).
	newSeen := map[string]bool{}
	sample := func() view {
		v := c.view(ctx, "web")
		if len(v.allocs) > 6 || v.ready < 3 {
			t.Fatalf("%d instances, %d ready: want at most 6 and at least 3", len(v.allocs), v.ready)
		}
		live := map[string]bool{}
		for _, al := range v.allocs {
			live[al.GetId()] = true
			if al.GetLabels()[LabelVersion] == newVersion {
				newSeen[al.GetId()] = true
			}
		}
		for id := range newSeen {
			if !live[id] {
				t.Fatalf("new instance %s was killed", id)
			}
		}
		return v
	}
	eventually(t, "the deployment under way", func() bool {
		sample()
		d := c.deployment(ctx, "web")
		return d != nil && d.SpecVersion == next.Version && len(newSeen) > 0
	})
	a.stop(t) // the leader goes mid-deployment; replica-b takes over
	eventually(t, "the deployment to finish under replica-b", func() bool {
		v := sample()
		d := c.deployment(ctx, "web")
		return d != nil && d.SpecVersion == next.Version && d.Status == DeploymentSucceeded && v.ready == 5 && len(v.allocs) == 5
	})
	l, err := c.op.Leader(ctx, &pb.LeaderRequest{Owner: "init"})
	if err != nil || l.GetLeader().GetHolder() != "replica-b" {
		t.Errorf("leader = %v, %v; want replica-b", l, err)
	}
}
