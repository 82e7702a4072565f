package kernel

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// restored returns a table restored with one agent per subnet ("" = an
// agent saved before subnets existed), ids agent-1, agent-2, ...
func restored(cidr string, subnets ...string) *Table {
	st := &State{Seq: uint64(len(subnets))}
	for i, s := range subnets {
		st.Agents = append(st.Agents, &pb.Agent{Id: fmt.Sprintf("agent-%d", i+1), Subnet: s, State: pb.AgentState_AGENT_STATE_UP,
			Total: &pb.Resources{Cpus: 4, MemBytes: 1024 * mi}})
	}
	tb := Restore(st, t0)
	if cidr != "" {
		tb.SetClusterCIDR(netip.MustParsePrefix(cidr))
	}
	return tb
}

func TestTable_RegisterSubnet(t *testing.T) {
	tests := []struct {
		name     string
		cidr     string   // "" = the default
		held     []string // subnets of the agents already known
		want     string
		wantCode Code // when the registration must fail
	}{
		{"first of the default", "", nil, "10.88.0.0/24", 0},
		{"next in order", "", []string{"10.88.0.0/24", "10.88.1.0/24"}, "10.88.2.0/24", 0},
		{"lowest free fills a gap", "", []string{"10.88.0.0/24", "10.88.2.0/24"}, "10.88.1.0/24", 0},
		{"held out of order", "", []string{"10.88.1.0/24", "10.88.0.0/24"}, "10.88.2.0/24", 0},
		{"subnets outside the CIDR do not count", "10.99.0.0/23", []string{"10.88.0.0/24"}, "10.99.0.0/24", 0},
		{"a /24 holds one agent", "192.168.7.0/24", nil, "192.168.7.0/24", 0},
		{"last of a /23", "10.88.0.0/23", []string{"10.88.0.0/24"}, "10.88.1.0/24", 0},
		{"/23 exhausted", "10.88.0.0/23", []string{"10.88.0.0/24", "10.88.1.0/24"}, "", ResourceExhausted},
		{"/24 exhausted", "192.168.7.0/24", []string{"192.168.7.0/24"}, "", ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := restored(tt.cidr, tt.held...)
			seq := tb.seq
			c := newChanges()
			resp, err := tb.Register(ops, agentReq(1, 64, nil), t0, c)
			if tt.wantCode != 0 {
				if CodeOf(err) != tt.wantCode {
					t.Fatalf("err = %v (code %v), want %v", err, CodeOf(err), tt.wantCode)
				}
				want := fmt.Sprintf("cluster CIDR %s has no free /24 for a new agent", tb.ClusterCIDR())
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %q, want it to contain %q", err, want)
				}
				if !c.Empty() || tb.seq != seq || len(tb.agents) != len(tt.held) {
					t.Errorf("a refused registration left state: changes %v, seq %d -> %d, %d agents", c, seq, tb.seq, len(tb.agents))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetSubnet() != tt.want || resp.GetClusterCidr() != tb.ClusterCIDR().String() {
				t.Errorf("subnet %q in %q, want %q in %q", resp.GetSubnet(), resp.GetClusterCidr(), tt.want, tb.ClusterCIDR())
			}
			if g := c.Agents[resp.GetAgentId()]; g.GetSubnet() != tt.want {
				t.Errorf("changes hold agent %v, want subnet %s", g, tt.want)
			}
		})
	}
}

// TestTable_SubnetKept: an agent keeps its subnet when it is lost, when
// it registers again, and across Restore; new agents never get a subnet
// another holds.
func TestTable_SubnetKept(t *testing.T) {
	tb := NewTable()
	register := func(r *pb.RegisterAgentRequest, at time.Time) *pb.RegisterAgentResponse {
		t.Helper()
		resp, err := tb.Register(ops, r, at, newChanges())
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for i, want := range []string{"10.88.0.0/24", "10.88.1.0/24", "10.88.2.0/24"} {
		r := agentReq(1, 64, nil)
		r.UnderlayIp = fmt.Sprintf("192.0.2.%d", i+1)
		if got := register(r, t0).GetSubnet(); got != want {
			t.Fatalf("agent %d: subnet %s, want %s", i+1, got, want)
		}
	}
	// agent-2 goes silent and is lost; it keeps its subnet.
	tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-1"}, t0.Add(9*time.Second))
	tb.Heartbeat(ops, &pb.HeartbeatRequest{AgentId: "agent-3"}, t0.Add(9*time.Second))
	tb.Expire(t0.Add(11*time.Second), 10*time.Second, newChanges())
	if g := tb.agents["agent-2"]; g.GetState() != pb.AgentState_AGENT_STATE_LOST || g.GetSubnet() != "10.88.1.0/24" {
		t.Fatalf("lost agent-2: %v", g)
	}
	if got := register(agentReq(1, 64, nil), t0.Add(12*time.Second)).GetSubnet(); got != "10.88.3.0/24" {
		t.Errorf("new agent while agent-2 is lost: %s, want 10.88.3.0/24", got)
	}
	back := agentReq(2, 64, nil)
	back.AgentId, back.UnderlayIp = "agent-2", "2001:db8::2"
	if got := register(back, t0.Add(13*time.Second)).GetSubnet(); got != "10.88.1.0/24" {
		t.Errorf("agent-2 back: %s, want its old 10.88.1.0/24", got)
	}
	if got := tb.agents["agent-2"].GetUnderlayIp(); got != "2001:db8::2" {
		t.Errorf("agent-2 underlay %q after registering again, want the new one", got)
	}
	// Restore keeps them all; the next new agent gets the next /24.
	st := &State{Seq: tb.seq}
	for _, g := range tb.agents {
		st.Agents = append(st.Agents, proto.Clone(g).(*pb.Agent))
	}
	tb = Restore(st, t0)
	want := map[string]string{"agent-1": "10.88.0.0/24", "agent-2": "10.88.1.0/24", "agent-3": "10.88.2.0/24", "agent-4": "10.88.3.0/24"}
	for _, g := range tb.Agents() {
		if g.GetSubnet() != want[g.GetId()] {
			t.Errorf("restored %s: subnet %q, want %q", g.GetId(), g.GetSubnet(), want[g.GetId()])
		}
		if g.GetId() == "agent-1" && g.GetUnderlayIp() != "192.0.2.1" {
			t.Errorf("restored agent-1: underlay %q", g.GetUnderlayIp())
		}
	}
	again := agentReq(1, 64, nil)
	again.AgentId = "agent-3"
	if got := register(again, t0).GetSubnet(); got != "10.88.2.0/24" {
		t.Errorf("agent-3 after Restore: %s", got)
	}
	if got := register(agentReq(1, 64, nil), t0).GetSubnet(); got != "10.88.4.0/24" {
		t.Errorf("new agent after Restore: %s, want 10.88.4.0/24", got)
	}
	// A full CIDR refuses new agents but not known ones.
	tb.SetClusterCIDR(netip.MustParsePrefix("10.88.0.0/22"))
	if _, err := tb.Register(ops, agentReq(1, 64, nil), t0, newChanges()); CodeOf(err) != ResourceExhausted {
		t.Errorf("new agent in a full /22: %v", err)
	}
	if got := register(again, t0).GetSubnet(); got != "10.88.2.0/24" {
		t.Errorf("known agent in a full /22: %s", got)
	}
}

// TestTable_AssignSubnets: agents saved before subnets existed get one,
// oldest first, the first time the kernel runs; a full CIDR leaves the
// rest without one, and bridge launches there fail clearly.
func TestTable_AssignSubnets(t *testing.T) {
	tb := restored("10.88.0.0/22", "", "10.88.0.0/24", "")
	// One more pre-subnet agent with a later id, listed first.
	tb.agents["agent-10"] = &pb.Agent{Id: "agent-10", State: pb.AgentState_AGENT_STATE_UP, Total: &pb.Resources{Cpus: 4, MemBytes: 1024 * mi}}
	c := newChanges()
	tb.AssignSubnets(c)
	want := map[string]string{"agent-1": "10.88.1.0/24", "agent-2": "10.88.0.0/24", "agent-3": "10.88.2.0/24", "agent-10": "10.88.3.0/24"}
	for id, s := range want {
		if got := tb.agents[id].GetSubnet(); got != s {
			t.Errorf("%s: subnet %q, want %q", id, got, s)
		}
	}
	if len(c.Agents) != 3 || c.Agents["agent-2"] != nil {
		t.Errorf("changes hold %d agents, want the 3 that got a subnet", len(c.Agents))
	}
	c = newChanges()
	tb.AssignSubnets(c)
	if !c.Empty() {
		t.Error("second AssignSubnets changed something")
	}

	full := restored("10.88.0.0/24", "", "")
	full.AssignSubnets(newChanges())
	if full.agents["agent-1"].GetSubnet() != "10.88.0.0/24" || full.agents["agent-2"].GetSubnet() != "" {
		t.Fatalf("full CIDR: agent-1 %q, agent-2 %q", full.agents["agent-1"].GetSubnet(), full.agents["agent-2"].GetSubnet())
	}
	// agent-2 may still register (it is known), without a subnet.
	if resp, err := full.Register(ops, &pb.RegisterAgentRequest{AgentId: "agent-2", Resources: &pb.Resources{Cpus: 4, MemBytes: 1024 * mi}}, t0, newChanges()); err != nil || resp.GetSubnet() != "" {
		t.Fatalf("known agent without a subnet in a full CIDR: %v, subnet %q", err, resp.GetSubnet())
	}
	as, _ := allocate(full, fwA, allocReq(4, 1024, 2)) // one per agent
	for _, a := range as {
		_, err := full.Launch(fwA, &pb.LaunchRequest{AllocationId: a.GetId(), Command: "x", Network: NetworkBridge}, t0, newChanges())
		if a.GetAgentId() == "agent-2" && (CodeOf(err) != FailedPrecondition || !strings.HasPrefix(err.Error(), "network: agent agent-2 has no subnet")) {
			t.Errorf("bridge launch on agent-2 without a subnet: %v", err)
		}
		if a.GetAgentId() == "agent-1" && err != nil {
			t.Errorf("bridge launch on agent-1: %v", err)
		}
	}
}

func TestTable_TaskNetwork(t *testing.T) {
	g := agentReq(4, 1024, nil)
	g.HostPorts = "31000-31009"
	tb := cluster(t, g)
	ar := allocReq(1, 64, 1)
	ar.Resources.Ports = 1
	as, _ := allocate(tb, fwA, ar)
	launch := func(r *pb.LaunchRequest) (*pb.Task, *Changes) {
		t.Helper()
		r.AllocationId, r.Command, r.Resources = as[0].GetId(), "x", &pb.Resources{Cpus: 0.1, MemBytes: mi}
		c := newChanges()
		k, err := tb.Launch(fwA, r, t0, c)
		if err != nil {
			t.Fatal(err)
		}
		return k, c
	}
	host, _ := launch(&pb.LaunchRequest{})
	if host.GetNetwork() != NetworkHost || len(host.GetPorts()) != 0 {
		t.Errorf("default network task: network %q ports %v", host.GetNetwork(), host.GetPorts())
	}
	k, c := launch(&pb.LaunchRequest{Network: NetworkBridge, Ports: []*pb.PortRequest{
		{Name: "http", ContainerPort: 8080}, {Name: "dns", ContainerPort: 53, HostPort: 5353, Protocol: "udp"}}})
	requested := []*pb.PortMapping{{Name: "http", ContainerPort: 8080, HostPort: 31000, Protocol: "tcp"}, {Name: "dns", ContainerPort: 53, HostPort: 5353, Protocol: "udp"}}
	if k.GetNetwork() != NetworkBridge || !samePorts(k.GetPorts(), requested) {
		t.Errorf("bridge task: network %q ports %v, want %v", k.GetNetwork(), k.GetPorts(), requested)
	}
	if ev := c.Events[0].GetTask(); !samePorts(ev.GetPorts(), requested) || ev.GetNetwork() != NetworkBridge {
		t.Errorf("launch event task: %v", ev)
	}

	set := []*pb.PortMapping{{Name: "http", ContainerPort: 8080, HostPort: 31000, Protocol: "tcp"}, {Name: "dns", ContainerPort: 53, HostPort: 5353, Protocol: "udp"}}
	tests := []struct {
		name      string
		r         *pb.ReportTaskStatusRequest
		wantEvent bool
		wantIP    string
		wantPorts []*pb.PortMapping
	}{
		{"starting without an address", &pb.ReportTaskStatusRequest{State: pb.TaskState_TASK_STATE_STARTING, Pid: 7}, true, "", requested},
		{"running with address and ports", &pb.ReportTaskStatusRequest{State: pb.TaskState_TASK_STATE_RUNNING, Pid: 7, Ip: "10.88.0.5",
			Ports: []*pb.PortMapping{{Name: "http", ContainerPort: 8080, HostPort: 31000}, set[1]}}, true, "10.88.0.5", set},
		{"the same again", &pb.ReportTaskStatusRequest{State: pb.TaskState_TASK_STATE_RUNNING, Pid: 7, Ip: "10.88.0.5", Ports: set}, false, "10.88.0.5", set},
		{"running without them keeps them", &pb.ReportTaskStatusRequest{State: pb.TaskState_TASK_STATE_RUNNING, Pid: 7}, false, "10.88.0.5", set},
		{"a new address", &pb.ReportTaskStatusRequest{State: pb.TaskState_TASK_STATE_RUNNING, Pid: 7, Ip: "10.88.0.6"}, true, "10.88.0.6", set},
		{"an end does not change them", &pb.ReportTaskStatusRequest{State: pb.TaskState_TASK_STATE_FINISHED, Pid: 7, Ip: "10.88.0.9"}, true, "10.88.0.6", set},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.TaskId, tt.r.AgentId = k.GetId(), "agent-1"
			c := newChanges()
			if err := tb.Report(ops, tt.r, t0, c); err != nil {
				t.Fatal(err)
			}
			if got := len(c.Events) == 1; got != tt.wantEvent {
				t.Fatalf("%d events, want event %v", len(c.Events), tt.wantEvent)
			}
			var listed *pb.Task
			for _, l := range tb.Tasks(fwA, "", "") {
				if l.GetId() == k.GetId() {
					listed = l
				}
			}
			if listed.GetIp() != tt.wantIP || !samePorts(listed.GetPorts(), tt.wantPorts) {
				t.Errorf("listed task: ip %q ports %v, want %q %v", listed.GetIp(), listed.GetPorts(), tt.wantIP, tt.wantPorts)
			}
			if tt.wantEvent {
				if ev := c.Events[0].GetTask(); ev.GetIp() != tt.wantIP || !samePorts(ev.GetPorts(), tt.wantPorts) {
					t.Errorf("event task: ip %q ports %v, want %q %v", ev.GetIp(), ev.GetPorts(), tt.wantIP, tt.wantPorts)
				}
			}
		})
	}
}

func TestParseClusterCIDR(t *testing.T) {
	tests := []struct {
		in   string
		want string // "": refused, with err in the message
		err  string
	}{
		{in: "10.88.0.0/16", want: "10.88.0.0/16"},
		{in: "10.0.0.0/8", want: "10.0.0.0/8"},
		{in: "192.168.5.0/24", want: "192.168.5.0/24"},
		{in: "10.88.0.0/25", err: "prefix longer than /24"},
		{in: "10.88.1.0/16", err: "did you mean 10.88.0.0/16?"},
		{in: "fd00::/48", err: "want an IPv4 prefix"},
		{in: "10.88.0.0", err: "want an IPv4 prefix"},
		{in: "", err: "want an IPv4 prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParseClusterCIDR(tt.in)
			if tt.want != "" {
				if err != nil || p.String() != tt.want {
					t.Fatalf("ParseClusterCIDR(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("ParseClusterCIDR(%q) error %v, want one containing %q", tt.in, err, tt.err)
			}
		})
	}
}
