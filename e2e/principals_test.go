package e2e

import (
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestPrincipals_FrameworksAreIsolated checks the token roles over the
// wire: a framework sees and touches only its own allocations and tasks
// (another's ids answer NotFound, as unknown ones do),
// the operator sees all, an agent may not allocate, and a call without a
// (known) token is Unauthenticated.
func TestPrincipals_FrameworksAreIsolated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opTok, aTok, bTok, agentTok := newToken(), newToken(), newToken(), newToken()
	e.writeTokens(e.path("data", "tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: aTok, Name: "fw-a", Role: "framework"},
		tokenEntry{Token: bTok, Name: "fw-b", Role: "framework"},
		tokenEntry{Token: agentTok, Name: "node", Role: "agent"},
	)
	e.startDev("--resources", "cpus=2,mem=1Gi")
	if e.opToken != opTok {
		t.Fatalf("dcosd dev wrote operator token %q to the client config, want the one of the tokens file", e.opToken)
	}
	op, fwA, fwB := e.op(), e.client(aTok), e.client(bTok)
	rev0 := listAgents(t, op).GetRevision()
	wB := e.watch(fwB, rev0)

	allocA := allocateOne(t, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.25, MemBytes: 32 * mi}})
	if allocA.GetOwner() != "fw-a" {
		t.Errorf("fw-a's allocation has owner %q", allocA.GetOwner())
	}
	taskA := launch(t, fwA, sleepTask(allocA.GetId()))
	allocB := allocateOne(t, fwB, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.25, MemBytes: 32 * mi}})

	// fw-a sees its own (the control for the checks below); fw-b only its own.
	if got := ids(listTasks(t, fwA).GetTasks(), (*pb.Task).GetId); !slices.Equal(got, []string{taskA.GetId()}) {
		t.Errorf("fw-a's ListTasks = %v, want its own %s", got, taskA.GetId())
	}
	if got := ids(listAllocations(t, fwB).GetAllocations(), (*pb.Allocation).GetId); !slices.Equal(got, []string{allocB.GetId()}) {
		t.Errorf("fw-b's ListAllocations = %v, want only its own %s", got, allocB.GetId())
	}
	for _, tk := range listTasks(t, fwB).GetTasks() {
		if tk.GetOwner() != "fw-b" {
			t.Errorf("fw-b's ListTasks shows %s of %s", tk.GetId(), tk.GetOwner())
		}
	}
	// fw-b's watch saw its own allocation, and nothing of fw-a.
	wB.waitFor(t, "fw-b's ALLOCATION_GRANTED", allocEvent(allocB.GetId(), pb.EventKind_EVENT_KIND_ALLOCATION_GRANTED))
	for _, ev := range wB.snapshot() {
		if ev.GetAllocation().GetOwner() == "fw-a" || ev.GetTask().GetOwner() == "fw-a" {
			t.Errorf("fw-b's Watch shows fw-a's event %s", eventString(ev))
		}
	}

	// fw-b may not touch fw-a's objects.
	calls := []struct {
		name string
		call func() error
		want connect.Code
	}{
		// Another framework's ids are NotFound, like unknown ones, so that
		// they cannot be probed.
		{"fw-b launches in fw-a's allocation", func() error {
			_, err := fwB.Launch(ctx(t), connect.NewRequest(&pb.LaunchRequest{AllocationId: allocA.GetId(), Command: "true"}))
			return err
		}, connect.CodeNotFound},
		{"fw-b revokes fw-a's allocation", func() error {
			_, err := fwB.Revoke(ctx(t), connect.NewRequest(&pb.RevokeRequest{Id: allocA.GetId()}))
			return err
		}, connect.CodeNotFound},
		{"fw-b revokes fw-a's task", func() error {
			_, err := fwB.Revoke(ctx(t), connect.NewRequest(&pb.RevokeRequest{Id: taskA.GetId()}))
			return err
		}, connect.CodeNotFound},
		{"no token", func() error {
			_, err := e.client("").ListAllocations(ctx(t), connect.NewRequest(&pb.ListAllocationsRequest{}))
			return err
		}, connect.CodeUnauthenticated},
		{"unknown token", func() error {
			_, err := e.client(newToken()).Allocate(ctx(t), connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: mi}}))
			return err
		}, connect.CodeUnauthenticated},
		{"agent allocates", func() error {
			_, err := e.client(agentTok).Allocate(ctx(t), connect.NewRequest(&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: mi}}))
			return err
		}, connect.CodePermissionDenied},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if code := connect.CodeOf(err); code != c.want {
				t.Errorf("err = %v (code %v), want %v", err, code, c.want)
			}
			var ce *connect.Error
			if errors.As(err, &ce) && ce.Message() == "" {
				t.Errorf("error %v has no message", err)
			}
		})
	}

	// The operator sees both, and fw-a's objects are untouched.
	got := ids(listAllocations(t, op).GetAllocations(), (*pb.Allocation).GetId)
	slices.Sort(got)
	want := []string{allocA.GetId(), allocB.GetId()}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("operator's ListAllocations = %v, want %v", got, want)
	}
	eventually(t, "operator sees fw-a's task RUNNING", func() (bool, string) {
		ts := listTasks(t, op).GetTasks()
		for _, tk := range ts {
			if tk.GetId() == taskA.GetId() && tk.GetOwner() == "fw-a" && tk.GetState() == pb.TaskState_TASK_STATE_RUNNING {
				e.notePID(tk.GetPid())
				return true, ""
			}
		}
		return false, sprint(ts)
	})
}

// TestPrincipals_AgentIdentity runs dcosd kernel with two real agents,
// each with its own token, and replays with agent b's token every
// impersonation of agent a the hardening issue found: each is
// PermissionDenied naming agent_id, and the kernel's records (agents,
// allocations, tasks, volumes, as an operator lists them) are unchanged;
// a's task keeps running. An id the kernel never issued is refused; b's
// token lists none of a's tasks (nor their env); b's heartbeats for a do
// not keep a stopped agent a UP. Task users: a role may run tasks as
// root only when dcosd --role-users allows it.
func TestPrincipals_AgentIdentity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	opTok, fwTok, aTok, bTok, cTok := newToken(), newToken(), newToken(), newToken(), newToken()
	tokens := e.writeTokens(e.path("tokens.json"),
		tokenEntry{Token: opTok, Name: "ops", Role: "operator"},
		tokenEntry{Token: fwTok, Name: "fw", Role: "framework"},
		tokenEntry{Token: aTok, Name: "agents-a", Role: "agent"},
		tokenEntry{Token: bTok, Name: "agents-b", Role: "agent"},
		tokenEntry{Token: cTok, Name: "agents-c", Role: "agent"},
	)
	e.startKernel(tokens, opTok, "--heartbeat-interval", "200ms", "--heartbeat-timeout", "3s", "--role-users", "db=root,postgres")
	op, fw, agB := e.op(), e.client(fwTok), e.agentClient(bTok) // over TLS agents present their certificate
	agA, idA := e.startAgent("a", aTok, "--resources", "cpus=2,mem=1Gi")
	_, idB := e.startAgent("b", bTok, "--resources", "cpus=2,mem=1Gi")
	for _, g := range listAgents(t, op).GetAgents() {
		if want := map[string]string{idA: "agents-a", idB: "agents-b"}[g.GetId()]; g.GetPrincipal() != want {
			t.Errorf("agent %s: principal %q, want %q", g.GetId(), g.GetPrincipal(), want)
		}
	}
	w := e.watch(op, listAgents(t, op).GetRevision())

	alloc := allocateOne(t, fw, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.25, MemBytes: 32 * mi},
		Constraints: []*pb.Constraint{{Label: "e2e", Op: pb.Constraint_OP_EQUALS, Values: []string{"a"}}}})
	req := sleepTask(alloc.GetId())
	req.Env = map[string]string{"SECRET": "s3cr3t"}
	task := launch(t, fw, req)
	running := w.waitFor(t, "RUNNING of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_RUNNING)).GetTask()
	e.notePID(running.GetPid())
	if running.GetAgentId() != idA {
		t.Fatalf("task on %s, want agent a %s", running.GetAgentId(), idA)
	}

	// records is what an operator lists, without what live agents change
	// on their own (heartbeat times, plugin health, usage).
	records := func() []proto.Message {
		ags, ts, as := listAgents(t, op).GetAgents(), listTasks(t, op).GetTasks(), listAllocations(t, op).GetAllocations()
		for _, g := range ags {
			g.LastHeartbeat, g.Plugins = nil, nil
		}
		for _, k := range ts {
			k.Usage = nil
		}
		for _, a := range as {
			a.Usage = nil
		}
		vs, err := op.ListVolumes(ctx(t), connect.NewRequest(&pb.ListVolumesRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		byID := func(a, b interface{ GetId() string }) int { return strings.Compare(a.GetId(), b.GetId()) }
		slices.SortFunc(ags, func(a, b *pb.Agent) int { return byID(a, b) })
		slices.SortFunc(ts, func(a, b *pb.Task) int { return byID(a, b) })
		slices.SortFunc(as, func(a, b *pb.Allocation) int { return byID(a, b) })
		return []proto.Message{&pb.ListAgentsResponse{Agents: ags}, &pb.ListTasksResponse{Tasks: ts},
			&pb.ListAllocationsResponse{Allocations: as}, vs.Msg}
	}
	before := records()

	sandbox := running.GetSandbox()
	calls := []struct {
		name string
		call func() error
		want connect.Code
	}{
		{"b reports a's task FINISHED as a", func() error {
			_, err := agB.ReportTaskStatus(ctx(t), connect.NewRequest(&pb.ReportTaskStatusRequest{AgentId: idA, TaskId: task.GetId(), State: pb.TaskState_TASK_STATE_FINISHED}))
			return err
		}, connect.CodePermissionDenied},
		{"b reports a's task FINISHED as itself", func() error {
			_, err := agB.ReportTaskStatus(ctx(t), connect.NewRequest(&pb.ReportTaskStatusRequest{AgentId: idB, TaskId: task.GetId(), State: pb.TaskState_TASK_STATE_FINISHED}))
			return err
		}, connect.CodePermissionDenied},
		{"b rewrites a's task's ip, ports and sandbox", func() error {
			_, err := agB.ReportTaskStatus(ctx(t), connect.NewRequest(&pb.ReportTaskStatusRequest{AgentId: idA, TaskId: task.GetId(), State: pb.TaskState_TASK_STATE_RUNNING,
				Pid: 1, Ip: "10.88.200.1", Sandbox: sandbox + "/../../..", Ports: []*pb.PortMapping{{Name: "x", ContainerPort: 22, HostPort: 22}}}))
			return err
		}, connect.CodePermissionDenied},
		{"b registers as a with 99,999 cpus and ports 1-65535", func() error {
			_, err := agB.RegisterAgent(ctx(t), connect.NewRequest(&pb.RegisterAgentRequest{AgentId: idA, HostPorts: "1-65535",
				Resources: &pb.Resources{Cpus: 99_999, MemBytes: 1 << 40}}))
			return err
		}, connect.CodePermissionDenied},
		{"b registers as a with a 1 PiB volume of another framework's", func() error {
			_, err := agB.RegisterAgent(ctx(t), connect.NewRequest(&pb.RegisterAgentRequest{AgentId: idA,
				Resources: &pb.Resources{Cpus: 2, MemBytes: 1 << 30, DiskBytes: 1 << 50},
				Volumes:   []*pb.Volume{{Name: "stolen", Role: "db", SizeBytes: 1 << 50, Owner: "other"}}}))
			return err
		}, connect.CodePermissionDenied},
		{"b heartbeats for a", func() error {
			_, err := agB.Heartbeat(ctx(t), connect.NewRequest(&pb.HeartbeatRequest{AgentId: idA}))
			return err
		}, connect.CodePermissionDenied},
		{"an unbound token registers an id never issued", func() error {
			_, err := e.agentClient(cTok).RegisterAgent(ctx(t), connect.NewRequest(&pb.RegisterAgentRequest{AgentId: "agent-999", Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 30}}))
			return err
		}, connect.CodeNotFound},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			var ce *connect.Error
			if code := connect.CodeOf(err); code != c.want || !errors.As(err, &ce) || !strings.HasPrefix(ce.Message(), "agent_id: ") {
				t.Errorf("err = %v (code %v), want %v naming agent_id", err, code, c.want)
			}
		})
	}
	if after := records(); !slices.EqualFunc(before, after, proto.Equal) {
		t.Errorf("the refused calls changed the kernel's records:\nbefore %v\nafter  %v", before, after)
	}
	if !alive(int(running.GetPid())) {
		t.Errorf("a's task pid %d died", running.GetPid())
	}

	// b's token lists nothing of a's, whatever it filters on.
	for _, filter := range []string{"", idA} {
		res, err := agB.ListTasks(ctx(t), connect.NewRequest(&pb.ListTasksRequest{AgentId: filter}))
		if err != nil || len(res.Msg.GetTasks()) != 0 {
			t.Errorf("b's ListTasks(agent_id %q) = %v, %v; want none of a's tasks", filter, res.Msg.GetTasks(), err)
		}
		al, err := agB.ListAllocations(ctx(t), connect.NewRequest(&pb.ListAllocationsRequest{AgentId: filter}))
		if err != nil || len(al.Msg.GetAllocations()) != 0 {
			t.Errorf("b's ListAllocations(agent_id %q) = %v, %v; want none of a's", filter, al.Msg.GetAllocations(), err)
		}
	}
	if res, err := e.agentClient(aTok).ListTasks(ctx(t), connect.NewRequest(&pb.ListTasksRequest{AgentId: idA})); err != nil || len(res.Msg.GetTasks()) != 1 || res.Msg.GetTasks()[0].GetEnv()["SECRET"] != "s3cr3t" {
		t.Errorf("a's own ListTasks = %v, %v; want its task with its env", res.Msg.GetTasks(), err)
	}

	// Task users: only where --role-users allows.
	for _, tc := range []struct {
		role, user string
		ok         bool
	}{
		{"web", "root", false},
		{"db", "root", true},
		{"db", "www", false},
	} {
		al := allocateOne(t, fw, &pb.AllocateRequest{Role: tc.role, Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}})
		res, err := fw.Launch(ctx(t), connect.NewRequest(&pb.LaunchRequest{AllocationId: al.GetId(), Command: "true", User: tc.user}))
		switch want := `user: role "` + tc.role + `" may not run tasks as "` + tc.user + `" (dcosd --role-users)`; {
		case tc.ok != (err == nil) || (err != nil && connect.CodeOf(err) != connect.CodePermissionDenied):
			t.Errorf("launch as %s in role %s: %v, want ok %v (else PermissionDenied)", tc.user, tc.role, err, tc.ok)
		case err == nil && res.Msg.GetTask().GetUser() != tc.user:
			t.Errorf("launched task's user = %q, want %q", res.Msg.GetTask().GetUser(), tc.user)
		case err != nil && !strings.Contains(err.Error(), want):
			t.Errorf("refusal %q, want %q", err, want)
		}
		revoke(t, fw, al.GetId())
	}

	// A stopped agent a goes LOST although b heartbeats for it.
	agA.signal(syscall.SIGSTOP)
	defer agA.signal(syscall.SIGCONT)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				agB.Heartbeat(ctx(t), connect.NewRequest(&pb.HeartbeatRequest{AgentId: idA}))
			}
		}
	}()
	w.waitFor(t, "AGENT_LOST of a despite b's heartbeats for it", agentEvent(idA, pb.EventKind_EVENT_KIND_AGENT_LOST))
	close(stop)
}
