package kernel

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

var (
	agentsA = Principal{Name: "agents-a", Role: RoleAgent}
	agentsB = Principal{Name: "agents-b", Role: RoleAgent}
	agentsC = Principal{Name: "agents-c", Role: RoleAgent}
)

// tableState is what a caller can learn of tb (an operator's lists, sorted)
// plus the bindings and the id sequence: what a refused call must not change.
type tableState struct {
	msgs  []proto.Message
	bound map[string]string
	seq   uint64
}

func snapshotOf(tb *Table) tableState {
	byID := func(a, b interface{ GetId() string }) int { return strings.Compare(a.GetId(), b.GetId()) }
	ags, ts, as := tb.Agents(), tb.Tasks(ops, "", ""), tb.Allocations(ops, "")
	slices.SortFunc(ags, func(a, b *pb.Agent) int { return byID(a, b) })
	slices.SortFunc(ts, func(a, b *pb.Task) int { return byID(a, b) })
	slices.SortFunc(as, func(a, b *pb.Allocation) int { return byID(a, b) })
	return tableState{
		msgs: []proto.Message{&pb.ListAgentsResponse{Agents: ags}, &pb.ListTasksResponse{Tasks: ts},
			&pb.ListAllocationsResponse{Allocations: as}, &pb.ListVolumesResponse{Volumes: tb.Volumes(ops, "")}},
		bound: maps.Clone(tb.bound), seq: tb.seq,
	}
}

func (s tableState) equal(o tableState) bool {
	return slices.EqualFunc(s.msgs, o.msgs, proto.Equal) && maps.Equal(s.bound, o.bound) && s.seq == o.seq
}

// twoAgents builds a table with agent-1 (token agents-a) running a bridge
// task of fw-a's with a host port and env, RUNNING at 10.88.0.2, and
// agent-2 (token agents-b).
func twoAgents(t *testing.T) (tb *Table, task *pb.Task) {
	t.Helper()
	tb = NewTable()
	reg := func(p Principal) string {
		resp, err := tb.Register(p, &pb.RegisterAgentRequest{Hostname: p.Name, HostPorts: "31000-31009",
			Resources: &pb.Resources{Cpus: 2, MemBytes: 1024 * mi, DiskBytes: 1024 * mi}}, t0, newChanges())
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetAgentId()
	}
	if a, b := reg(agentsA), reg(agentsB); a != "agent-1" || b != "agent-2" {
		t.Fatalf("agents %s, %s", a, b)
	}
	as, _ := allocate(tb, fwA, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 64 * mi, Ports: 1},
		Constraints: []*pb.Constraint{{Label: AgentLabel, Op: pb.Constraint_OP_EQUALS, Values: []string{"agent-1"}}}})
	task, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "x", Network: NetworkBridge,
		Env: map[string]string{"SECRET": "s3"}, Ports: []*pb.PortRequest{{Name: "http", ContainerPort: 80}}}, t0, newChanges())
	if err != nil {
		t.Fatal(err)
	}
	if err := tb.Report(agentsA, &pb.ReportTaskStatusRequest{TaskId: task.GetId(), AgentId: "agent-1", State: pb.TaskState_TASK_STATE_RUNNING,
		Pid: 7, Ip: "10.88.0.2", Sandbox: "/var/lib/dcos/agent/sandboxes/" + task.GetId(), Ports: task.GetPorts()}, t0, newChanges()); err != nil {
		t.Fatalf("agent-1's own RUNNING report: %v", err)
	}
	return tb, proto.Clone(tb.tasks[task.GetId()]).(*pb.Task)
}

// TestTable_AgentImpersonation replays every impersonation of the
// hardening issue with a second agent's token: each is PermissionDenied
// naming the field, and the table is exactly as before.
func TestTable_AgentImpersonation(t *testing.T) {
	tb, task := twoAgents(t)
	huge := &pb.RegisterAgentRequest{AgentId: "agent-1", HostPorts: "1-65535",
		Resources: &pb.Resources{Cpus: 99_999, MemBytes: 1 << 40, DiskBytes: 1 << 50}}
	tests := []struct {
		name string
		call func(c *Changes) error
		msg  string
	}{
		{"report FINISHED as agent-1", func(c *Changes) error {
			return tb.Report(agentsB, &pb.ReportTaskStatusRequest{TaskId: task.GetId(), AgentId: "agent-1", State: pb.TaskState_TASK_STATE_FINISHED}, t0, c)
		}, `agent_id: agent "agent-1" belongs to token "agents-a", not "agents-b"`},
		{"report FINISHED for agent-1's task as itself", func(c *Changes) error {
			return tb.Report(agentsB, &pb.ReportTaskStatusRequest{TaskId: task.GetId(), AgentId: "agent-2", State: pb.TaskState_TASK_STATE_FINISHED}, t0, c)
		}, "agent_id: task \"" + task.GetId() + "\" runs on agent-1, not agent-2"},
		{"report RUNNING with another ip, ports and sandbox", func(c *Changes) error {
			return tb.Report(agentsB, &pb.ReportTaskStatusRequest{TaskId: task.GetId(), AgentId: "agent-1", State: pb.TaskState_TASK_STATE_RUNNING,
				Pid: 666, Ip: "10.88.1.66", Sandbox: "/etc", Ports: []*pb.PortMapping{{Name: "http", ContainerPort: 80, HostPort: 22}}}, t0, c)
		}, `agent_id: agent "agent-1" belongs to token "agents-a"`},
		{"register as agent-1 with 99,999 cpus and ports 1-65535", func(c *Changes) error {
			_, err := tb.Register(agentsB, huge, t0, c)
			return err
		}, `agent_id: agent "agent-1" belongs to token "agents-a", not "agents-b"`},
		{"register as agent-1 with a 1 PiB volume of fw-b's", func(c *Changes) error {
			r := agentReq(2, 1024, nil)
			r.AgentId, r.Volumes = "agent-1", []*pb.Volume{{Name: "stolen", Role: "db", SizeBytes: 1 << 50, Owner: "fw-b"}}
			_, err := tb.Register(agentsB, r, t0, c)
			return err
		}, `agent_id: agent "agent-1" belongs to token "agents-a"`},
		{"heartbeat agent-1", func(*Changes) error {
			return tb.Heartbeat(agentsB, &pb.HeartbeatRequest{AgentId: "agent-1"}, t0.Add(time.Hour))
		}, `agent_id: agent "agent-1" belongs to token "agents-a", not "agents-b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshotOf(tb)
			c := newChanges()
			err := tt.call(c)
			if CodeOf(err) != PermissionDenied || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %v (%v), want PermissionDenied %q", err, CodeOf(err), tt.msg)
			}
			if !c.Empty() {
				t.Errorf("refused call recorded changes: %+v", c)
			}
			if !before.equal(snapshotOf(tb)) {
				t.Errorf("refused call changed the table")
			}
		})
	}
	// The heartbeat above did not keep agent-1 alive.
	c := newChanges()
	tb.Heartbeat(agentsB, &pb.HeartbeatRequest{AgentId: "agent-2"}, t0.Add(11*time.Second))
	tb.Expire(t0.Add(11*time.Second), 10*time.Second, c)
	if tb.agents["agent-1"].GetState() != pb.AgentState_AGENT_STATE_LOST || tb.agents["agent-2"].GetState() != pb.AgentState_AGENT_STATE_UP {
		t.Errorf("after agent-2's heartbeats only: agent-1 %v, agent-2 %v; want LOST, UP", tb.agents["agent-1"].GetState(), tb.agents["agent-2"].GetState())
	}
}

// TestTable_AgentIDsNeverIssued: a registration with an id the kernel
// never issued is NotFound and changes nothing, so that the id is not
// issued to another agent later; a new agent registers with an empty id.
// (agent-6 is the id the next new agent gets.)
func TestTable_AgentIDsNeverIssued(t *testing.T) {
	tb, _ := twoAgents(t)
	for _, p := range []Principal{agentsC, ops} {
		before := snapshotOf(tb)
		c := newChanges()
		_, err := tb.Register(p, &pb.RegisterAgentRequest{AgentId: "agent-6", Resources: &pb.Resources{Cpus: 1, MemBytes: mi}}, t0, c)
		if CodeOf(err) != NotFound || !strings.Contains(err.Error(), "never issued") {
			t.Errorf("%s registers as agent-6: %v, want NotFound (never issued)", p.Name, err)
		}
		if !c.Empty() || !before.equal(snapshotOf(tb)) {
			t.Errorf("%s: refused registration changed the table", p.Name)
		}
	}
	resp, err := tb.Register(agentsC, &pb.RegisterAgentRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: mi}}, t0, newChanges())
	if err != nil || resp.GetAgentId() != "agent-6" || len(resp.GetTasks()) != 0 || resp.GetSubnet() != "10.88.2.0/24" {
		t.Fatalf("new agent: %v, %v; want agent-6 with no tasks and its own subnet", resp, err)
	}
	if g := tb.agents["agent-6"]; g.GetPrincipal() != "agents-c" {
		t.Errorf("agent-6's principal = %q, want agents-c", g.GetPrincipal())
	}
}

// TestTable_AgentBinding: an agent's own token keeps working across
// re-registration (the restart of an agent); operators may act for any
// agent; an agent saved before tokens were bound is bound by its next
// registration (until then an agent token's heartbeat is told to
// register).
func TestTable_AgentBinding(t *testing.T) {
	tb, task := twoAgents(t)
	if g := tb.agents["agent-1"]; g.GetPrincipal() != "agents-a" {
		t.Fatalf("agent-1's principal = %q, want agents-a", g.GetPrincipal())
	}
	resp, err := tb.Register(agentsA, &pb.RegisterAgentRequest{AgentId: "agent-1", HostPorts: "31000-31009",
		Resources: &pb.Resources{Cpus: 4, MemBytes: 1024 * mi}, RunningTaskIds: []string{task.GetId()}}, t0, newChanges())
	if err != nil || len(resp.GetTasks()) != 1 {
		t.Fatalf("agent-1 registers again with its own token: %v, %v", resp, err)
	}
	if err := tb.Heartbeat(agentsA, &pb.HeartbeatRequest{AgentId: "agent-1"}, t0); err != nil {
		t.Errorf("agent-1's own heartbeat: %v", err)
	}
	// A bound token registering with an empty id (its node lost its data
	// dir, or the answer to its first registration) is its own agent
	// again, not a second one.
	nAgents := len(tb.agents)
	resp, err = tb.Register(agentsA, &pb.RegisterAgentRequest{HostPorts: "31000-31009", Resources: &pb.Resources{Cpus: 4, MemBytes: 1024 * mi}}, t0, newChanges())
	if err != nil || resp.GetAgentId() != "agent-1" || len(resp.GetTasks()) != 1 || len(tb.agents) != nAgents {
		t.Fatalf("agents-a registers with an empty id: %v, %v (%d agents, were %d); want agent-1 again with its task", resp, err, len(tb.agents), nAgents)
	}
	if err := tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-2"}, t0); err != nil {
		t.Errorf("operator heartbeats agent-2: %v", err)
	}
	if _, err := tb.Register(ops, &pb.RegisterAgentRequest{AgentId: "agent-2", Resources: &pb.Resources{Cpus: 1, MemBytes: mi}}, t0, newChanges()); err != nil {
		t.Errorf("operator registers agent-2: %v", err)
	}
	if g := tb.agents["agent-2"]; g.GetPrincipal() != "agents-b" {
		t.Errorf("an operator's registration rebound agent-2 to %q", g.GetPrincipal())
	}

	// Restored from before binding: no principal.
	old := Restore(&State{Agents: []*pb.Agent{{Id: "agent-1", State: pb.AgentState_AGENT_STATE_UP}, {Id: "agent-2", State: pb.AgentState_AGENT_STATE_UP}}, Seq: 2}, t0)
	if err := old.Heartbeat(agentsA, &pb.HeartbeatRequest{AgentId: "agent-1"}, t0); CodeOf(err) != FailedPrecondition {
		t.Errorf("unbound agent's heartbeat: %v, want FailedPrecondition (register again)", err)
	}
	if _, err := old.Register(agentsA, &pb.RegisterAgentRequest{AgentId: "agent-1", Resources: &pb.Resources{Cpus: 1, MemBytes: mi}}, t0, newChanges()); err != nil {
		t.Fatal(err)
	}
	if err := old.Heartbeat(agentsA, &pb.HeartbeatRequest{AgentId: "agent-1"}, t0); err != nil {
		t.Errorf("heartbeat after binding: %v", err)
	}
	if _, err := old.Register(agentsA, &pb.RegisterAgentRequest{AgentId: "agent-2", Resources: &pb.Resources{Cpus: 1, MemBytes: mi}}, t0, newChanges()); CodeOf(err) != PermissionDenied {
		t.Errorf("a bound token registers another unbound agent: %v, want PermissionDenied", err)
	}
	// The binding is durable: it is on the agent, which Restore reads.
	again := Restore(&State{Agents: []*pb.Agent{old.agents["agent-1"]}, Seq: 2}, t0)
	if _, err := again.Register(agentsB, &pb.RegisterAgentRequest{AgentId: "agent-1", Resources: &pb.Resources{Cpus: 1, MemBytes: mi}}, t0, newChanges()); CodeOf(err) != PermissionDenied {
		t.Errorf("after a restore, another token registers agent-1: %v, want PermissionDenied", err)
	}
}

// TestTable_ReportValues: what an agent reports about its own task must
// agree with what the kernel assigned it: an ip in its subnet, the host
// ports assigned, the sandbox it first reported. Refusals are
// InvalidArgument (the agent drops them) and change nothing.
func TestTable_ReportValues(t *testing.T) {
	tb, task := twoAgents(t)
	running := func(mod func(r *pb.ReportTaskStatusRequest)) *pb.ReportTaskStatusRequest {
		r := &pb.ReportTaskStatusRequest{TaskId: task.GetId(), AgentId: "agent-1", State: pb.TaskState_TASK_STATE_RUNNING,
			Pid: 7, Ip: task.GetIp(), Sandbox: task.GetSandbox(), Ports: task.GetPorts()}
		mod(r)
		return r
	}
	tests := []struct {
		name  string
		r     *pb.ReportTaskStatusRequest
		field string
	}{
		{"ip outside its subnet", running(func(r *pb.ReportTaskStatusRequest) { r.Ip = "10.88.1.2" }), "ip"},
		{"ip of the host", running(func(r *pb.ReportTaskStatusRequest) { r.Ip = "192.168.1.1" }), "ip"},
		{"a port not assigned", running(func(r *pb.ReportTaskStatusRequest) {
			r.Ports = []*pb.PortMapping{{Name: "http", ContainerPort: 80, HostPort: 22}}
		}), "ports[0].host_port"},
		{"the port as udp", running(func(r *pb.ReportTaskStatusRequest) {
			r.Ports = []*pb.PortMapping{{Name: "http", ContainerPort: 80, HostPort: task.GetPorts()[0].GetHostPort(), Protocol: "udp"}}
		}), "ports[0].host_port"},
		{"another sandbox", running(func(r *pb.ReportTaskStatusRequest) { r.Sandbox = "/etc" }), "sandbox"},
		{"a relative sandbox", running(func(r *pb.ReportTaskStatusRequest) { r.Sandbox = "../x" }), "sandbox"},
		{"another sandbox when finishing", running(func(r *pb.ReportTaskStatusRequest) {
			r.State, r.Sandbox = pb.TaskState_TASK_STATE_FINISHED, "/etc"
		}), "sandbox"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshotOf(tb)
			c := newChanges()
			err := tb.Report(agentsA, tt.r, t0, c)
			if CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), tt.field+":") {
				t.Errorf("err = %v (%v), want InvalidArgument naming %s", err, CodeOf(err), tt.field)
			}
			if !c.Empty() || !before.equal(snapshotOf(tb)) {
				t.Errorf("refused report changed the table")
			}
		})
	}
	// The same values again are fine; a terminal report's ip and ports
	// are not applied, so not checked.
	if err := tb.Report(agentsA, running(func(*pb.ReportTaskStatusRequest) {}), t0, newChanges()); err != nil {
		t.Errorf("repeated RUNNING report: %v", err)
	}
	if err := tb.Report(agentsA, running(func(r *pb.ReportTaskStatusRequest) {
		r.State, r.Ip, r.Ports = pb.TaskState_TASK_STATE_FINISHED, "10.88.9.9", nil
	}), t0, newChanges()); err != nil {
		t.Errorf("FINISHED report: %v", err)
	}
}

// TestTable_AgentReads: an agent token lists only its own agent's tasks
// (env included) and allocations, whatever agent_id it filters on.
func TestTable_AgentReads(t *testing.T) {
	tb, task := twoAgents(t)
	for _, filter := range []string{"", "agent-1"} {
		if ts := tb.Tasks(agentsB, "", filter); len(ts) != 0 {
			t.Errorf("agent-2's token lists tasks (filter %q): %v", filter, ts)
		}
		if as := tb.Allocations(agentsB, filter); len(as) != 0 {
			t.Errorf("agent-2's token lists allocations (filter %q): %v", filter, as)
		}
		if ts := tb.Tasks(agentsC, "", filter); len(ts) != 0 {
			t.Errorf("an unbound agent token lists tasks (filter %q): %v", filter, ts)
		}
	}
	ts := tb.Tasks(agentsA, "", "agent-1")
	if len(ts) != 1 || ts[0].GetId() != task.GetId() || ts[0].GetEnv()["SECRET"] != "s3" {
		t.Errorf("agent-1's token lists %v, want its task with its env", ts)
	}
	if as := tb.Allocations(agentsA, ""); len(as) != 1 {
		t.Errorf("agent-1's token lists allocations %v, want its one", as)
	}
	if len(tb.Agents()) != 2 {
		t.Errorf("ListAgents is for everyone: %v", tb.Agents())
	}
}

// TestTable_LaunchUser: a task runs as the default user unless the
// operator allowed its allocation's role another (RoleUsers, "*" for
// any); the accepted user is on the task. Refusals change nothing.
func TestTable_LaunchUser(t *testing.T) {
	tb := cluster(t, agentReq(8, 1024, nil))
	tb.SetRoleUsers(map[string][]string{"db": {"root", "postgres"}, "ci": {AnyUser}})
	grant := func(role string) string {
		as, _ := allocate(tb, fwA, &pb.AllocateRequest{Role: role, Resources: &pb.Resources{Cpus: 0.5, MemBytes: mi}})
		return as[0].GetId()
	}
	tests := []struct {
		role, user string
		ok         bool
	}{
		{"web", "", true},
		{"web", "root", false},
		{"", "root", false},
		{"db", "root", true},
		{"db", "postgres", true},
		{"db", "www", false},
		{"ci", "root", true},
		{"ci", "builder", true},
	}
	for _, tt := range tests {
		t.Run(tt.role+"/"+tt.user, func(t *testing.T) {
			id := grant(tt.role)
			for _, p := range []Principal{fwA, ops} {
				before := snapshotOf(tb)
				c := newChanges()
				k, err := tb.Launch(p, &pb.LaunchRequest{AllocationId: id, Command: "x", User: tt.user, Resources: &pb.Resources{Cpus: 0.1, MemBytes: 1}}, t0, c)
				switch {
				case tt.ok && (err != nil || k.GetUser() != tt.user):
					t.Errorf("%s: launch as %q in role %q: %v, task user %q", p.Name, tt.user, tt.role, err, k.GetUser())
				case !tt.ok:
					want := `user: role "` + tt.role + `" may not run tasks as "` + tt.user + `" (dcosd --role-users)`
					if CodeOf(err) != PermissionDenied || err.Error() != want {
						t.Errorf("%s: err = %v, want PermissionDenied %q", p.Name, err, want)
					}
					if !c.Empty() || !before.equal(snapshotOf(tb)) {
						t.Errorf("%s: refused launch changed the table", p.Name)
					}
				}
			}
		})
	}
}

func TestValidateRoleUsers(t *testing.T) {
	for _, tt := range []struct {
		m  map[string][]string
		ok bool
	}{
		{map[string][]string{"db": {"root", "postgres"}, "ci": {"*"}}, true},
		{map[string][]string{"db": {"Root"}}, false},
		{map[string][]string{"db": {""}}, false},
		{map[string][]string{"": {"root"}}, false},
	} {
		if err := ValidateRoleUsers(tt.m); (err == nil) != tt.ok {
			t.Errorf("ValidateRoleUsers(%v) = %v, want ok %v", tt.m, err, tt.ok)
		}
	}
}
