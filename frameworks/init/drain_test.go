package dinit

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// TestDecide_Drain walks a drain of a 3-instance service with
// minimumHealthCapacity 1.0, 2 instances on draining agent ag1: both
// replacements start first, and each old one stops only once a
// replacement is ready.
func TestDecide_Drain(t *testing.T) {
	rec := record(t, "instances: 3\nupgradeStrategy: {minimumHealthCapacity: 1, maximumOverCapacity: 1}\n", 1, 1)
	dep := &Deployment{SpecVersion: 1, TemplateVersion: 1, Status: DeploymentSucceeded}
	var w world
	var on1 []*pb.Allocation
	for i, ag := range []string{"ag1", "ag1", "ag2"} {
		a := w.add("web", 1, i, pb.AllocationState_ALLOCATION_STATE_GRANTED, ag)
		w.task(a, pb.TaskState_TASK_STATE_RUNNING, true, pb.HealthState_HEALTH_STATE_HEALTHY, t0, t0)
		if ag == "ag1" {
			on1 = append(on1, a)
		}
	}
	view := func() View {
		v := w.view(rec, dep, nil, t0)
		v.Draining = map[string]bool{"ag1": true}
		return v
	}

	// 1. Nothing is ready elsewhere yet: start both, kill nothing.
	d := Decide(view())
	if len(d.Kills) != 0 || fmt.Sprint(instancesOf(d.Allocate)) != "[1/0 1/1]" {
		t.Fatalf("step 1: kills %v allocations %v, want none and instances 0 and 1", d.Kills, instancesOf(d.Allocate))
	}
	if d.Deployment != nil {
		t.Errorf("a drain changed the deployment: %+v", d.Deployment)
	}
	// 2. Both replacements granted on ag3, one running but not ready: no
	// kill, nothing more to start.
	r0 := w.add("web", 1, 0, pb.AllocationState_ALLOCATION_STATE_GRANTED, "ag3")
	r1 := w.add("web", 1, 1, pb.AllocationState_ALLOCATION_STATE_GRANTED, "ag3")
	w.task(r0, pb.TaskState_TASK_STATE_RUNNING, false, pb.HealthState_HEALTH_STATE_UNKNOWN, t0, t0)
	d = Decide(view())
	if len(d.Kills) != 0 || len(d.Allocate) != 0 {
		t.Fatalf("step 2: kills %v allocations %v, want none", d.Kills, instancesOf(d.Allocate))
	}
	if len(d.Launch) != 1 || d.Launch[0].GetAllocationId() != r1.GetId() {
		t.Fatalf("step 2: launches %v, want one into %s", d.Launch, r1.GetId())
	}
	// 3. One replacement ready: exactly one old one goes, with the drain
	// as its reason.
	w.tasks[len(w.tasks)-1].Ready = true
	w.task(r1, pb.TaskState_TASK_STATE_STARTING, false, pb.HealthState_HEALTH_STATE_UNKNOWN, t0, t0)
	d = Decide(view())
	if len(d.Kills) != 1 || !strings.Contains(d.Kills[0].Reason, "agent ag1 is draining") {
		t.Fatalf("step 3: kills %v, want one for the drain", d.Kills)
	}
	if id := d.Kills[0].ID; id != on1[0].GetId() && id != on1[1].GetId() {
		t.Fatalf("step 3 killed %s, not an instance on ag1", id)
	}
	// 4. Both ready: the other goes too; nothing new starts.
	w.tasks[len(w.tasks)-1].State, w.tasks[len(w.tasks)-1].Ready = pb.TaskState_TASK_STATE_RUNNING, true
	d = Decide(view())
	if fmt.Sprint(killIDs(d.Kills)) != fmt.Sprint(killIDs([]Kill{{ID: on1[0].GetId()}, {ID: on1[1].GetId()}})) || len(d.Allocate) != 0 {
		t.Fatalf("step 4: kills %v allocations %v, want both ag1 instances and no allocation", d.Kills, instancesOf(d.Allocate))
	}
	// Undrained before the kills land: nothing moves back; the extra
	// instances are a scale down.
	v := view()
	v.Draining = nil
	if d := Decide(v); len(d.Kills) != 2 || len(d.Allocate) != 0 {
		t.Fatalf("undrained: kills %v allocations %v, want the 2 extra killed", d.Kills, instancesOf(d.Allocate))
	}
}

// TestDecide_DrainKeepsPersistent: an instance with a persistent volume
// stays on its draining agent (its data is there).
func TestDecide_DrainKeepsPersistent(t *testing.T) {
	rec := record(t, "instances: 1\nvolumes: [{name: data, size: 1Gi, path: data}]\n", 1, 1)
	var w world
	w.running("web", 1, 1)
	v := w.view(rec, &Deployment{SpecVersion: 1, TemplateVersion: 1, Status: DeploymentSucceeded}, nil, t0)
	v.Draining = map[string]bool{"ag1": true}
	if d := Decide(v); len(d.Kills)+len(d.Allocate) != 0 {
		t.Fatalf("kills %v allocations %v, want none", d.Kills, instancesOf(d.Allocate))
	}
}

// drainAgent calls AgentDrain as the operator (the SDK is for frameworks
// and has no admin calls).
func (c *cluster) drainAgent(ctx context.Context, req *pb.AgentDrainRequest) {
	c.t.Helper()
	k := syscallsv1connect.NewKernelClient(http.DefaultClient, c.url)
	r := connect.NewRequest(req)
	r.Header().Set("Authorization", "Bearer "+opToken)
	if _, err := k.AgentDrain(ctx, r); err != nil {
		c.t.Fatal(err)
	}
}

const drainYAML = `name: web
instances: 3
command: sleep
args: ['slow']
resources: {cpus: 0.1, mem: 16Mi}
constraints: [{label: node, op: MAX_PER, max: 2}]
upgradeStrategy: {minimumHealthCapacity: 1, maximumOverCapacity: 1}
`

// TestRun_Drain drains the agent holding 2 of a service's 3 instances
// (minimumHealthCapacity 1): the event stream shows each replacement
// ready elsewhere before an instance on the draining agent stops, and the
// agent ends with nothing.
func TestRun_Drain(t *testing.T) {
	c := startCluster(t, 5*time.Second)
	c.readyAfter = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a0 := c.addAgent(ctx, 0)
	c.addAgent(ctx, 1)
	r := c.startInit(ctx, "r1")
	defer r.stop(t)
	c.apply(ctx, drainYAML, false)
	eventually(t, "3 ready instances", func() bool { return c.view(ctx, "web").ready == 3 })
	old := map[string]bool{}
	for _, a := range c.view(ctx, "web").allocs {
		if a.GetAgentId() == a0.id {
			old[a.GetId()] = true
		}
	}
	if len(old) != 2 {
		t.Fatalf("%d instances on %s, want 2 (MAX_PER 2, first fit)", len(old), a0.id)
	}
	c.addAgent(ctx, 2)

	// Watch from now: the order of readiness and revocations.
	type step struct {
		revoked string // an old allocation revoked, or
		ready   string // a replacement's allocation turned ready
	}
	var (
		mu    sync.Mutex
		steps []step
	)
	start, err := c.op.ListAgents(ctx, &pb.ListAgentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go c.op.Watch(wctx, &pb.WatchRequest{AfterRevision: start.GetRevision()}, func(ev *pb.Event) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case ev.GetKind() == pb.EventKind_EVENT_KIND_ALLOCATION_REVOKED && old[ev.GetAllocation().GetId()]:
			steps = append(steps, step{revoked: ev.GetAllocation().GetId()})
		case ev.GetTask() != nil && ev.GetTask().GetReady() && ev.GetTask().GetLabels()[LabelService] == "web" && !old[ev.GetTask().GetAllocationId()]:
			steps = append(steps, step{ready: ev.GetTask().GetAllocationId()})
		}
		return nil
	})
	c.drainAgent(ctx, &pb.AgentDrainRequest{AgentId: a0.id})

	eventually(t, "the drained agent empty and 3 ready elsewhere", func() bool {
		l, err := c.op.ListAllocations(ctx, &pb.ListAllocationsRequest{AgentId: a0.id})
		v := c.view(ctx, "web")
		return err == nil && len(l.GetAllocations()) == 0 && v.ready == 3 && len(v.allocs) == 3
	})
	eventually(t, "both revocations watched", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range steps {
			if s.revoked != "" {
				n++
			}
		}
		return n == 2
	})
	mu.Lock()
	defer mu.Unlock()
	t.Logf("steps: %+v", steps)
	ready, revoked := map[string]bool{}, 0
	for _, s := range steps {
		if s.ready != "" {
			ready[s.ready] = true
			continue
		}
		revoked++
		// The ready instances before this stop: the one on the other old
		// agent, and at least one replacement per stop so far.
		if len(ready) < revoked {
			t.Fatalf("instance %s stopped after only %d replacements ready (stop %d): %+v", s.revoked, len(ready), revoked, steps)
		}
	}
	for _, a := range c.view(ctx, "web").allocs {
		if a.GetAgentId() == a0.id {
			t.Fatalf("instance %s still on the drained agent", a.GetId())
		}
	}
}
