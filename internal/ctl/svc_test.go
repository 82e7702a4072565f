package ctl

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	dinit "github.com/dcos-kernel/dcos/frameworks/init"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// stateKernel is fakeKernel plus the framework-state calls, served from a
// map with the kernel's compare-and-swap rule; like fakeKernel it knows
// nothing else of the real kernel.
type stateKernel struct {
	*fakeKernel
	mu   sync.Mutex
	rev  int64
	keys map[string]*syscallsv1.StateEntry
}

func newStateKernel(t *testing.T) (*stateKernel, string) {
	k := &stateKernel{fakeKernel: &fakeKernel{}, keys: map[string]*syscallsv1.StateEntry{}}
	mux := http.NewServeMux()
	mux.Handle(syscallsv1connect.NewKernelHandler(k))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return k, srv.URL
}

func (k *stateKernel) StateGet(_ context.Context, r *connect.Request[syscallsv1.StateGetRequest]) (*connect.Response[syscallsv1.StateGetResponse], error) {
	k.record("StateGet", r.Msg, r.Header())
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.keys[r.Msg.GetOwner()+"/"+r.Msg.GetKey()]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, nil)
	}
	return connect.NewResponse(&syscallsv1.StateGetResponse{Entry: e, Revision: k.rev}), nil
}

func (k *stateKernel) StatePut(_ context.Context, r *connect.Request[syscallsv1.StatePutRequest]) (*connect.Response[syscallsv1.StatePutResponse], error) {
	k.record("StatePut", r.Msg, r.Header())
	k.mu.Lock()
	defer k.mu.Unlock()
	id := r.Msg.GetOwner() + "/" + r.Msg.GetKey()
	if r.Msg.ExpectedRevision != nil {
		cur := int64(0)
		if e, ok := k.keys[id]; ok {
			cur = e.GetRevision()
		}
		if cur != r.Msg.GetExpectedRevision() {
			return nil, connect.NewError(connect.CodeAborted, nil)
		}
	}
	k.rev++
	k.keys[id] = &syscallsv1.StateEntry{Key: r.Msg.GetKey(), Value: r.Msg.GetValue(), Revision: k.rev, Owner: r.Msg.GetOwner()}
	return connect.NewResponse(&syscallsv1.StatePutResponse{Revision: k.rev}), nil
}

func (k *stateKernel) StateDelete(_ context.Context, r *connect.Request[syscallsv1.StateDeleteRequest]) (*connect.Response[syscallsv1.StateDeleteResponse], error) {
	k.record("StateDelete", r.Msg, r.Header())
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.keys, r.Msg.GetOwner()+"/"+r.Msg.GetKey())
	k.rev++
	return connect.NewResponse(&syscallsv1.StateDeleteResponse{Revision: k.rev}), nil
}

func (k *stateKernel) StateList(_ context.Context, r *connect.Request[syscallsv1.StateListRequest]) (*connect.Response[syscallsv1.StateListResponse], error) {
	k.record("StateList", r.Msg, r.Header())
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []*syscallsv1.StateEntry
	for id, e := range k.keys {
		if strings.HasPrefix(id, r.Msg.GetOwner()+"/"+r.Msg.GetPrefix()) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetKey() < out[j].GetKey() })
	return connect.NewResponse(&syscallsv1.StateListResponse{Entries: out, Revision: k.rev}), nil
}

func (k *stateKernel) recordOf(t *testing.T, owner, name string) *dinit.Record {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.keys[owner+"/"+dinit.SpecKey(name)]
	if !ok {
		return nil
	}
	var r dinit.Record
	if err := json.Unmarshal(e.GetValue(), &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func (k *stateKernel) count(prefix string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for id := range k.keys {
		if strings.HasPrefix(id, prefix) {
			n++
		}
	}
	return n
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
	k, url := newStateKernel(t)
	svc := func(args ...string) result {
		return runCtl(t, context.Background(), "", append([]string{"--kernel", url, "svc"}, args...)...)
	}

	// A bad spec stores nothing and names the field.
	bad := writeSpec(t, webSpec+"health: {tcp: {port: 80}, interval: 0s}\n")
	r := svc("apply", "-f", bad)
	if r.code == 0 || !strings.Contains(r.stderr, "services[0].health.interval: must be > 0") {
		t.Fatalf("bad spec: exit %d, stderr %q", r.code, r.stderr)
	}
	if k.last("StatePut") != nil {
		t.Fatal("a bad spec was stored")
	}

	// --dry-run prints the plan, stores nothing.
	good := writeSpec(t, webSpec)
	r = svc("apply", "-f", good, "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "web: would apply (dry run) version 1 (create)") || !strings.Contains(r.stdout, "step 1: start 3 new") {
		t.Fatalf("dry run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if k.last("StatePut") != nil {
		t.Fatal("a dry run stored the spec")
	}

	r = svc("apply", "-f", good)
	if r.code != 0 || !strings.Contains(r.stdout, "web: applied version 1 (create)") {
		t.Fatalf("apply: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	rec := k.recordOf(t, "init", "web")
	if rec == nil || rec.Version != 1 || rec.TemplateVersion != 1 || rec.Spec.Count() != 3 {
		t.Fatalf("stored record = %+v", rec)
	}
	if put := k.last("StatePut").(*syscallsv1.StatePutRequest); put.GetOwner() != "init" {
		t.Errorf("owner = %q, want the init's principal", put.GetOwner())
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
	if rec := k.recordOf(t, "init", "web"); rec.Version != 2 || rec.TemplateVersion != 1 {
		t.Errorf("after scale: version %d template %d, want 2 and 1", rec.Version, rec.TemplateVersion)
	}
	// A new command: an update with a new template version.
	r = svc("apply", "-f", writeSpec(t, strings.Replace(webSpec, "'1000'", "'2000'", 1)))
	if !strings.Contains(r.stdout, "version 3 (update)") {
		t.Errorf("update: %q %q", r.stdout, r.stderr)
	}
	if rec := k.recordOf(t, "init", "web"); rec.TemplateVersion != 3 {
		t.Errorf("after update: template %d, want 3", rec.TemplateVersion)
	}

	// Another framework name writes elsewhere.
	if r = svc("apply", "-f", good, "--framework", "init2"); r.code != 0 || k.recordOf(t, "init2", "web") == nil {
		t.Errorf("--framework: exit %d %q", r.code, r.stderr)
	}
}

func TestSvc_ScaleRestartRollbackHistoryRm(t *testing.T) {
	isolate(t)
	k, url := newStateKernel(t)
	svc := func(args ...string) result {
		t.Helper()
		r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "svc"}, args...)...)
		if r.code != 0 {
			t.Fatalf("svc %v: exit %d: %s", args, r.code, r.stderr)
		}
		return r
	}
	svc("apply", "-f", writeSpec(t, webSpec))
	svc("apply", "-f", writeSpec(t, strings.Replace(webSpec, "'1000'", "'2000'", 1)))

	svc("scale", "web", "7")
	if rec := k.recordOf(t, "init", "web"); rec.Version != 3 || rec.TemplateVersion != 2 || rec.Spec.Count() != 7 {
		t.Fatalf("after scale: %+v", rec)
	}
	svc("restart", "web")
	if rec := k.recordOf(t, "init", "web"); rec.Version != 4 || rec.TemplateVersion != 4 || rec.Cause != "restart" {
		t.Fatalf("after restart: %+v", rec)
	}
	svc("rollback", "web")
	rec := k.recordOf(t, "init", "web")
	if rec.Version != 5 || rec.Spec.Count() != 3 || rec.Cause != "rollback to 2" || rec.Spec.Args[0] != "2000" {
		t.Fatalf("after rollback: %+v", rec)
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
	if n := k.count("init/" + dinit.HistoryPrefix("web")); n != dinit.HistoryKeep {
		t.Errorf("history holds %d versions, want %d", n, dinit.HistoryKeep)
	}
	r := svc("history", "web", "-o", "json")
	var out struct{ History []dinit.Record }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.History) != dinit.HistoryKeep {
		t.Errorf("history -o json: %v, %d versions", err, len(out.History))
	}
	svc("rm", "web")
	if k.recordOf(t, "init", "web") != nil || k.count("init/"+dinit.HistoryPrefix("web")) != 0 {
		t.Error("rm left the spec or its history")
	}
	if r := runCtl(t, context.Background(), "", "--kernel", url, "svc", "scale", "web", "2"); r.code == 0 || !strings.Contains(r.stderr, `service "web": not found`) {
		t.Errorf("scale of a removed service: exit %d %q", r.code, r.stderr)
	}
}

func TestSvc_StatusAndLs(t *testing.T) {
	isolate(t)
	k, url := newStateKernel(t)
	if r := runCtl(t, context.Background(), "", "--kernel", url, "svc", "apply", "-f", writeSpec(t, webSpec)); r.code != 0 {
		t.Fatal(r.stderr)
	}
	labels := func(n string) map[string]string {
		return map[string]string{dinit.LabelService: "web", dinit.LabelVersion: "1", dinit.LabelInstance: n}
	}
	granted, pending := syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED, syscallsv1.AllocationState_ALLOCATION_STATE_PENDING
	k.replyWith("ListAllocations", &syscallsv1.ListAllocationsResponse{Allocations: []*syscallsv1.Allocation{
		{Id: "a-1", Owner: "init", State: granted, AgentId: "ag-1", Labels: labels("0")},
		{Id: "a-2", Owner: "init", State: granted, AgentId: "ag-2", Labels: labels("1")},
		{Id: "a-3", Owner: "init", State: pending, PendingReason: "can never fit: no agent has 0.1 cpus free", Labels: labels("2")},
		{Id: "a-9", Owner: "someone", State: granted, Labels: labels("0")},
	}}, nil)
	k.replyWith("ListTasks", &syscallsv1.ListTasksResponse{Tasks: []*syscallsv1.Task{
		{Id: "t-1", AllocationId: "a-1", Owner: "init", State: syscallsv1.TaskState_TASK_STATE_RUNNING, Ready: true, Labels: labels("0"),
			HealthCheck: &syscallsv1.HealthCheck{}, Health: syscallsv1.HealthState_HEALTH_STATE_HEALTHY},
		{Id: "t-2", AllocationId: "a-2", Owner: "init", State: syscallsv1.TaskState_TASK_STATE_FAILED, Labels: labels("1")},
	}}, nil)
	st := dinit.Status{Message: "instance 2: can never fit: no agent has 0.1 cpus free", Instances: map[string]*dinit.InstanceStatus{
		"1": {Failures: 3, LastFailure: "FAILED: exit code 1", DelayedUntil: testNow.Add(time.Hour), LastFailedTask: "t-2"},
	}}
	b, _ := json.Marshal(st)
	dep, _ := json.Marshal(dinit.Deployment{SpecVersion: 1, TemplateVersion: 1, Status: dinit.DeploymentRunning, Steps: []dinit.Step{{Start: 3, NewAfter: 3}}})
	k.keys["init/"+dinit.StatusKey("web")] = &syscallsv1.StateEntry{Key: dinit.StatusKey("web"), Value: b, Revision: 50}
	k.keys["init/"+dinit.DeploymentKey("web")] = &syscallsv1.StateEntry{Key: dinit.DeploymentKey("web"), Value: dep, Revision: 51}

	r := runCtl(t, context.Background(), "", "--kernel", url, "svc", "status", "web")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	for _, want := range []string{"Deployment:  running of version 1, step 1/1: start 3 new", "Not running: instance 2: can never fit",
		"ag-1", "HEALTHY", "FAILED", "delayed until", "last failure: FAILED: exit code 1", "PENDING"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "a-9") {
		t.Errorf("status shows another owner's allocation:\n%s", r.stdout)
	}
	r = runCtl(t, context.Background(), "", "--kernel", url, "svc", "status", "web", "-o", "json")
	var js struct {
		Running    []map[string]any
		Deployment *dinit.Deployment
	}
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil || len(js.Running) != 3 || js.Deployment == nil {
		t.Errorf("status -o json: %v %q", err, r.stdout)
	}

	r = runCtl(t, context.Background(), "", "--kernel", url, "svc", "ls")
	if r.code != 0 || !strings.Contains(r.stdout, "web") || !strings.Contains(r.stdout, "1/3") || !strings.Contains(r.stdout, "running (step 1/1)") {
		t.Errorf("ls: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestSvc_Usage(t *testing.T) {
	isolate(t)
	_, url := newStateKernel(t)
	for _, args := range [][]string{{"apply"}, {"status"}, {"scale", "web"}, {"scale", "web", "-1"}, {"rm"}, {"history", "a", "b"}} {
		r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "svc"}, args...)...)
		if r.code == 0 || r.stderr == "" {
			t.Errorf("svc %v: exit %d, stderr %q; want a usage error", args, r.code, r.stderr)
		}
	}
	for _, cmd := range []string{"svc", "svc apply", "svc status", "svc scale", "svc rollback"} {
		r := runCtl(t, context.Background(), "", append(strings.Fields(cmd), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "USAGE:") {
			t.Errorf("%s --help: exit %d %q", cmd, r.code, r.stdout)
		}
	}
}
