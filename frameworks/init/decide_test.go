package dinit

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// world builds views by hand: allocations and tasks as the kernel shows
// them.
type world struct {
	allocs []*pb.Allocation
	tasks  []*pb.Task
	seq    int
}

func (w *world) add(svc string, version int64, n int, state pb.AllocationState, agent string) *pb.Allocation {
	w.seq++
	a := &pb.Allocation{Id: fmt.Sprintf("a-%d", w.seq), State: state, AgentId: agent,
		Labels: map[string]string{LabelService: svc, LabelVersion: fmt.Sprint(version), LabelInstance: fmt.Sprint(n)}}
	w.allocs = append(w.allocs, a)
	return a
}

func (w *world) task(a *pb.Allocation, state pb.TaskState, ready bool, health pb.HealthState, created, updated time.Time) *pb.Task {
	w.seq++
	t := &pb.Task{Id: fmt.Sprintf("t-%d", w.seq), AllocationId: a.GetId(), AgentId: a.GetAgentId(), State: state, Ready: ready, Health: health,
		Created: timestamppb.New(created), Updated: timestamppb.New(updated), Labels: a.GetLabels()}
	w.tasks = append(w.tasks, t)
	return t
}

// running adds n ready instances of version v on agents ag1..agN.
func (w *world) running(svc string, v int64, n int) {
	for i := 0; i < n; i++ {
		a := w.add(svc, v, i, pb.AllocationState_ALLOCATION_STATE_GRANTED, fmt.Sprintf("ag%d", i+1))
		w.task(a, pb.TaskState_TASK_STATE_RUNNING, true, pb.HealthState_HEALTH_STATE_HEALTHY, t0, t0)
	}
}

func (w *world) view(rec *Record, dep *Deployment, st *Status, now time.Time) View {
	return View{Record: rec, Deployment: dep, Status: st, Instances: Instances("web", w.allocs, w.tasks), Now: now,
		Agents: map[string]map[string]string{"ag1": {"dcos.agent": "ag1"}, "ag2": {"dcos.agent": "ag2"}, "ag3": {"dcos.agent": "ag3"}, "ag4": {"dcos.agent": "ag4"}}}
}

func record(t *testing.T, yaml string, version, template int64) *Record {
	t.Helper()
	svcs, err := Parse([]byte("name: web\ncommand: sleep\nargs: ['1000']\nresources: {cpus: 0.1}\n" + yaml))
	if err != nil {
		t.Fatal(err)
	}
	return &Record{Spec: svcs[0], Version: version, TemplateVersion: template}
}

func instancesOf(rs []*pb.AllocateRequest) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.GetLabels()[LabelVersion]+"/"+r.GetLabels()[LabelInstance])
	}
	sort.Strings(out)
	return out
}

func killIDs(ks []Kill) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.ID)
	}
	sort.Strings(out)
	return out
}

func TestDecide_NewService(t *testing.T) {
	var w world
	d := Decide(w.view(record(t, "instances: 3\n", 1, 1), nil, nil, t0))
	if got := fmt.Sprint(instancesOf(d.Allocate)); got != "[1/0 1/1 1/2]" {
		t.Errorf("allocations = %s, want instances 0..2 of version 1", got)
	}
	if d.Deployment == nil || d.Deployment.Status != DeploymentRunning || fmt.Sprint(d.Deployment.Steps) != "[start 3 new]" {
		t.Errorf("deployment = %+v", d.Deployment)
	}
	if len(d.Kills) != 0 || len(d.Launch) != 0 {
		t.Errorf("kills %v launches %v, want none", d.Kills, d.Launch)
	}
}

func TestDecide_UniqueIsSerial(t *testing.T) {
	rec := record(t, "instances: 3\nconstraints: [{label: dcos.agent, op: UNIQUE}]\n", 1, 1)
	var w world
	a := w.add("web", 1, 0, pb.AllocationState_ALLOCATION_STATE_GRANTED, "ag2")
	w.task(a, pb.TaskState_TASK_STATE_RUNNING, true, 0, t0, t0)
	d := Decide(w.view(rec, nil, nil, t0))
	if len(d.Allocate) != 1 {
		t.Fatalf("allocations = %d, want 1 at a time", len(d.Allocate))
	}
	cons := d.Allocate[0].GetConstraints()
	if len(cons) != 1 || cons[0].GetOp() != pb.Constraint_OP_NOT_EQUALS || cons[0].GetValues()[0] != "ag2" {
		t.Errorf("constraints = %v, want dcos.agent NOT_EQUALS ag2", cons)
	}
	w.add("web", 1, 1, pb.AllocationState_ALLOCATION_STATE_PENDING, "")
	if d := Decide(w.view(rec, nil, nil, t0)); len(d.Allocate) != 0 {
		t.Errorf("allocated %v while one instance is pending", instancesOf(d.Allocate))
	}
}

func TestDecide_LaunchIntoGranted(t *testing.T) {
	var w world
	a := w.add("web", 1, 0, pb.AllocationState_ALLOCATION_STATE_GRANTED, "ag1")
	d := Decide(w.view(record(t, "", 1, 1), nil, nil, t0))
	if len(d.Launch) != 1 || d.Launch[0].GetAllocationId() != a.GetId() || d.Launch[0].GetLabels()[LabelInstance] != "0" {
		t.Fatalf("launches = %v", d.Launch)
	}
	if len(d.Allocate) != 0 {
		t.Errorf("allocated %v for an instance that has its allocation", instancesOf(d.Allocate))
	}
}

func TestDecide_CrashBackoff(t *testing.T) {
	rec := record(t, "", 1, 1)
	var w world
	a := w.add("web", 1, 0, pb.AllocationState_ALLOCATION_STATE_GRANTED, "ag1")
	task := w.task(a, pb.TaskState_TASK_STATE_FAILED, false, 0, t0, t0.Add(100*time.Millisecond))
	task.Reason = "exit code 1"

	// The first failure is replaced at once.
	d := Decide(w.view(rec, nil, nil, t0.Add(200*time.Millisecond)))
	if len(d.Launch) != 1 || d.Launch[0].GetAllocationId() != a.GetId() {
		t.Fatalf("launches after the first failure = %v, want one at once in %s", d.Launch, a.GetId())
	}
	is := d.Status.Instances["0"]
	if is == nil || is.Failures != 1 || !is.DelayedUntil.Equal(t0.Add(100*time.Millisecond)) || !strings.Contains(is.LastFailure, "exit code 1") {
		t.Fatalf("status = %+v", is)
	}
	// The same failure seen again counts once.
	d1 := Decide(w.view(rec, d.Deployment, d.Status, t0.Add(300*time.Millisecond)))
	if d1.Status != nil && d1.Status.Instances["0"].Failures != 1 {
		t.Errorf("failure counted twice: %+v", d1.Status.Instances["0"])
	}
	// A second failure waits seconds (1s).
	w.task(a, pb.TaskState_TASK_STATE_FAILED, false, 0, t0.Add(300*time.Millisecond), t0.Add(400*time.Millisecond))
	d2 := Decide(w.view(rec, d.Deployment, d.Status, t0.Add(500*time.Millisecond)))
	if len(d2.Launch) != 0 {
		t.Fatal("relaunched before the backoff delay")
	}
	if is := d2.Status.Instances["0"]; is.Failures != 2 || !is.DelayedUntil.Equal(t0.Add(1400*time.Millisecond)) {
		t.Fatalf("second failure: %+v, want 2 failures delayed until +1.4s", is)
	}
	if d2.RequeueAfter != 900*time.Millisecond {
		t.Errorf("requeue after %s, want 900ms", d2.RequeueAfter)
	}
	d3 := Decide(w.view(rec, d2.Deployment, d2.Status, t0.Add(1500*time.Millisecond)))
	if len(d3.Launch) != 1 {
		t.Fatalf("launches after the delay = %v, want a relaunch", d3.Launch)
	}
	// A third failure waits seconds × factor.
	w.task(a, pb.TaskState_TASK_STATE_FAILED, false, 0, t0.Add(1500*time.Millisecond), t0.Add(1600*time.Millisecond))
	d4 := Decide(w.view(rec, d2.Deployment, d2.Status, t0.Add(1700*time.Millisecond)))
	if is := d4.Status.Instances["0"]; is.Failures != 3 || !is.DelayedUntil.Equal(t0.Add(2750*time.Millisecond)) {
		t.Errorf("third failure: %+v, want 3 failures delayed until +2.75s", is)
	}
	// A task that ran longer than BackoffReset starts the count again.
	w.task(a, pb.TaskState_TASK_STATE_FAILED, false, 0, t0.Add(2*time.Second), t0.Add(2*time.Second+BackoffReset))
	d5 := Decide(w.view(rec, d.Deployment, d4.Status, t0.Add(2*time.Second+BackoffReset)))
	if is := d5.Status.Instances["0"]; is.Failures != 1 {
		t.Errorf("failure after a long run: %+v, want the count reset to 1", is)
	}
}

func TestDecide_FailoverChangesNothing(t *testing.T) {
	// A new leader sees 3 healthy instances of the current version and no
	// deployment record: it kills nothing and starts nothing.
	var w world
	w.running("web", 4, 3)
	rec := record(t, "instances: 3\n", 6, 4)
	d := Decide(w.view(rec, nil, nil, t0))
	if len(d.Kills)+len(d.Allocate)+len(d.Launch) != 0 {
		t.Fatalf("failover acted: kills %v allocs %v launches %v", d.Kills, instancesOf(d.Allocate), d.Launch)
	}
	if d.Deployment == nil || d.Deployment.Status != DeploymentSucceeded {
		t.Errorf("deployment = %+v, want succeeded", d.Deployment)
	}
	// Same with the deployment record the last leader left mid-way.
	mid := &Deployment{SpecVersion: 6, TemplateVersion: 4, Status: DeploymentRunning, Steps: []Step{{Start: 1, NewAfter: 3}}}
	if d := Decide(w.view(rec, mid, nil, t0)); len(d.Kills)+len(d.Allocate)+len(d.Launch) != 0 {
		t.Fatalf("failover mid-deployment acted: %+v", d)
	}
}

func TestDecide_RollingUpgrade(t *testing.T) {
	var w world
	w.running("web", 1, 5)
	rec := record(t, "instances: 5\nupgradeStrategy: {minimumHealthCapacity: 0.6, maximumOverCapacity: 0.2}\n", 2, 2)
	d := Decide(w.view(rec, nil, nil, t0))
	if len(d.Kills) != 2 || len(d.Allocate) != 3 {
		t.Fatalf("first step: kills %v allocations %v, want 2 and 3", d.Kills, instancesOf(d.Allocate))
	}
	// The highest-numbered old instances go first.
	if got := fmt.Sprint(killIDs(d.Kills)); got != "[a-7 a-9]" {
		t.Errorf("killed %s, want instances 3 and 4 (a-7, a-9)", got)
	}
	if fmt.Sprint(d.Deployment.Steps) != "[kill 2 old, start 3 new kill 3 old, start 2 new]" {
		t.Errorf("steps = %v", d.Deployment.Steps)
	}
}

func TestDecide_UnhealthyStopsDeployment(t *testing.T) {
	var w world
	w.running("web", 1, 3)
	bad := w.add("web", 2, 0, pb.AllocationState_ALLOCATION_STATE_GRANTED, "ag4")
	tk := w.task(bad, pb.TaskState_TASK_STATE_RUNNING, false, pb.HealthState_HEALTH_STATE_UNHEALTHY, t0, t0)
	tk.HealthMessage = "GET /health: status 503"
	rec := record(t, "instances: 3\nupgradeStrategy: {minimumHealthCapacity: 1, maximumOverCapacity: 0.34}\n", 2, 2)
	dep := &Deployment{SpecVersion: 2, TemplateVersion: 2, Status: DeploymentRunning}
	d := Decide(w.view(rec, dep, nil, t0))
	if d.Deployment == nil || d.Deployment.Status != DeploymentFailed || !strings.Contains(d.Deployment.Reason, "GET /health: status 503") {
		t.Fatalf("deployment = %+v, want failed with the check's message", d.Deployment)
	}
	if fmt.Sprint(killIDs(d.Kills)) != "["+bad.GetId()+"]" || len(d.Allocate) != 0 {
		t.Errorf("kills %v allocations %v, want only the new instance killed", d.Kills, instancesOf(d.Allocate))
	}
	// Once failed it stays so: nothing new starts.
	if d := Decide(w.view(rec, d.Deployment, nil, t0)); len(d.Allocate) != 0 || d.Deployment != nil {
		t.Errorf("failed deployment moved: %+v", d)
	}
}

func TestDecide_ScaleDown(t *testing.T) {
	var w world
	w.running("web", 1, 4)
	rec := record(t, "instances: 2\n", 2, 1)
	d := Decide(w.view(rec, nil, nil, t0))
	if got := fmt.Sprint(killIDs(d.Kills)); got != "[a-5 a-7]" {
		t.Errorf("killed %s, want instances 2 and 3", got)
	}
	if len(d.Allocate)+len(d.Launch) != 0 {
		t.Error("a scale down started instances")
	}
}

func TestDecide_ReplacesLost(t *testing.T) {
	// Instance 1's allocation was revoked (agent lost): the cache no
	// longer shows it, and a replacement is allocated with its number.
	var w world
	w.running("web", 1, 3)
	w.allocs = append(w.allocs[:1], w.allocs[2:]...)
	d := Decide(w.view(record(t, "instances: 3\nconstraints: [{label: dcos.agent, op: UNIQUE}]\n", 1, 1), nil, nil, t0))
	if got := fmt.Sprint(instancesOf(d.Allocate)); got != "[1/1]" {
		t.Fatalf("allocations = %s, want instance 1", got)
	}
	if len(d.Allocate[0].GetConstraints()) != 2 {
		t.Errorf("constraints = %v, want NOT_EQUALS the two agents in use", d.Allocate[0].GetConstraints())
	}
}

func TestDecide_NeverFit(t *testing.T) {
	var w world
	a := w.add("web", 1, 0, pb.AllocationState_ALLOCATION_STATE_PENDING, "")
	a.PendingReason = "can never fit: no agent has 64 cpus"
	d := Decide(w.view(record(t, "instances: 2\n", 1, 1), nil, nil, t0))
	if len(d.Allocate) != 0 {
		t.Errorf("allocated %v after a can-never-fit", instancesOf(d.Allocate))
	}
	if d.Status == nil || !strings.Contains(d.Status.Message, "can never fit") {
		t.Errorf("status = %+v, want the kernel's reason", d.Status)
	}
	if d.RequeueAfter != 0 {
		t.Errorf("requeue after %s: a can-never-fit must not loop", d.RequeueAfter)
	}
}

func TestDecide_Removed(t *testing.T) {
	var w world
	w.running("web", 1, 2)
	d := Decide(w.view(nil, nil, nil, t0))
	if len(d.Kills) != 2 || d.Done {
		t.Fatalf("kills %v done %v, want both killed and not done", d.Kills, d.Done)
	}
	var empty world
	if d := Decide(empty.view(nil, nil, nil, t0)); !d.Done {
		t.Error("nothing left but not done")
	}
}

func TestDecide_IgnoresOtherServices(t *testing.T) {
	var w world
	w.running("db", 1, 2)
	w.add("", 1, 0, pb.AllocationState_ALLOCATION_STATE_GRANTED, "ag1")
	if got := Instances("web", w.allocs, w.tasks); len(got) != 0 {
		t.Errorf("instances of web = %d, want 0", len(got))
	}
}

func TestDecide_LostIsNoFailure(t *testing.T) {
	var w world
	a := w.add("web", 1, 0, pb.AllocationState_ALLOCATION_STATE_GRANTED, "ag1")
	w.task(a, pb.TaskState_TASK_STATE_LOST, false, 0, t0, t0)
	rec := record(t, "", 1, 1)
	d := Decide(w.view(rec, nil, nil, t0.Add(10*time.Millisecond)))
	if d.Status != nil && d.Status.Instances["0"] != nil && d.Status.Instances["0"].Failures != 0 {
		t.Errorf("a LOST task counted as a failure: %+v", d.Status.Instances["0"])
	}
	if len(d.Launch) != 0 || d.RequeueAfter == 0 {
		t.Errorf("launches %v requeue %s: want to wait for the kernel's revoke", d.Launch, d.RequeueAfter)
	}
	if d := Decide(w.view(rec, nil, nil, t0.Add(2*time.Second))); len(d.Launch) != 1 {
		t.Errorf("the allocation stayed but nothing was launched in it")
	}
}

func TestDecide_StalePendingAskedAgain(t *testing.T) {
	// Instance 1 was asked for while instance 0 ran on ag2; instance 0 has
	// moved to ag3 since: the pending request is revoked to be asked again.
	rec := record(t, "instances: 2\nconstraints: [{label: dcos.agent, op: UNIQUE}]\n", 1, 1)
	var w world
	a := w.add("web", 1, 0, pb.AllocationState_ALLOCATION_STATE_GRANTED, "ag3")
	w.task(a, pb.TaskState_TASK_STATE_RUNNING, true, 0, t0, t0)
	p := w.add("web", 1, 1, pb.AllocationState_ALLOCATION_STATE_PENDING, "")
	p.Constraints = []*pb.Constraint{{Label: "dcos.agent", Op: pb.Constraint_OP_NOT_EQUALS, Values: []string{"ag2"}}}
	d := Decide(w.view(rec, nil, nil, t0))
	if fmt.Sprint(killIDs(d.Kills)) != "["+p.GetId()+"]" {
		t.Errorf("kills = %v, want the stale pending %s", d.Kills, p.GetId())
	}
	p.Constraints[0].Values[0] = "ag3"
	if d := Decide(w.view(rec, nil, nil, t0)); len(d.Kills) != 0 {
		t.Errorf("kills = %v of a pending request that is up to date", d.Kills)
	}
}

func TestDecide_DelayedInstanceKeepsItsNumber(t *testing.T) {
	var w world
	w.running("web", 1, 1)
	st := &Status{Instances: map[string]*InstanceStatus{"1": {Failures: 2, DelayedUntil: t0.Add(time.Second)}}}
	d := Decide(w.view(record(t, "instances: 2\n", 1, 1), nil, st, t0))
	if len(d.Allocate) != 0 || d.RequeueAfter != time.Second {
		t.Errorf("allocations %v requeue %s: want instance 1 to wait 1s, no other number", instancesOf(d.Allocate), d.RequeueAfter)
	}
}

// BenchmarkDecide is one reconcile pass of a 1,000-instance service in a
// rolling upgrade (the hot path of a large service: every event of it
// runs one).
func BenchmarkDecide(b *testing.B) {
	var w world
	w.running("web", 1, 1000)
	svcs, err := Parse([]byte("name: web\ninstances: 1000\ncommand: sleep\nresources: {cpus: 0.001}\nupgradeStrategy: {minimumHealthCapacity: 0.9, maximumOverCapacity: 0.1}\n"))
	if err != nil {
		b.Fatal(err)
	}
	v := w.view(&Record{Spec: svcs[0], Version: 2, TemplateVersion: 2}, nil, nil, t0)
	b.ReportAllocs()
	for b.Loop() {
		d := Decide(v)
		if len(d.Allocate) == 0 {
			b.Fatal("no step")
		}
	}
}

// After a failed deployment the old version is what runs: an old instance
// whose allocation is revoked is allocated again with the old spec (from
// history), with its number, after its backoff; the new version is not.
func TestDecide_FailedDeploymentReplacesRevokedOld(t *testing.T) {
	var w world
	w.running("web", 1, 3)
	bad := w.add("web", 2, 0, pb.AllocationState_ALLOCATION_STATE_GRANTED, "ag4")
	tk := w.task(bad, pb.TaskState_TASK_STATE_RUNNING, false, pb.HealthState_HEALTH_STATE_UNHEALTHY, t0, t0)
	tk.HealthMessage = "GET /health: status 503"
	const spec = "instances: 3\nupgradeStrategy: {minimumHealthCapacity: 1, maximumOverCapacity: 0.34}\n"
	old := record(t, spec+"env: {V: one}\n", 1, 1)
	rec := record(t, spec+"env: {V: two}\n", 2, 2)
	olds := map[int64]*Service{1: &old.Spec}
	view := func(dep *Deployment, st *Status, now time.Time) View {
		v := w.view(rec, dep, st, now)
		v.Old = olds
		return v
	}
	d := Decide(view(&Deployment{SpecVersion: 2, TemplateVersion: 2, Status: DeploymentRunning}, nil, t0))
	if d.Deployment == nil || d.Deployment.Status != DeploymentFailed || d.Deployment.Fallback != 1 {
		t.Fatalf("deployment = %+v, want failed with fallback version 1", d.Deployment)
	}
	failed := d.Deployment
	// The new instance is gone; then the kernel revokes old instance 1.
	w.allocs = []*pb.Allocation{w.allocs[0], w.allocs[2]}
	d = Decide(view(failed, nil, t0))
	if got := fmt.Sprint(instancesOf(d.Allocate)); got != "[1/1]" {
		t.Fatalf("allocations = %s, want old instance 1 again at version 1", got)
	}
	if len(d.Kills) != 0 || d.Deployment != nil {
		t.Errorf("kills %v deployment %+v, want neither", d.Kills, d.Deployment)
	}
	// Its replacement launches with the old spec.
	a := w.add("web", 1, 1, pb.AllocationState_ALLOCATION_STATE_GRANTED, "ag2")
	d = Decide(view(failed, nil, t0))
	if len(d.Allocate) != 0 || len(d.Launch) != 1 || d.Launch[0].GetAllocationId() != a.GetId() || d.Launch[0].GetEnv()["V"] != "one" ||
		d.Launch[0].GetLabels()[LabelVersion] != "1" {
		t.Fatalf("allocations %v launches %v, want old instance 1 launched with version 1's spec", instancesOf(d.Allocate), d.Launch)
	}
	// Even once every old instance is gone, the fallback version is kept.
	w.allocs = nil
	d = Decide(view(failed, nil, t0))
	if got := fmt.Sprint(instancesOf(d.Allocate)); got != "[1/0 1/1 1/2]" {
		t.Errorf("allocations = %s, want instances 0-2 at version 1", got)
	}
	// A number in its restart backoff waits.
	st := &Status{Instances: map[string]*InstanceStatus{"2": {Failures: 1, DelayedUntil: t0.Add(time.Minute)}}}
	d = Decide(view(failed, st, t0))
	if got := fmt.Sprint(instancesOf(d.Allocate)); got != "[1/0 1/1]" || d.RequeueAfter != time.Minute {
		t.Errorf("allocations = %s requeue %v, want instances 0 and 1, instance 2 after a minute", got, d.RequeueAfter)
	}
	// Without the old spec in history, nothing to start from.
	olds = nil
	if d := Decide(view(failed, nil, t0)); len(d.Allocate) != 0 {
		t.Errorf("allocations = %s without the old spec", instancesOf(d.Allocate))
	}
}
