package ctl

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	dinit "github.com/dcos-kernel/dcos/frameworks/init"
	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/kernel"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

const (
	svcOpToken    = "svc-operator-token-0123456"
	svcInitToken  = "svc-init-token-0123456789"
	svcAgentToken = "svc-agent-token-012345678"
)

// svcKernel is a real kernel on an embedded etcd behind the API door,
// with an operator (what dcosctl svc runs as), the init's principal and an
// agent.
type svcKernel struct {
	t         *testing.T
	url       string
	op, init_ syscallsv1connect.KernelClient
}

func startSvcKernel(t *testing.T) *svcKernel {
	t.Helper()
	srv := kerneltest.Start(t, kerneltest.Options{
		Tokens: []api.TokenEntry{
			{Token: svcOpToken, Name: "ops", Role: "operator"},
			{Token: svcInitToken, Name: "init", Role: "framework"},
			{Token: svcAgentToken, Name: "node-1", Role: "agent"},
		},
		Kernel: func(c *kernel.Config) { c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) },
	})
	return &svcKernel{t: t, url: srv.URL, op: kclient.New(srv.URL, svcOpToken), init_: kclient.New(srv.URL, svcInitToken)}
}

// svc runs dcosctl svc as the operator.
func (k *svcKernel) svc(args ...string) result {
	k.t.Helper()
	return runCtl(k.t, context.Background(), "", append([]string{"--kernel", k.url, "--token", svcOpToken, "svc"}, args...)...)
}

// must runs dcosctl svc and fails the test unless it succeeds.
func (k *svcKernel) must(args ...string) result {
	k.t.Helper()
	r := k.svc(args...)
	if r.code != 0 {
		k.t.Fatalf("svc %v: exit %d: %s", args, r.code, r.stderr)
	}
	return r
}

func (k *svcKernel) recordOf(owner, name string) *dinit.Record {
	k.t.Helper()
	res, err := k.op.StateGet(context.Background(), connect.NewRequest(&syscallsv1.StateGetRequest{Key: dinit.SpecKey(name), Owner: owner}))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return nil
	}
	if err != nil {
		k.t.Fatal(err)
	}
	var r dinit.Record
	if err := json.Unmarshal(res.Msg.GetEntry().GetValue(), &r); err != nil {
		k.t.Fatal(err)
	}
	return &r
}

func (k *svcKernel) count(owner, prefix string) int {
	k.t.Helper()
	res, err := k.op.StateList(context.Background(), connect.NewRequest(&syscallsv1.StateListRequest{Prefix: prefix, Owner: owner, KeysOnly: true}))
	if err != nil {
		k.t.Fatal(err)
	}
	return len(res.Msg.GetEntries())
}

// putAsInit writes a key of the init's state as the init does.
func (k *svcKernel) putAsInit(key string, v any) {
	k.t.Helper()
	b, _ := json.Marshal(v)
	if _, err := k.init_.StatePut(context.Background(), connect.NewRequest(&syscallsv1.StatePutRequest{Key: key, Value: b})); err != nil {
		k.t.Fatal(err)
	}
}

func writeSpec(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "svc.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const webSpec = "name: web\ninstances: 3\ncommand: sleep\nargs: ['1000']\nresources: {cpus: 0.1, mem: 16Mi}\n"

func TestSvc_Apply(t *testing.T) {
	isolate(t)
	k := startSvcKernel(t)
	svc := k.svc

	// A bad spec stores nothing and names the field.
	bad := writeSpec(t, webSpec+"health: {tcp: {port: 80}, interval: 0s}\n")
	r := svc("apply", "-f", bad)
	if r.code == 0 || !strings.Contains(r.stderr, "services[0].health.interval: must be > 0") {
		t.Fatalf("bad spec: exit %d, stderr %q", r.code, r.stderr)
	}
	if n := k.count("init", ""); n != 0 {
		t.Fatalf("a bad spec stored %d keys", n)
	}

	// --dry-run prints the plan, stores nothing.
	good := writeSpec(t, webSpec)
	r = svc("apply", "-f", good, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "web: would apply (dry run) version 1 (create)") || !strings.Contains(r.stdout, "step 1: start 3 new") {
		t.Fatalf("dry run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := k.count("init", ""); n != 0 {
		t.Fatalf("a dry run stored %d keys", n)
	}

	r = svc("apply", "-f", good)
	if r.code != 0 || !strings.Contains(r.stdout, "web: applied version 1 (create)") {
		t.Fatalf("apply: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// Stored in the init's own state: the init reads it as itself.
	rec := k.recordOf("init", "web")
	if rec == nil || rec.Version != 1 || rec.TemplateVersion != 1 || rec.Spec.Count() != 3 {
		t.Fatalf("stored record = %+v", rec)
	}
	if _, err := k.init_.StateGet(context.Background(), connect.NewRequest(&syscallsv1.StateGetRequest{Key: dinit.SpecKey("web")})); err != nil {
		t.Errorf("the init cannot read the spec: %v", err)
	}

	// The same file again changes nothing.
	if r = svc("apply", "-f", good); !strings.Contains(r.stdout, "web: unchanged (version 1)") {
		t.Errorf("re-apply: %q", r.stdout)
	}
	// Instances only: a scale, same template version.
	r = svc("apply", "-f", writeSpec(t, strings.Replace(webSpec, "instances: 3", "instances: 5", 1)))
	if !strings.Contains(r.stdout, "version 2 (scale)") {
		t.Errorf("scale by apply: %q %q", r.stdout, r.stderr)
	}
	if rec := k.recordOf("init", "web"); rec.Version != 2 || rec.TemplateVersion != 1 {
		t.Errorf("after scale: version %d template %d, want 2 and 1", rec.Version, rec.TemplateVersion)
	}
	// A new command: an update with a new template version.
	r = svc("apply", "-f", writeSpec(t, strings.Replace(webSpec, "'1000'", "'2000'", 1)))
	if !strings.Contains(r.stdout, "version 3 (update)") {
		t.Errorf("update: %q %q", r.stdout, r.stderr)
	}
	if rec := k.recordOf("init", "web"); rec.TemplateVersion != 3 {
		t.Errorf("after update: template %d, want 3", rec.TemplateVersion)
	}

	// Another framework name writes elsewhere.
	if r = svc("apply", "-f", good, "--framework", "other"); r.code != 0 || k.recordOf("other", "web") == nil {
		t.Errorf("--framework: exit %d %q", r.code, r.stderr)
	}
}

func TestSvc_ScaleRestartRollbackHistoryRm(t *testing.T) {
	isolate(t)
	k := startSvcKernel(t)
	svc := k.must
	svc("apply", "-f", writeSpec(t, webSpec))
	svc("apply", "-f", writeSpec(t, strings.Replace(webSpec, "'1000'", "'2000'", 1)))

	svc("scale", "web", "7")
	if rec := k.recordOf("init", "web"); rec.Version != 3 || rec.TemplateVersion != 2 || rec.Spec.Count() != 7 {
		t.Fatalf("after scale: %+v", rec)
	}
	svc("restart", "web")
	if rec := k.recordOf("init", "web"); rec.Version != 4 || rec.TemplateVersion != 4 || rec.Cause != "restart" {
		t.Fatalf("after restart: %+v", rec)
	}
	svc("rollback", "web")
	rec := k.recordOf("init", "web")
	if rec.Version != 5 || rec.Spec.Count() != 3 || rec.Cause != "rollback to 2" || rec.Spec.Args[0] != "2000" {
		t.Fatalf("after rollback: %+v", rec)
	}
	// Same template as the current one: a scale, no instance replaced.
	if rec.TemplateVersion != 4 {
		t.Errorf("after rollback: template version %d, want the current one (4)", rec.TemplateVersion)
	}
	h := svc("history", "web")
	for _, want := range []string{"VERSION", "scale to 7", "restart", "rollback to 2"} {
		if !strings.Contains(h.stdout, want) {
			t.Errorf("history lacks %q:\n%s", want, h.stdout)
		}
	}
	// History keeps the last 10 versions.
	for i := 0; i < 12; i++ {
		svc("scale", "web", "1")
	}
	if n := k.count("init", dinit.HistoryPrefix("web")); n != dinit.HistoryKeep {
		t.Errorf("history holds %d versions, want %d", n, dinit.HistoryKeep)
	}
	r := svc("history", "web", "-o", "json")
	var out struct{ History []dinit.Record }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.History) != dinit.HistoryKeep {
		t.Errorf("history -o json: %v, %d versions", err, len(out.History))
	}
	svc("rm", "web")
	if k.recordOf("init", "web") != nil || k.count("init", dinit.HistoryPrefix("web")) != 0 {
		t.Error("rm left the spec or its history")
	}
	if r := k.svc("scale", "web", "2"); r.code == 0 || !strings.Contains(r.stderr, `service "web": not found`) {
		t.Errorf("scale of a removed service: exit %d %q", r.code, r.stderr)
	}
}

func TestSvc_RollbackKeepsOldInstances(t *testing.T) {
	isolate(t)
	k := startSvcKernel(t)
	k.must("apply", "-f", writeSpec(t, webSpec))
	k.must("apply", "-f", writeSpec(t, strings.Replace(webSpec, "'1000'", "'2000'", 1)))
	k.must("rollback", "web")
	// Back to version 1's template: its instances (still running after a
	// failed deployment) are the new ones, not replaced.
	if rec := k.recordOf("init", "web"); rec.Version != 3 || rec.TemplateVersion != 1 || rec.Spec.Args[0] != "1000" {
		t.Errorf("after rollback: version %d template %d args %v, want 3, 1, [1000]", rec.Version, rec.TemplateVersion, rec.Spec.Args)
	}
}

func TestSvc_StatusAndLs(t *testing.T) {
	isolate(t)
	k := startSvcKernel(t)
	ctx := context.Background()
	k.must("apply", "-f", writeSpec(t, webSpec))

	// What the init would have done: three labeled allocations, one too
	// big to ever fit; tasks in two, one running healthy, one failed.
	agent := kclient.New(k.url, svcAgentToken)
	reg, err := agent.RegisterAgent(ctx, connect.NewRequest(&syscallsv1.RegisterAgentRequest{Hostname: "node-1",
		Resources: &syscallsv1.Resources{Cpus: 4, MemBytes: 4 << 30, DiskBytes: 1 << 30}}))
	if err != nil {
		t.Fatal(err)
	}
	agentID := reg.Msg.GetAgentId()
	labels := func(n string) map[string]string {
		return map[string]string{dinit.LabelService: "web", dinit.LabelVersion: "1", dinit.LabelInstance: n}
	}
	var tasks []string
	for i, cpus := range []float64{0.1, 0.1, 1000} {
		res, err := k.init_.Allocate(ctx, connect.NewRequest(&syscallsv1.AllocateRequest{Resources: &syscallsv1.Resources{Cpus: cpus, MemBytes: 16 << 20},
			Count: 1, Labels: labels(strconv.Itoa(i))}))
		if err != nil {
			t.Fatal(err)
		}
		a := res.Msg.GetAllocations()[0]
		if a.GetState() != syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED {
			continue
		}
		l, err := k.init_.Launch(ctx, connect.NewRequest(&syscallsv1.LaunchRequest{AllocationId: a.GetId(), Command: "sleep", Args: []string{"1000"},
			Labels: labels(strconv.Itoa(i)), HealthCheck: &syscallsv1.HealthCheck{Tcp: &syscallsv1.TCPCheck{Port: 80}}}))
		if err != nil {
			t.Fatal(err)
		}
		tasks = append(tasks, l.Msg.GetTask().GetId())
	}
	report := func(r *syscallsv1.ReportTaskStatusRequest) {
		t.Helper()
		r.AgentId = agentID
		if _, err := agent.ReportTaskStatus(ctx, connect.NewRequest(r)); err != nil {
			t.Fatal(err)
		}
	}
	report(&syscallsv1.ReportTaskStatusRequest{TaskId: tasks[0], State: syscallsv1.TaskState_TASK_STATE_RUNNING, Pid: 10})
	report(&syscallsv1.ReportTaskStatusRequest{TaskId: tasks[0], State: syscallsv1.TaskState_TASK_STATE_RUNNING,
		Health: &syscallsv1.TaskHealthReport{Health: syscallsv1.HealthState_HEALTH_STATE_HEALTHY, Ready: true}})
	report(&syscallsv1.ReportTaskStatusRequest{TaskId: tasks[1], State: syscallsv1.TaskState_TASK_STATE_FAILED, ExitCode: 1, Reason: "exit code 1"})
	k.putAsInit(dinit.StatusKey("web"), dinit.Status{Message: "instance 2: larger than any agent: it can never fit", Instances: map[string]*dinit.InstanceStatus{
		"1": {Failures: 3, LastFailure: "FAILED: exit code 1", DelayedUntil: testNow.Add(time.Hour), LastFailedTask: tasks[1]},
	}})
	k.putAsInit(dinit.DeploymentKey("web"), dinit.Deployment{SpecVersion: 1, TemplateVersion: 1, Status: dinit.DeploymentRunning,
		Steps: []dinit.Step{{Start: 3, NewAfter: 3}}})
	// Another framework's allocation with the same labels is not the init's.
	other := kclient.New(k.url, svcOpToken)
	if _, err := other.Allocate(ctx, connect.NewRequest(&syscallsv1.AllocateRequest{Resources: &syscallsv1.Resources{Cpus: 0.1, MemBytes: 1 << 20},
		Count: 1, Labels: labels("0")})); err != nil {
		t.Fatal(err)
	}

	r := k.must("status", "web")
	for _, want := range []string{"Deployment:  running of version 1, step 1/1: start 3 new", "Not running: instance 2: larger than any agent: it can never fit",
		agentID, "HEALTHY", "FAILED", "delayed until", "last failure: FAILED: exit code 1", "PENDING", "can never fit"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	if n := strings.Count(r.stdout, "\n"); n != 5+1+1+3 {
		t.Errorf("status has %d lines, want 5 header lines, a blank, a table header and 3 instances:\n%s", n, r.stdout)
	}
	r = k.must("status", "web", "-o", "json")
	var js struct {
		Running    []map[string]any
		Deployment *dinit.Deployment
	}
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil || len(js.Running) != 3 || js.Deployment == nil {
		t.Errorf("status -o json: %v %q", err, r.stdout)
	}

	r = k.must("ls")
	if !strings.Contains(r.stdout, "web") || !strings.Contains(r.stdout, "1/3") || !strings.Contains(r.stdout, "running (step 1/1)") {
		t.Errorf("ls:\n%s", r.stdout)
	}
	if r := k.svc("status", "nope"); r.code == 0 || !strings.Contains(r.stderr, `service "nope": not found`) {
		t.Errorf("status of an unknown service: exit %d %q", r.code, r.stderr)
	}
}

func TestSvc_Usage(t *testing.T) {
	isolate(t)
	for _, args := range [][]string{{"apply"}, {"status"}, {"scale", "web"}, {"scale", "web", "-1"}, {"rm"}, {"history", "a", "b"}, {"get"}} {
		r := runCtl(t, context.Background(), "", append([]string{"--kernel", "127.0.0.1:1", "svc"}, args...)...)
		if r.code == 0 || r.stderr == "" {
			t.Errorf("svc %v: exit %d, stderr %q; want a usage error", args, r.code, r.stderr)
		}
	}
	for _, cmd := range []string{"svc", "svc apply", "svc status", "svc scale", "svc rollback", "svc get"} {
		r := runCtl(t, context.Background(), "", append(strings.Fields(cmd), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "USAGE:") {
			t.Errorf("%s --help: exit %d %q", cmd, r.code, r.stdout)
		}
	}
}
