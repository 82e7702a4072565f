package ctl

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// rows splits a table into its rows of whitespace-separated fields.
func rows(out string) [][]string {
	var r [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		r = append(r, strings.Fields(l))
	}
	return r
}

func TestRun_Agents(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).replyWith("ListAgents", &syscallsv1.ListAgentsResponse{Agents: []*syscallsv1.Agent{{
		Id: "ag-1", Hostname: "node1", State: syscallsv1.AgentState_AGENT_STATE_UP, Subnet: "10.88.0.0/24", UnderlayIp: "192.0.2.1",
		Labels:    map[string]string{"zone": "b", "gpu": "none"},
		Total:     &syscallsv1.Resources{Cpus: 8, MemBytes: 16 << 30, Ports: 1001},
		Allocated: &syscallsv1.Resources{Cpus: 1.5, MemBytes: 512 << 20, Ports: 2},
		HostPorts: "31000-32000",
	}, {Id: "ag-2", Hostname: "node2", State: syscallsv1.AgentState_AGENT_STATE_LOST},
		{Id: "ag-3", Hostname: "node3", State: syscallsv1.AgentState_AGENT_STATE_UP, Draining: true, DrainDeadline: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))},
	}}, nil)
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "agents")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := [][]string{
		{"ID", "HOSTNAME", "STATE", "SUBNET", "CPUS", "MEM", "PORTS", "LABELS"},
		{"ag-1", "node1", "UP", "10.88.0.0/24", "1.5/8", "512Mi/16Gi", "2/1001(31000-32000)", "gpu=none,zone=b"},
		{"ag-2", "node2", "LOST", "-", "0/0", "0/0", "-", "-"},
		{"ag-3", "node3", "UP,DRAINING", "-", "0/0", "0/0", "-", "-"},
	}
	if got := rows(r.stdout); !equalRows(got, want) {
		t.Errorf("got\n%s\nwant %q", r.stdout, want)
	}
	r = runCtl(t, context.Background(), "", "--kernel", url, "agents", "-o", "json")
	for _, s := range []string{`"subnet": "10.88.0.0/24"`, `"underlayIp": "192.0.2.1"`, `"hostPorts": "31000-32000"`, `"draining": true`, `"drainDeadline": "2026-01-02T03:04:05Z"`} {
		if r.code != 0 || !strings.Contains(r.stdout, s) {
			t.Errorf("agents -o json: exit %d, lacks %s:\n%s", r.code, s, r.stdout)
		}
	}
}

func TestRun_Allocs(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).replyWith("ListAllocations", &syscallsv1.ListAllocationsResponse{Allocations: []*syscallsv1.Allocation{
		{Id: "a-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED, AgentId: "ag-1", Resources: &syscallsv1.Resources{Cpus: 0.5, MemBytes: 64 << 20, Ports: 2}, Role: "web", Owner: "alice", HostPorts: []uint32{31000, 31001}},
		{Id: "a-2", State: syscallsv1.AllocationState_ALLOCATION_STATE_PENDING, Resources: &syscallsv1.Resources{Cpus: 64, MemBytes: 1 << 40, Ports: 3}, Owner: "bob", PendingReason: "too big"},
		{Id: "a-3", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED, AgentId: "ag-1", Resources: &syscallsv1.Resources{Cpus: 1, MemBytes: 1 << 20}, Owner: "bob"},
	}}, nil)
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "allocs", "--agent", "ag-1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	assertProto(t, k.last("ListAllocations"), &syscallsv1.ListAllocationsRequest{AgentId: "ag-1"})
	want := [][]string{
		{"ID", "STATE", "AGENT", "CPUS", "MEM", "HOST_PORTS", "ROLE", "OWNER", "REASON"},
		{"a-1", "GRANTED", "ag-1", "0.5", "64Mi", "31000,31001", "web", "alice", "-"},
		{"a-2", "PENDING", "-", "64", "1Ti", "(3)", "-", "bob", "too", "big"},
		{"a-3", "GRANTED", "ag-1", "1", "1Mi", "-", "-", "bob", "-"},
	}
	if got := rows(r.stdout); !equalRows(got, want) {
		t.Errorf("got\n%s\nwant %q", r.stdout, want)
	}
}

func TestRun_Ps(t *testing.T) {
	isolate(t)
	ts := func(ago time.Duration) *timestamppb.Timestamp { return timestamppb.New(testNow.Add(-ago)) }
	tasks := []*syscallsv1.Task{
		{Id: "t-1", AllocationId: "a-1", AgentId: "ag-1", State: syscallsv1.TaskState_TASK_STATE_RUNNING, Pid: 4242, Command: "sleep", Args: []string{"60"}, Created: ts(90 * time.Second),
			Network: "bridge", Ip: "10.88.0.7", Ports: []*syscallsv1.PortMapping{{Name: "http", ContainerPort: 8080, HostPort: 31000, Protocol: "tcp"}, {Name: "dns", ContainerPort: 53, HostPort: 31001, Protocol: "udp"}},
			HealthCheck: &syscallsv1.HealthCheck{Http: &syscallsv1.HTTPCheck{Path: "/health", PortName: "http"}}, Health: syscallsv1.HealthState_HEALTH_STATE_UNHEALTHY,
			HealthMessage: "GET http://10.88.0.7:8080/health: status 503"},
		{Id: "t-4", AllocationId: "a-2", AgentId: "ag-2", State: syscallsv1.TaskState_TASK_STATE_RUNNING, Pid: 7, Command: "x", Created: ts(time.Minute),
			Health: syscallsv1.HealthState_HEALTH_STATE_HEALTHY, Ready: true},
		{Id: "t-5", AllocationId: "a-2", AgentId: "ag-2", State: syscallsv1.TaskState_TASK_STATE_STARTING, Command: "x", Created: ts(time.Minute)},
		{Id: "t-2", AllocationId: "a-1", AgentId: "ag-1", State: syscallsv1.TaskState_TASK_STATE_FAILED, ExitCode: 3, Command: "sh", Args: []string{"-c", "exit 3"}, Created: ts(3 * time.Hour)},
		{Id: "t-3", AllocationId: "a-2", AgentId: "ag-2", State: syscallsv1.TaskState_TASK_STATE_LOST, Reason: "agent lost", Command: "x", Created: ts(72 * time.Hour)},
	}
	k := (&fakeKernel{}).replyWith("ListTasks", &syscallsv1.ListTasksResponse{Tasks: tasks, Revision: 5}, nil)
	url := k.serve(t)
	tests := []struct {
		name string
		args []string
		want [][]string
	}{
		{"live only", nil, [][]string{
			{"ID", "ALLOCATION", "AGENT", "IP", "PORTS", "STATE", "HEALTH", "READY", "REASON", "PID", "AGE", "COMMAND"},
			{"t-1", "a-1", "ag-1", "10.88.0.7", "http:31000->8080,dns:31001->53/udp", "RUNNING", "unhealthy", "no", "-", "4242", "1m", "sleep", "60"},
			{"t-4", "a-2", "ag-2", "-", "-", "RUNNING", "healthy", "yes", "-", "7", "1m", "x"},
			{"t-5", "a-2", "ag-2", "-", "-", "STARTING", "-", "no", "-", "-", "1m", "x"},
		}},
		{"all", []string{"--all"}, [][]string{
			{"ID", "ALLOCATION", "AGENT", "IP", "PORTS", "STATE", "HEALTH", "READY", "REASON", "PID", "AGE", "COMMAND"},
			{"t-1", "a-1", "ag-1", "10.88.0.7", "http:31000->8080,dns:31001->53/udp", "RUNNING", "unhealthy", "no", "-", "4242", "1m", "sleep", "60"},
			{"t-4", "a-2", "ag-2", "-", "-", "RUNNING", "healthy", "yes", "-", "7", "1m", "x"},
			{"t-5", "a-2", "ag-2", "-", "-", "STARTING", "-", "no", "-", "-", "1m", "x"},
			{"t-2", "a-1", "ag-1", "-", "-", "FAILED", "-", "-", "exit", "3", "-", "3h", "sh", "-c", `"exit`, `3"`},
			{"t-3", "a-2", "ag-2", "-", "-", "LOST", "-", "-", "agent", "lost", "-", "3d", "x"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "ps"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if got := rows(r.stdout); !equalRows(got, tt.want) {
				t.Errorf("got\n%s\nwant %q", r.stdout, tt.want)
			}
		})
	}
	t.Run("json filters too", func(t *testing.T) {
		r := runCtl(t, context.Background(), "", "--kernel", url, "ps", "-o", "json", "--alloc", "a-1")
		got := &syscallsv1.ListTasksResponse{}
		if err := protojson.Unmarshal([]byte(r.stdout), got); err != nil {
			t.Fatal(err)
		}
		assertProto(t, got, &syscallsv1.ListTasksResponse{Tasks: tasks[:3], Revision: 5})
		assertProto(t, k.last("ListTasks"), &syscallsv1.ListTasksRequest{AllocationId: "a-1"})
		for _, s := range []string{`"ip": "10.88.0.7"`, `"network": "bridge"`, `"hostPort": 31000`, `"health": "HEALTH_STATE_UNHEALTHY"`,
			`"healthMessage": "GET http://10.88.0.7:8080/health: status 503"`, `"portName": "http"`} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("ps -o json lacks %s:\n%s", s, r.stdout)
			}
		}
	})
}

func equalRows(a, b [][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if strings.Join(a[i], "\x00") != strings.Join(b[i], "\x00") {
			return false
		}
	}
	return true
}

func TestRun_Kernels(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).replyWith("ClusterInfo", &syscallsv1.ClusterInfoResponse{Leader: "http://k2:7070", Kernels: []*syscallsv1.KernelInfo{
		{Url: "http://k1:7070", Since: timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))},
		{Url: "http://k2:7070", Leader: true},
	}}, nil)
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "kernels")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := [][]string{
		{"URL", "ROLE", "SINCE"},
		{"http://k1:7070", "standby", "2026-01-02T03:04:05Z"},
		{"http://k2:7070", "leader", "-"},
	}
	if got := rows(r.stdout); !equalRows(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
