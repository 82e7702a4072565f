package kernel

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in   string
		want PortRange
		err  bool
	}{
		{in: "31000-32000", want: PortRange{31000, 32000}},
		{in: "8080", want: PortRange{8080, 8080}},
		{in: "1-65535", want: PortRange{1, 65535}},
		{in: ""},
		{in: "none"},
		{in: "0-10", err: true},
		{in: "32000-31000", err: true},
		{in: "1-65536", err: true},
		{in: "a-b", err: true},
		{in: "-5", err: true},
		{in: "31000-", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, err := ParsePortRange(tt.in)
			if (err != nil) != tt.err || r != tt.want {
				t.Fatalf("ParsePortRange(%q) = %v, %v", tt.in, r, err)
			}
			if err == nil && tt.in != "none" {
				if back, _ := ParsePortRange(r.String()); back != r {
					t.Fatalf("%v does not round-trip through %q", r, r.String())
				}
			}
		})
	}
	if n := (PortRange{31000, 32000}).Size(); n != 1001 {
		t.Errorf("size of 31000-32000 = %d", n)
	}
}

func TestValidateRegister_HostPorts(t *testing.T) {
	req := func(hp string, ports int64) *pb.RegisterAgentRequest {
		return &pb.RegisterAgentRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1, Ports: ports}, HostPorts: hp}
	}
	tests := []struct {
		name  string
		r     *pb.RegisterAgentRequest
		field string
	}{
		{"range", req("31000-32000", 0), ""},
		{"range with its size", req("31000-32000", 1001), ""},
		{"no range", req("", 0), ""},
		{"bad range", req("32000-31000", 0), "host_ports:"},
		{"port zero", req("0-100", 0), "host_ports:"},
		{"size mismatch", req("31000-31009", 11), "resources.ports:"},
		{"ports without a range", req("", 5), "resources.ports:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateRegister(tt.r)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), tt.field) {
				t.Fatalf("err = %v, want InvalidArgument naming %q", err, tt.field)
			}
		})
	}
}

// portCluster is one agent with host ports 31000-31004 (5 ports).
func portCluster(t *testing.T) *Table {
	g := agentReq(8, 1024, nil)
	g.HostPorts = "31000-31004"
	tb := cluster(t, g)
	if tot := tb.agents["agent-1"].GetTotal().GetPorts(); tot != 5 || tb.agents["agent-1"].GetHostPorts() != "31000-31004" {
		t.Fatalf("agent total ports %d, range %q", tot, tb.agents["agent-1"].GetHostPorts())
	}
	return tb
}

func portAlloc(ports int64) *pb.AllocateRequest {
	r := allocReq(0.1, 1, 1)
	r.Resources.Ports = ports
	return r
}

// checkHeldPorts checks that the held-port index matches the granted
// allocations and live tasks, and that no port is held twice.
func checkHeldPorts(t *testing.T, tb *Table) {
	t.Helper()
	want := Restore(stateOf(tb), t0).ports
	if len(want) != len(tb.ports) {
		t.Fatalf("held ports %v, rebuilt %v", tb.ports, want)
	}
	for agent, m := range want {
		for p, h := range m {
			if tb.ports[agent][p] != h {
				t.Fatalf("port %d on %s held by %q, rebuilt says %q", p, agent, tb.ports[agent][p], h)
			}
		}
	}
}

func stateOf(tb *Table) *State {
	st := &State{Seq: tb.seq}
	for _, g := range tb.agents {
		st.Agents = append(st.Agents, g)
	}
	for _, a := range tb.allocs {
		st.Allocations = append(st.Allocations, a)
	}
	for _, k := range tb.tasks {
		st.Tasks = append(st.Tasks, k)
	}
	return st
}

func TestTable_HostPortAllocation(t *testing.T) {
	tb := portCluster(t)
	a1, _ := allocate(tb, fwA, portAlloc(2))
	a2, _ := allocate(tb, fwA, portAlloc(2))
	if !slices.Equal(a1[0].GetHostPorts(), []uint32{31000, 31001}) || !slices.Equal(a2[0].GetHostPorts(), []uint32{31002, 31003}) {
		t.Fatalf("host ports %v and %v, want the first free ones in order", a1[0].GetHostPorts(), a2[0].GetHostPorts())
	}
	none, _ := allocate(tb, fwA, portAlloc(0))
	if len(none[0].GetHostPorts()) != 0 {
		t.Errorf("an allocation without ports got %v", none[0].GetHostPorts())
	}
	// Exhaustion: 1 port left, 2 asked for: pending, saying why.
	a3, _ := allocate(tb, fwA, portAlloc(2))
	if a3[0].GetState() != pb.AllocationState_ALLOCATION_STATE_PENDING || a3[0].GetPendingReason() != "insufficient host ports on 1 agent" {
		t.Fatalf("third allocation %v: %q", a3[0].GetState(), a3[0].GetPendingReason())
	}
	if got := tb.agents["agent-1"].GetAllocated().GetPorts(); got != 4 {
		t.Errorf("agent allocated ports %d, want 4", got)
	}
	checkHeldPorts(t, tb)
	// A restarted kernel holds the same ports: the next grant avoids them.
	tb = Restore(stateOf(tb), t0)
	// Revoking the first frees its ports; the pending one gets the next
	// free after the last picked (31004), then wraps around: the port
	// freed last (31001) stays free.
	c := newChanges()
	if err := tb.Revoke(fwA, a1[0].GetId(), "", t0, c); err != nil {
		t.Fatal(err)
	}
	tb.Cycle(FirstFit{}, 1, t0, c)
	got := tb.allocs[a3[0].GetId()]
	if got.GetState() != pb.AllocationState_ALLOCATION_STATE_GRANTED || !slices.Equal(got.GetHostPorts(), []uint32{31000, 31004}) {
		t.Fatalf("after the revoke: %v with host ports %v, want granted with 31000, 31004", got.GetState(), got.GetHostPorts())
	}
	if c.Allocations[got.GetId()] == nil {
		t.Error("the grant with its host ports is not in the changes (not persisted)")
	}
	checkHeldPorts(t, tb)
	// An agent lost frees everything.
	c = newChanges()
	tb.loseAgent(tb.agents["agent-1"], t0, c)
	if len(tb.ports) != 0 {
		t.Errorf("ports held after the agent was lost: %v", tb.ports)
	}
}

func TestTable_HostPortLaunch(t *testing.T) {
	type launch struct {
		alloc   int // index into the allocations (0: 2 ports, 1: 1 port, 2: none)
		network string
		ports   []*pb.PortRequest
	}
	bridge := func(alloc int, ps ...*pb.PortRequest) launch { return launch{alloc, NetworkBridge, ps} }
	host := func(alloc int, ps ...*pb.PortRequest) launch { return launch{alloc, NetworkHost, ps} }
	dyn := func(name string) *pb.PortRequest { return &pb.PortRequest{Name: name, ContainerPort: 80} }
	static := func(name string, hp uint32) *pb.PortRequest {
		return &pb.PortRequest{Name: name, ContainerPort: 80, HostPort: hp}
	}
	tests := []struct {
		name   string
		before []launch
		l      launch
		want   []uint32 // host ports in order; nil with err
		err    string
	}{
		{"dynamic takes the allocation's ports", nil, bridge(0, dyn("a"), dyn("b")), []uint32{31000, 31001}, ""},
		{"dynamic skips ports of a sibling task", []launch{bridge(0, dyn("a"))}, bridge(0, dyn("b")), []uint32{31001}, ""},
		{"named allocation port", nil, bridge(0, static("a", 31001), dyn("b")), []uint32{31001, 31000}, ""},
		{"tcp and udp on one port", nil, bridge(0, static("a", 31000), &pb.PortRequest{Name: "b", ContainerPort: 53, HostPort: 31000, Protocol: "udp"}), []uint32{31000, 31000}, ""},
		{"too few in the allocation", nil, bridge(1, dyn("a"), dyn("b")), nil, "ports: the task asks for 2 host ports (host_port 0) but allocation a-5 has 1 unused of its 1"},
		{"none in the allocation", nil, bridge(2, dyn("a")), nil, "has 0 unused of its 0"},
		{"allocation port taken by a sibling", []launch{bridge(0, static("a", 31001))}, bridge(0, static("b", 31001)), nil, "ports[0].host_port: host port 31001 of allocation a-3 is already taken by task t-"},
		{"another allocation's port", nil, bridge(1, static("a", 31000)), nil, "host port 31000 is in agent agent-1's range 31000-31004"},
		{"static outside the range", nil, bridge(2, static("a", 8080)), []uint32{8080}, ""},
		{"static taken", []launch{bridge(2, static("a", 8080))}, bridge(1, static("b", 8080)), nil, "ports[0].host_port: host port 8080 on agent agent-1 is already taken by task t-"},
		{"static taken by a host task", []launch{host(2, &pb.PortRequest{Name: "a", ContainerPort: 8080})}, bridge(0, static("b", 8080)), nil, "already taken by task"},
		{"host dynamic", nil, host(0, &pb.PortRequest{Name: "a"}), []uint32{31000}, ""},
		{"host static", nil, host(2, &pb.PortRequest{Name: "a", ContainerPort: 9090}), []uint32{9090}, ""},
		{"host static by host port", nil, host(2, &pb.PortRequest{Name: "a", HostPort: 9090}), []uint32{9090}, ""},
		{"host static taken", []launch{bridge(2, static("a", 9090))}, host(1, &pb.PortRequest{Name: "b", HostPort: 9090}), nil, "host port 9090 on agent agent-1 is already taken"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := portCluster(t)
			var as []*pb.Allocation
			for _, n := range []int64{2, 1, 0} {
				a, _ := allocate(tb, fwA, portAlloc(n))
				as = append(as, a[0])
			}
			do := func(l launch) (*pb.Task, error) {
				return tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[l.alloc].GetId(), Command: "x",
					Resources: &pb.Resources{Cpus: 0.01, MemBytes: 1}, Network: l.network, Ports: l.ports}, t0, newChanges())
			}
			for _, l := range tt.before {
				if _, err := do(l); err != nil {
					t.Fatal(err)
				}
			}
			before := len(tb.tasks)
			k, err := do(tt.l)
			if tt.err != "" {
				if CodeOf(err) != FailedPrecondition || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want FailedPrecondition containing %q", err, tt.err)
				}
				if len(tb.tasks) != before {
					t.Fatal("a refused launch left a task")
				}
				checkHeldPorts(t, tb)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []uint32
			for _, m := range k.GetPorts() {
				got = append(got, m.GetHostPort())
				if k.GetNetwork() == NetworkHost && m.GetContainerPort() != m.GetHostPort() {
					t.Errorf("host task port %v: container port is not the host port", m)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("host ports %v, want %v", got, tt.want)
			}
			checkHeldPorts(t, tb)
		})
	}
}

// TestTable_StaticPortReleased: a task's static port is free again once
// the task ends (reported, revoked, or its allocation revoked), and the
// allocation's ports once a task ends are free for its next task.
func TestTable_StaticPortReleased(t *testing.T) {
	tests := []struct {
		name string
		end  func(tb *Table, k *pb.Task)
	}{
		{"reported finished", func(tb *Table, k *pb.Task) {
			if err := tb.Report(ops, &pb.ReportTaskStatusRequest{TaskId: k.GetId(), AgentId: "agent-1", State: pb.TaskState_TASK_STATE_FINISHED}, t0, newChanges()); err != nil {
				t.Fatal(err)
			}
		}},
		{"task revoked", func(tb *Table, k *pb.Task) {
			if err := tb.Revoke(fwA, k.GetId(), "", t0, newChanges()); err != nil {
				t.Fatal(err)
			}
		}},
		{"allocation revoked", func(tb *Table, k *pb.Task) {
			if err := tb.Revoke(fwA, k.GetAllocationId(), "", t0, newChanges()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := portCluster(t)
			a, _ := allocate(tb, fwA, portAlloc(1))
			l := func(alloc string) (*pb.Task, error) {
				return tb.Launch(fwA, &pb.LaunchRequest{AllocationId: alloc, Command: "x", Resources: &pb.Resources{Cpus: 0.01, MemBytes: 1},
					Network: NetworkBridge, Ports: []*pb.PortRequest{{Name: "s", ContainerPort: 1, HostPort: 8080}, {Name: "d", ContainerPort: 2}}}, t0, newChanges())
			}
			k, err := l(a[0].GetId())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l(a[0].GetId()); CodeOf(err) != FailedPrecondition {
				t.Fatalf("second task on the same ports: %v", err)
			}
			tt.end(tb, k)
			checkHeldPorts(t, tb)
			if tb.ports["agent-1"][8080] != "" {
				t.Fatalf("static port 8080 still held by %q", tb.ports["agent-1"][8080])
			}
			if _, live := tb.allocs[a[0].GetId()]; live {
				if _, err := l(a[0].GetId()); err != nil {
					t.Fatalf("relaunch after the first ended: %v", err)
				}
			}
		})
	}
}

// BenchmarkCycle_FirstFitPorts is BenchmarkCycle_FirstFit (10,000 agents ×
// 1,000 requests) with every agent owning 31000-32000, half of it already
// held, and every request asking for 2 host ports: the cost of picking
// ports at grant time. Compare with BenchmarkCycle_FirstFit in the same
// run.
func BenchmarkCycle_FirstFitPorts(b *testing.B) {
	const agents, reqs = 10_000, 1_000
	b.ReportAllocs()
	placed := 0
	for b.Loop() {
		b.StopTimer()
		tb := bigTable(0, 0)
		c := newChanges()
		for i := 0; i < agents; i++ {
			tb.Register(ops, &pb.RegisterAgentRequest{Resources: &pb.Resources{Cpus: 64, MemBytes: 256 << 30}, HostPorts: "31000-32000"}, t0, c)
			id := "agent-" + strconv.Itoa(i+1)
			for p := uint32(31000); p < 31500; p++ {
				tb.holdPort(id, p, "a-0")
			}
		}
		for i := 0; i < reqs; i++ {
			r := allocReq(1, 1024, 1)
			r.Resources.Ports = 2
			tb.Allocate(fwA, r, t0, c)
		}
		b.StartTimer()
		res := tb.Cycle(FirstFit{}, 1, t0, c)
		placed += res.Placed
		if res.Placed != reqs {
			b.Fatalf("placed %d of %d", res.Placed, reqs)
		}
	}
	b.ReportMetric(float64(placed)/b.Elapsed().Seconds(), "placements/s")
}
