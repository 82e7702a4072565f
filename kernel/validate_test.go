package kernel

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestValidateAllocate(t *testing.T) {
	ok := func() *pb.AllocateRequest { return allocReq(0.5, 64, 1) }
	tests := []struct {
		name  string
		edit  func(r *pb.AllocateRequest)
		field string // "" means valid
	}{
		{"valid", func(*pb.AllocateRequest) {}, ""},
		{"no resources", func(r *pb.AllocateRequest) { r.Resources = nil }, "resources"},
		{"negative cpus", func(r *pb.AllocateRequest) { r.Resources.Cpus = -1 }, "resources.cpus"},
		{"NaN cpus", func(r *pb.AllocateRequest) { r.Resources.Cpus = math.NaN() }, "resources.cpus"},
		{"Inf cpus", func(r *pb.AllocateRequest) { r.Resources.Cpus = math.Inf(1) }, "resources.cpus"},
		{"zero cpus", func(r *pb.AllocateRequest) { r.Resources.Cpus = 0 }, "resources.cpus"},
		{"absurd memory", func(r *pb.AllocateRequest) { r.Resources.MemBytes = 1 << 62 }, "resources.mem_bytes"},
		{"zero memory", func(r *pb.AllocateRequest) { r.Resources.MemBytes = 0 }, "resources.mem_bytes"},
		{"negative disk", func(r *pb.AllocateRequest) { r.Resources.DiskBytes = -5 }, "resources.disk_bytes"},
		{"negative count", func(r *pb.AllocateRequest) { r.Count = -1 }, "count"},
		{"huge count", func(r *pb.AllocateRequest) { r.Count = MaxCount + 1 }, "count"},
		{"bad role", func(r *pb.AllocateRequest) { r.Role = "has space" }, "role"},
		{"constraint no op", func(r *pb.AllocateRequest) { r.Constraints = []*pb.Constraint{{Label: "zone", Values: []string{"a"}}} }, "constraints[0].op"},
		{"constraint no label", func(r *pb.AllocateRequest) {
			r.Constraints = []*pb.Constraint{{Op: pb.Constraint_OP_EQUALS, Values: []string{"a"}}}
		}, "constraints[0].label"},
		{"equals two values", func(r *pb.AllocateRequest) {
			r.Constraints = []*pb.Constraint{{Label: "z", Op: pb.Constraint_OP_EQUALS, Values: []string{"a", "b"}}}
		}, "constraints[0].values"},
		{"short lease", func(r *pb.AllocateRequest) { r.LeaseTtl = durationpb.New(1) }, "lease_ttl"},
		{"invalid lease", func(r *pb.AllocateRequest) { r.LeaseTtl = &durationpb.Duration{Seconds: 1, Nanos: -1} }, "lease_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.edit(r)
			err := ValidateAllocate(r)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("valid request refused: %v", err)
				}
				return
			}
			if CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), tt.field+":") {
				t.Fatalf("err = %v (code %v), want InvalidArgument naming %q", err, CodeOf(err), tt.field)
			}
		})
	}
}

func TestValidateLaunch(t *testing.T) {
	tests := []struct {
		name  string
		r     *pb.LaunchRequest
		field string
	}{
		{"valid", &pb.LaunchRequest{AllocationId: "a-1", Command: "sh", Args: []string{"-c", "echo hi"}, Env: map[string]string{"A": "b"}}, ""},
		{"empty command", &pb.LaunchRequest{AllocationId: "a-1", Command: " "}, "command: required (a program to run), unless the driver runs an image (driver oci)"},
		{"no command", &pb.LaunchRequest{AllocationId: "a-1"}, "command"},
		{"no command, exec driver", &pb.LaunchRequest{AllocationId: "a-1", Driver: "exec", Args: []string{"x"}}, "command"},
		{"image: no command runs its entrypoint", &pb.LaunchRequest{AllocationId: "a-1", Driver: "oci", DriverConfig: `{"image":"r/nginx:1"}`}, ""},
		{"image: args without command", &pb.LaunchRequest{AllocationId: "a-1", Driver: "oci", Args: []string{"-g", "daemon off;"}}, ""},
		{"image: entrypoint override", &pb.LaunchRequest{AllocationId: "a-1", Driver: "oci", Command: "/bin/sh"}, ""},
		{"image: blank command", &pb.LaunchRequest{AllocationId: "a-1", Driver: "oci", Command: " "}, "command"},
		{"no allocation", &pb.LaunchRequest{Command: "true"}, "allocation_id"},
		{"NUL in arg", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Args: []string{"a\x00"}}, "args[0]"},
		{"bad env name", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Env: map[string]string{"A=B": "c"}}, "env"},
		{"oversized", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Args: []string{strings.Repeat("x", MaxTaskSpecBytes)}}, "args"},
		{"negative share", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Resources: &pb.Resources{Cpus: -1}}, "resources.cpus"},
		{"host network", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Network: "host"}, ""},
		{"bridge with ports", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Network: "bridge", Ports: []*pb.PortRequest{
			{Name: "http", ContainerPort: 8080}, {Name: "dns_1", ContainerPort: 53, HostPort: 53, Protocol: "udp"}, {Name: "dns_2", ContainerPort: 53, HostPort: 53, Protocol: "tcp"}}}, ""},
		{"unknown network", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Network: "overlay"}, `network: must be "host" or "bridge"`},
		{"static port on host", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Network: "host", Ports: []*pb.PortRequest{{Name: "p", ContainerPort: 8080}}}, ""},
		{"dynamic port on host", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Ports: []*pb.PortRequest{{Name: "p"}}}, ""},
		{"host port on host", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Ports: []*pb.PortRequest{{Name: "p", ContainerPort: 8080, HostPort: 8080}}}, ""},
		{"host task maps a port", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Network: "host", Ports: []*pb.PortRequest{{Name: "p", ContainerPort: 80, HostPort: 8080}}}, "ports[0].container_port"},
		{"host port twice on host", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Ports: []*pb.PortRequest{{Name: "p", ContainerPort: 8080}, {Name: "q", HostPort: 8080}}}, "ports[1].host_port"},
		{"host container port too big", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Ports: []*pb.PortRequest{{Name: "p", ContainerPort: 70000}}}, "ports[0].container_port"},
		{"port without name", bridge(&pb.PortRequest{ContainerPort: 80}), "ports[0].name"},
		{"port name upper case", bridge(&pb.PortRequest{Name: "HTTP", ContainerPort: 80}), "ports[0].name"},
		{"port name dash", bridge(&pb.PortRequest{Name: "web-ui", ContainerPort: 80}), "ports[0].name"},
		{"duplicate name", bridge(&pb.PortRequest{Name: "a", ContainerPort: 80}, &pb.PortRequest{Name: "a", ContainerPort: 81}), "ports[1].name"},
		{"container port 0", bridge(&pb.PortRequest{Name: "a"}), "ports[0].container_port"},
		{"container port too big", bridge(&pb.PortRequest{Name: "a", ContainerPort: 65536}), "ports[0].container_port"},
		{"host port too big", bridge(&pb.PortRequest{Name: "a", ContainerPort: 80, HostPort: 70000}), "ports[0].host_port"},
		{"bad protocol", bridge(&pb.PortRequest{Name: "a", ContainerPort: 80, Protocol: "sctp"}), "ports[0].protocol"},
		{"duplicate host port", bridge(&pb.PortRequest{Name: "a", ContainerPort: 80, HostPort: 8080}, &pb.PortRequest{Name: "b", ContainerPort: 81, HostPort: 8080, Protocol: "tcp"}), "ports[1].host_port"},
		{"any host port twice", bridge(&pb.PortRequest{Name: "a", ContainerPort: 80}, &pb.PortRequest{Name: "b", ContainerPort: 80}), ""},
		{"too many ports", bridge(make([]*pb.PortRequest, MaxPorts+1)...), "ports:"},
		{"working_dir inside", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", WorkingDir: "a/../b"}, ""},
		{"working_dir absolute", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", WorkingDir: "/srv"}, ""},
		{"working_dir ../..", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", WorkingDir: "../.."}, "working_dir"},
		{"working_dir leaves later", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", WorkingDir: "a/../../b"}, "working_dir"},
		{"working_dir ..", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", WorkingDir: ".."}, "working_dir"},
		{"user root", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", User: "root"}, ""},
		{"user name", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", User: "_pg-1$"}, ""},
		{"user upper case", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", User: "Root"}, "user"},
		{"user uid", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", User: "0"}, "user"},
		{"user too long", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", User: strings.Repeat("u", 33)}, "user"},
		{"user any", &pb.LaunchRequest{AllocationId: "a-1", Command: "x", User: "*"}, "user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateLaunch(tt.r)
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

// bridge is a valid bridge launch with ports ps.
func bridge(ps ...*pb.PortRequest) *pb.LaunchRequest {
	return &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Network: NetworkBridge, Ports: ps}
}

func TestValidateRegister(t *testing.T) {
	ok := func() *pb.RegisterAgentRequest { return agentReq(2, 1024, map[string]string{"zone": "a"}) }
	tests := []struct {
		name  string
		edit  func(r *pb.RegisterAgentRequest)
		field string
	}{
		{"valid", func(*pb.RegisterAgentRequest) {}, ""},
		{"IPv4 underlay", func(r *pb.RegisterAgentRequest) { r.UnderlayIp = "192.0.2.10" }, ""},
		{"IPv6 underlay", func(r *pb.RegisterAgentRequest) { r.UnderlayIp = "2001:db8::10" }, ""},
		{"loopback underlay (dev)", func(r *pb.RegisterAgentRequest) { r.UnderlayIp = "127.0.0.1" }, ""},
		{"hostname as underlay", func(r *pb.RegisterAgentRequest) { r.UnderlayIp = "node1" }, "underlay_ip"},
		{"prefix as underlay", func(r *pb.RegisterAgentRequest) { r.UnderlayIp = "192.0.2.10/24" }, "underlay_ip"},
		{"unspecified underlay", func(r *pb.RegisterAgentRequest) { r.UnderlayIp = "0.0.0.0" }, "underlay_ip"},
		{"multicast underlay", func(r *pb.RegisterAgentRequest) { r.UnderlayIp = "239.1.1.1" }, "underlay_ip"},
		{"broadcast underlay", func(r *pb.RegisterAgentRequest) { r.UnderlayIp = "255.255.255.255" }, "underlay_ip"},
		{"zoned underlay", func(r *pb.RegisterAgentRequest) { r.UnderlayIp = "fe80::1%eth0" }, "underlay_ip"},
		{"no resources", func(r *pb.RegisterAgentRequest) { r.Resources = nil }, "resources"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.edit(r)
			err := ValidateRegister(r)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("valid request refused: %v", err)
				}
				return
			}
			if CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), tt.field+":") {
				t.Fatalf("err = %v (code %v), want InvalidArgument naming %q", err, CodeOf(err), tt.field)
			}
		})
	}
}

func TestValidateReport(t *testing.T) {
	ok := func() *pb.ReportTaskStatusRequest {
		return &pb.ReportTaskStatusRequest{TaskId: "t-1", AgentId: "agent-1", State: pb.TaskState_TASK_STATE_RUNNING}
	}
	tests := []struct {
		name  string
		edit  func(r *pb.ReportTaskStatusRequest)
		field string
	}{
		{"valid", func(*pb.ReportTaskStatusRequest) {}, ""},
		{"address and ports", func(r *pb.ReportTaskStatusRequest) {
			r.Ip, r.Ports = "10.88.0.2", []*pb.PortMapping{{Name: "http", ContainerPort: 80, HostPort: 31000, Protocol: "tcp"}}
		}, ""},
		{"pending", func(r *pb.ReportTaskStatusRequest) { r.State = pb.TaskState_TASK_STATE_PENDING }, "state"},
		{"bad address", func(r *pb.ReportTaskStatusRequest) { r.Ip = "10.88.0.300" }, "ip"},
		{"host port not chosen", func(r *pb.ReportTaskStatusRequest) {
			r.Ports = []*pb.PortMapping{{Name: "http", ContainerPort: 80}}
		}, "ports[0].host_port"},
		{"bad protocol", func(r *pb.ReportTaskStatusRequest) {
			r.Ports = []*pb.PortMapping{{Name: "http", ContainerPort: 80, HostPort: 1, Protocol: "TCP"}}
		}, "ports[0].protocol"},
		{"same host port twice", func(r *pb.ReportTaskStatusRequest) {
			r.Ports = []*pb.PortMapping{{Name: "a", ContainerPort: 80, HostPort: 9}, {Name: "b", ContainerPort: 81, HostPort: 9}}
		}, "ports[1].host_port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.edit(r)
			err := ValidateReport(r)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("valid report refused: %v", err)
				}
				return
			}
			if CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), tt.field+":") {
				t.Fatalf("err = %v (code %v), want InvalidArgument naming %q", err, CodeOf(err), tt.field)
			}
		})
	}
}

// FuzzDecodeValidate feeds arbitrary bytes through the syscall decoders
// (protobuf and JSON, as the API receives them) and the validators. It
// must never panic, and whatever validates must be safe for the table:
// resources finite, positive and bounded.
func FuzzDecodeValidate(f *testing.F) {
	seeds := []proto.Message{
		allocReq(0.5, 64, 1),
		&pb.AllocateRequest{Resources: &pb.Resources{Cpus: math.NaN()}, Count: -3},
		&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}, Count: 20, Gang: &pb.Gang{MinCount: 12}},
		&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}, Count: 3, Gang: &pb.Gang{MinCount: 4}},
		&pb.AllocateRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1 << 20}, Gang: &pb.Gang{MinCount: -1}},
		&pb.LaunchRequest{AllocationId: "a-1", Command: "sh", Args: []string{"-c", "x"}},
		&pb.LaunchRequest{AllocationId: "a-1", Command: "sh", User: "root", WorkingDir: "../.."},
		&pb.LaunchRequest{AllocationId: "a-1", Command: "sh", User: "postgres$", WorkingDir: "a/../../b"},
		&pb.RegisterAgentRequest{Resources: &pb.Resources{Cpus: 2, MemBytes: 1 << 30}, Labels: map[string]string{"zone": "a"}},
		&pb.ReportTaskStatusRequest{TaskId: "t-1", AgentId: "agent-1", State: pb.TaskState_TASK_STATE_RUNNING},
		bridge(&pb.PortRequest{Name: "http", ContainerPort: 8080}, &pb.PortRequest{Name: "dns", ContainerPort: 53, HostPort: 53, Protocol: "udp"}),
		&pb.LaunchRequest{AllocationId: "a-1", Command: "x", Network: "host", Ports: []*pb.PortRequest{{Name: "p", ContainerPort: 70000}}},
		&pb.RegisterAgentRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1}, UnderlayIp: "192.0.2.1"},
		&pb.RegisterAgentRequest{Resources: &pb.Resources{Cpus: 1, MemBytes: 1}, UnderlayIp: "fe80::1%eth0"},
		&pb.LogsRequest{TaskId: "t-1", Streams: []pb.LogStream{pb.LogStream_LOG_STREAM_STDERR}, StdoutCursor: "3:1024", LimitBytes: 10},
		&pb.ExecInput{Start: &pb.ExecStart{TaskId: "t-1", Command: "sh", Tty: true, Size: &pb.TermSize{Rows: 24, Cols: 80}, Env: map[string]string{"A": "b"}}},
		&pb.ReportTaskStatusRequest{TaskId: "t-1", AgentId: "agent-1", State: pb.TaskState_TASK_STATE_RUNNING, Ip: "10.88.0.2",
			Ports: []*pb.PortMapping{{Name: "http", ContainerPort: 8080, HostPort: 31000, Protocol: "tcp"}}},
	}
	for _, s := range seeds {
		b, _ := proto.Marshal(s)
		f.Add(b, false)
		j, _ := protojson.Marshal(s)
		f.Add(j, true)
	}
	f.Add([]byte(`{"resources":{"cpus":"NaN","memBytes":"99999999999999999999"}}`), true)
	f.Fuzz(func(t *testing.T, b []byte, isJSON bool) {
		unmarshal := func(m proto.Message) error {
			if isJSON {
				return protojson.Unmarshal(b, m)
			}
			return proto.Unmarshal(b, m)
		}
		var a pb.AllocateRequest
		if unmarshal(&a) == nil && ValidateAllocate(&a) == nil {
			r := FromProto(a.GetResources())
			if r.MilliCPU <= 0 || r.Mem <= 0 || r.Disk < 0 || r.MilliCPU > MaxCPUs*1000 || r.Mem > MaxBytes || r.Disk > MaxBytes {
				t.Fatalf("validated allocate has unsafe resources %v", r)
			}
			if a.GetCount() < 0 || a.GetCount() > MaxCount {
				t.Fatalf("validated count %d", a.GetCount())
			}
			if m := gangMin(&a); m < 0 || m > max(a.GetCount(), 1) || (a.GetGang() != nil) != (m > 0) {
				t.Fatalf("validated gang %v of count %d: gang_min %d", a.GetGang(), a.GetCount(), m)
			}
		}
		var l pb.LaunchRequest
		if unmarshal(&l) == nil && ValidateLaunch(&l) == nil {
			if l.GetCommand() == "" && l.GetDriver() != "oci" || l.GetCommand() != "" && strings.TrimSpace(l.GetCommand()) == "" || l.GetAllocationId() == "" {
				t.Fatalf("validated launch without command or allocation: %v", &l)
			}
			if n := l.GetNetwork(); n != "" && n != NetworkHost && n != NetworkBridge {
				t.Fatalf("validated launch with network %q", n)
			}
			checkPorts(t, l.GetPorts(), 0, l.GetNetwork() != NetworkBridge)
		}
		var g pb.RegisterAgentRequest
		if unmarshal(&g) == nil && ValidateRegister(&g) == nil {
			if r := FromProto(g.GetResources()); r.MilliCPU <= 0 || r.Mem <= 0 {
				t.Fatalf("validated agent with %v", r)
			}
			if rng, err := ParsePortRange(g.GetHostPorts()); err != nil || g.GetResources().GetPorts() != 0 && g.GetResources().GetPorts() != rng.Size() {
				t.Fatalf("validated agent with host_ports %q (%v), resources.ports %d", g.GetHostPorts(), err, g.GetResources().GetPorts())
			}
			if ip := g.GetUnderlayIp(); ip != "" {
				if a, err := netip.ParseAddr(ip); err != nil || a.IsUnspecified() {
					t.Fatalf("validated agent with underlay_ip %q", ip)
				}
			}
		}
		var s pb.ReportTaskStatusRequest
		if unmarshal(&s) == nil && ValidateReport(&s) == nil {
			if s.GetState() == pb.TaskState_TASK_STATE_PENDING {
				t.Fatal("validated a PENDING report")
			}
			if _, err := netip.ParseAddr(s.GetIp()); s.GetIp() != "" && err != nil {
				t.Fatalf("validated report with ip %q", s.GetIp())
			}
			checkPorts(t, s.GetPorts(), 1, false)
		}
		var lr pb.LogsRequest
		if unmarshal(&lr) == nil && validateLogs(&lr) == nil {
			if lr.Tail != nil && lr.GetTail() < 0 || lr.GetLimitBytes() < 0 || len(lr.GetStdoutCursor()) > 64 || len(lr.GetStderrCursor()) > 64 {
				t.Fatalf("validated logs request %v", &lr)
			}
			for _, st := range lr.GetStreams() {
				if st != pb.LogStream_LOG_STREAM_STDOUT && st != pb.LogStream_LOG_STREAM_STDERR {
					t.Fatalf("validated logs request with stream %v", st)
				}
			}
		}
		var x pb.ExecInput
		if unmarshal(&x) == nil && validateExecStart(x.GetStart()) == nil {
			st := x.GetStart()
			if st.GetCommand() == "" || st.GetSize().GetRows() > 0xffff || st.GetSize().GetCols() > 0xffff || st.GetSize() != nil && !st.GetTty() {
				t.Fatalf("validated exec start %v", st)
			}
			for k := range st.GetEnv() {
				if k == "" || strings.ContainsAny(k, "=\x00") {
					t.Fatalf("validated exec env key %q", k)
				}
			}
		}
	})
}

// checkPorts fails t unless ports are in range (host ports from
// minHost; a host-network task's container port 0 or its host port), with
// unique names and no host port twice per protocol.
func checkPorts[P portSpec](t *testing.T, ps []P, minHost uint32, hostNet bool) {
	t.Helper()
	names, hosts := map[string]bool{}, map[string]bool{}
	for _, p := range ps {
		m := portMapping(p)
		c, h := m.GetContainerPort(), m.GetHostPort()
		if hostNet && h == 0 {
			h = c
		}
		key := fmt.Sprint(h, m.GetProtocol())
		if hostNet && (c == 0 || h == 0 || c == h) && c <= 65535 {
			c = 1 // what a host-network task may ask for
		}
		if names[m.GetName()] || c < 1 || c > 65535 || m.GetHostPort() < minHost ||
			m.GetHostPort() > 65535 || h != 0 && hosts[key] || (m.GetProtocol() != ProtocolTCP && m.GetProtocol() != ProtocolUDP) {
			t.Fatalf("validated ports %v", ps)
		}
		names[m.GetName()] = true
		hosts[key] = true
	}
}

func TestValidateLaunch_KillGracePeriod(t *testing.T) {
	tests := []struct {
		name  string
		grace *durationpb.Duration
		want  string // "" when valid
	}{
		{"unset", nil, ""},
		{"zero", durationpb.New(0), ""},
		{"300ms", durationpb.New(300 * time.Millisecond), ""},
		{"10min", durationpb.New(10 * time.Minute), ""},
		{"too long", durationpb.New(10*time.Minute + time.Second), "kill_grace_period: must be between 0s and 10m, got 10m1s"},
		{"negative", durationpb.New(-time.Second), "kill_grace_period: must be between 0s and 10m, got -1s"},
		{"invalid", &durationpb.Duration{Seconds: 1, Nanos: -1}, "kill_grace_period: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateLaunch(&pb.LaunchRequest{AllocationId: "a-1", Command: "x", KillGracePeriod: tt.grace})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			if CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want InvalidArgument %q", err, tt.want)
			}
		})
	}
}

func TestTable_LaunchKillGracePeriod(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(1, 64, 2))
	with, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "x",
		KillGracePeriod: durationpb.New(300 * time.Millisecond)}, t0, newChanges())
	if err != nil {
		t.Fatal(err)
	}
	if got := with.GetKillGracePeriod(); got == nil || got.AsDuration() != 300*time.Millisecond {
		t.Errorf("kill_grace_period = %v, want 300ms", got)
	}
	without, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[1].GetId(), Command: "x"}, t0, newChanges())
	if err != nil {
		t.Fatal(err)
	}
	if without.GetKillGracePeriod() != nil {
		t.Errorf("kill_grace_period = %v, want unset (the agent's default)", without.GetKillGracePeriod())
	}
}

func TestValidateLaunch_Logs(t *testing.T) {
	tests := []struct {
		name string
		logs *pb.LogConfig
		want string // "" when valid
	}{
		{"unset", nil, ""},
		{"zeros", &pb.LogConfig{}, ""},
		{"64Ki x 100", &pb.LogConfig{MaxBytes: 64 << 10, MaxFiles: 100}, ""},
		{"bounds", &pb.LogConfig{MaxBytes: 4 << 10, MaxFiles: 1}, ""},
		{"1Gi", &pb.LogConfig{MaxBytes: 1 << 30}, ""},
		{"too small", &pb.LogConfig{MaxBytes: 4095}, "logs.max_bytes: must be 0"},
		{"too large", &pb.LogConfig{MaxBytes: 1<<30 + 1}, "logs.max_bytes: must be 0"},
		{"negative bytes", &pb.LogConfig{MaxBytes: -1}, "logs.max_bytes: must be 0"},
		{"too many files", &pb.LogConfig{MaxFiles: 101}, "logs.max_files: must be 0"},
		{"negative files", &pb.LogConfig{MaxFiles: -1}, "logs.max_files: must be 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateLaunch(&pb.LaunchRequest{AllocationId: "a-1", Command: "x", Logs: tt.logs})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			if CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got %v, want InvalidArgument %q", err, tt.want)
			}
		})
	}
	tb := cluster(t, agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(1, 64, 1))
	k, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "x", Logs: &pb.LogConfig{MaxBytes: 64 << 10, MaxFiles: 7}}, t0, newChanges())
	if err != nil {
		t.Fatal(err)
	}
	if k.GetLogs().GetMaxBytes() != 64<<10 || k.GetLogs().GetMaxFiles() != 7 {
		t.Fatalf("task logs = %v, want the launch's", k.GetLogs())
	}
}
