package kernel

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestValidateLaunch_HealthCheck(t *testing.T) {
	d := durationpb.New
	http := func(h *pb.HTTPCheck) *pb.HealthCheck { return &pb.HealthCheck{Http: h} }
	tcp := &pb.HealthCheck{Tcp: &pb.TCPCheck{Port: 80}}
	with := func(f func(*pb.HealthCheck)) *pb.HealthCheck {
		hc := proto.Clone(tcp).(*pb.HealthCheck)
		f(hc)
		return hc
	}
	tests := []struct {
		name  string
		hc    *pb.HealthCheck
		field string // "" when valid
	}{
		{"http by name", http(&pb.HTTPCheck{Path: "/health", PortName: "web"}), ""},
		{"http by number", http(&pb.HTTPCheck{Port: 8080, StatusMin: 200, StatusMax: 204}), ""},
		{"tcp", tcp, ""},
		{"command", &pb.HealthCheck{Command: &pb.CommandCheck{Command: "true"}}, ""},
		{"none", &pb.HealthCheck{}, "health_check: exactly one"},
		{"two", &pb.HealthCheck{Tcp: &pb.TCPCheck{Port: 1}, Command: &pb.CommandCheck{Command: "true"}}, "health_check: exactly one"},
		{"grace 0", with(func(h *pb.HealthCheck) { h.GracePeriod = d(0) }), ""},
		{"grace 1h", with(func(h *pb.HealthCheck) { h.GracePeriod = d(time.Hour) }), ""},
		{"grace too long", with(func(h *pb.HealthCheck) { h.GracePeriod = d(time.Hour + time.Second) }), "health_check.grace_period"},
		{"grace negative", with(func(h *pb.HealthCheck) { h.GracePeriod = d(-time.Second) }), "health_check.grace_period"},
		{"interval 0", with(func(h *pb.HealthCheck) { h.Interval = d(0) }), "health_check.interval: must be between 10ms and 1h, got 0s"},
		{"interval 10ms", with(func(h *pb.HealthCheck) { h.Interval = d(10 * time.Millisecond); h.Timeout = d(10 * time.Millisecond) }), ""},
		{"interval too long", with(func(h *pb.HealthCheck) { h.Interval = d(2 * time.Hour) }), "health_check.interval"},
		{"timeout too short", with(func(h *pb.HealthCheck) { h.Timeout = d(time.Millisecond) }), "health_check.timeout"},
		{"timeout too long", with(func(h *pb.HealthCheck) { h.Interval = d(time.Hour); h.Timeout = d(6 * time.Minute) }), "health_check.timeout"},
		{"timeout over interval", with(func(h *pb.HealthCheck) { h.Interval = d(time.Second); h.Timeout = d(2 * time.Second) }), "health_check.timeout: must be at most the interval"},
		{"timeout over default interval", with(func(h *pb.HealthCheck) { h.Timeout = d(11 * time.Second) }), "health_check.timeout"},
		{"short interval, default timeout", with(func(h *pb.HealthCheck) { h.Interval = d(100 * time.Millisecond) }), ""},
		{"failures 100", with(func(h *pb.HealthCheck) { h.ConsecutiveFailures = 100 }), ""},
		{"failures 101", with(func(h *pb.HealthCheck) { h.ConsecutiveFailures = 101 }), "health_check.consecutive_failures"},
		{"failures negative", with(func(h *pb.HealthCheck) { h.ConsecutiveFailures = -1 }), "health_check.consecutive_failures"},
		{"path relative", http(&pb.HTTPCheck{Path: "health", Port: 80}), "health_check.http.path"},
		{"path with space", http(&pb.HTTPCheck{Path: "/a b", Port: 80}), "health_check.http.path"},
		{"status min low", http(&pb.HTTPCheck{Port: 80, StatusMin: 99}), "health_check.http.status_min"},
		{"status max high", http(&pb.HTTPCheck{Port: 80, StatusMax: 600}), "health_check.http.status_max"},
		{"status min over max", http(&pb.HTTPCheck{Port: 80, StatusMin: 500, StatusMax: 400}), "health_check.http.status_max"},
		{"status min over default max", http(&pb.HTTPCheck{Port: 80, StatusMin: 404}), "health_check.http.status_max"},
		{"unknown port name", http(&pb.HTTPCheck{PortName: "admin"}), "health_check.http.port_name"},
		{"no port", http(&pb.HTTPCheck{}), "health_check.http.port"},
		{"port too big", &pb.HealthCheck{Tcp: &pb.TCPCheck{Port: 65536}}, "health_check.tcp.port"},
		{"port name and number", &pb.HealthCheck{Tcp: &pb.TCPCheck{PortName: "web", Port: 80}}, "health_check.tcp"},
		{"tcp unknown name", &pb.HealthCheck{Tcp: &pb.TCPCheck{PortName: "nope"}}, "health_check.tcp.port_name"},
		{"empty command", &pb.HealthCheck{Command: &pb.CommandCheck{Command: " "}}, "health_check.command.command"},
		{"NUL in command arg", &pb.HealthCheck{Command: &pb.CommandCheck{Command: "x", Args: []string{"\x00"}}}, "health_check.command.args[0]"},
	}
	for _, tt := range tests {
		for _, field := range []string{"health_check", "readiness_check"} {
			t.Run(field+"/"+tt.name, func(t *testing.T) {
				r := &pb.LaunchRequest{AllocationId: "a-1", Command: "x", Ports: []*pb.PortRequest{{Name: "web"}}}
				if field == "health_check" {
					r.HealthCheck = tt.hc
				} else {
					r.ReadinessCheck = tt.hc
				}
				err := ValidateLaunch(r)
				if tt.field == "" {
					if err != nil {
						t.Fatal(err)
					}
					return
				}
				want := strings.Replace(tt.field, "health_check", field, 1)
				if CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("err = %v, want InvalidArgument starting %q", err, want)
				}
			})
		}
	}
}

func TestWithHealthDefaults(t *testing.T) {
	in := &pb.HealthCheck{Http: &pb.HTTPCheck{Port: 80}, Interval: durationpb.New(time.Second)}
	got := WithHealthDefaults(in)
	want := &pb.HealthCheck{
		Http:                &pb.HTTPCheck{Path: "/", Port: 80, StatusMin: 200, StatusMax: 399},
		GracePeriod:         durationpb.New(30 * time.Second),
		Interval:            durationpb.New(time.Second),
		Timeout:             durationpb.New(time.Second), // at most the interval
		ConsecutiveFailures: 3,
	}
	if !proto.Equal(got, want) {
		t.Fatalf("WithHealthDefaults = %v, want %v", got, want)
	}
	if in.GracePeriod != nil || in.Http.Path != "" {
		t.Fatal("WithHealthDefaults modified its argument")
	}
	if WithHealthDefaults(nil) != nil {
		t.Fatal("nil check got defaults")
	}
}

func TestTable_LaunchHealthDefaults(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(1, 64, 1))
	task, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "x",
		HealthCheck:    &pb.HealthCheck{Command: &pb.CommandCheck{Command: "true"}},
		ReadinessCheck: &pb.HealthCheck{Tcp: &pb.TCPCheck{Port: 80}, ConsecutiveFailures: 7}}, t0, newChanges())
	if err != nil {
		t.Fatal(err)
	}
	if got := task.GetHealthCheck(); got.GetInterval().AsDuration() != DefaultHealthInterval || got.GetTimeout().AsDuration() != DefaultHealthTimeout ||
		got.GetGracePeriod().AsDuration() != DefaultHealthGrace || got.GetConsecutiveFailures() != DefaultHealthFailures || got.GetCommand().GetCommand() != "true" {
		t.Errorf("health_check = %v, want the defaults filled in", got)
	}
	if got := task.GetReadinessCheck(); got.GetConsecutiveFailures() != 7 || got.GetTcp().GetPort() != 80 {
		t.Errorf("readiness_check = %v", got)
	}
	if task.GetHealth() != pb.HealthState_HEALTH_STATE_UNKNOWN || task.GetReady() {
		t.Errorf("a new task is %v ready=%v, want UNKNOWN and not ready", task.GetHealth(), task.GetReady())
	}
}

func TestTable_ReportHealth(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil), agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(1, 64, 1))
	task, _ := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "x",
		HealthCheck: &pb.HealthCheck{Tcp: &pb.TCPCheck{Port: 80}}}, t0, newChanges())
	running := pb.TaskState_TASK_STATE_RUNNING
	if err := tb.Report(ops, &pb.ReportTaskStatusRequest{TaskId: task.GetId(), AgentId: "agent-1", State: running, Pid: 42}, t0, newChanges()); err != nil {
		t.Fatal(err)
	}
	healthEvents := func(c *Changes) (n int, last *pb.Event) {
		for _, e := range c.Events {
			if e.GetKind() == pb.EventKind_EVENT_KIND_TASK_HEALTH {
				n, last = n+1, e
			} else {
				t.Errorf("unexpected %v event", e.GetKind())
			}
		}
		return n, last
	}
	report := func(agent string, h pb.HealthState, msg string, ready bool) (*Changes, error) {
		c := newChanges()
		err := tb.Report(ops, &pb.ReportTaskStatusRequest{TaskId: task.GetId(), AgentId: agent, State: running,
			Health: &pb.TaskHealthReport{Health: h, Message: msg, Ready: ready}}, t0, c)
		return c, err
	}
	steps := []struct {
		name   string
		health pb.HealthState
		msg    string
		ready  bool
		events int
	}{
		{"healthy", pb.HealthState_HEALTH_STATE_HEALTHY, "", true, 1},
		{"healthy again", pb.HealthState_HEALTH_STATE_HEALTHY, "", true, 0},
		{"unhealthy", pb.HealthState_HEALTH_STATE_UNHEALTHY, "dial tcp 127.0.0.1:80: connection refused", false, 1},
		{"same failure", pb.HealthState_HEALTH_STATE_UNHEALTHY, "dial tcp 127.0.0.1:80: connection refused", false, 0},
		{"new message", pb.HealthState_HEALTH_STATE_UNHEALTHY, "dial tcp 127.0.0.1:80: i/o timeout", false, 1},
		{"ready changes alone", pb.HealthState_HEALTH_STATE_UNHEALTHY, "dial tcp 127.0.0.1:80: i/o timeout", true, 1},
	}
	for _, s := range steps {
		c, err := report("agent-1", s.health, s.msg, s.ready)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		n, e := healthEvents(c)
		if n != s.events {
			t.Fatalf("%s: %d TASK_HEALTH events, want %d", s.name, n, s.events)
		}
		k := tb.tasks[task.GetId()]
		if k.GetHealth() != s.health || k.GetHealthMessage() != s.msg || k.GetReady() != s.ready || k.GetPid() != 42 || k.GetState() != running {
			t.Fatalf("%s: task is %v %q ready=%v pid %d %v", s.name, k.GetHealth(), k.GetHealthMessage(), k.GetReady(), k.GetPid(), k.GetState())
		}
		if n == 1 {
			if e.GetReason() != s.msg || e.GetTask().GetHealth() != s.health || e.GetTask().GetId() != task.GetId() {
				t.Fatalf("%s: event %v", s.name, e)
			}
			if c.Tasks[task.GetId()] == nil {
				t.Fatalf("%s: the change is not persisted", s.name)
			}
		}
	}
	// Another agent's report is refused and changes nothing.
	if _, err := report("agent-2", pb.HealthState_HEALTH_STATE_HEALTHY, "", true); CodeOf(err) != PermissionDenied {
		t.Fatalf("health report from another agent: %v", err)
	}
	if tb.tasks[task.GetId()].GetHealth() != pb.HealthState_HEALTH_STATE_UNHEALTHY {
		t.Fatal("a refused report changed the task")
	}
}

func TestValidateReport_Health(t *testing.T) {
	r := &pb.ReportTaskStatusRequest{TaskId: "t-1", AgentId: "agent-1", State: pb.TaskState_TASK_STATE_RUNNING,
		Health: &pb.TaskHealthReport{Health: 9}}
	if err := ValidateReport(r); CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), "health.health") {
		t.Fatalf("unknown health state: %v", err)
	}
	r.Health = &pb.TaskHealthReport{Health: pb.HealthState_HEALTH_STATE_UNHEALTHY, Message: strings.Repeat("x", 4097)}
	if err := ValidateReport(r); CodeOf(err) != InvalidArgument || !strings.HasPrefix(err.Error(), "health.message") {
		t.Fatalf("long message: %v", err)
	}
}

func TestTable_ReportReadyWithoutChecks(t *testing.T) {
	tb := cluster(t, agentReq(4, 1024, nil))
	as, _ := allocate(tb, fwA, allocReq(1, 64, 1))
	task, _ := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "x"}, t0, newChanges())
	for _, s := range []pb.TaskState{pb.TaskState_TASK_STATE_STARTING, pb.TaskState_TASK_STATE_RUNNING, pb.TaskState_TASK_STATE_FINISHED} {
		c := newChanges()
		if err := tb.Report(ops, &pb.ReportTaskStatusRequest{TaskId: task.GetId(), AgentId: "agent-1", State: s, Pid: 42}, t0, c); err != nil {
			t.Fatal(err)
		}
		if want := s == pb.TaskState_TASK_STATE_RUNNING; tb.tasks[task.GetId()].GetReady() != want {
			t.Errorf("%v: ready = %v, want %v", s, !want, want)
		}
		if len(c.Events) != 1 || c.Events[0].GetKind() != pb.EventKind_EVENT_KIND_TASK_STATE {
			t.Errorf("%v: events %v, want one TASK_STATE", s, c.Events)
		}
	}
}

// Ends the kernel decides (a revoked task, a revoked allocation, an agent
// lost) clear ready as an end the agent reports does, and keep the health
// last seen.
func TestTable_KernelEndClearsReady(t *testing.T) {
	tests := []struct {
		name  string
		end   func(tb *Table, alloc, task string, c *Changes) error
		state pb.TaskState
	}{
		{"revoke task", func(tb *Table, _, task string, c *Changes) error {
			return tb.Revoke(fwA, task, "scale down", t0, c)
		}, pb.TaskState_TASK_STATE_KILLED},
		{"revoke allocation", func(tb *Table, alloc, _ string, c *Changes) error {
			return tb.Revoke(fwA, alloc, "scale down", t0, c)
		}, pb.TaskState_TASK_STATE_KILLED},
		{"agent lost", func(tb *Table, _, _ string, c *Changes) error {
			tb.Expire(t0.Add(time.Hour), 10*time.Second, c)
			return nil
		}, pb.TaskState_TASK_STATE_LOST},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := cluster(t, agentReq(4, 1024, nil))
			as, _ := allocate(tb, fwA, allocReq(1, 64, 1))
			task, err := tb.Launch(fwA, &pb.LaunchRequest{AllocationId: as[0].GetId(), Command: "x",
				HealthCheck: &pb.HealthCheck{Tcp: &pb.TCPCheck{Port: 80}}}, t0, newChanges())
			if err != nil {
				t.Fatal(err)
			}
			if err := tb.Report(ops, &pb.ReportTaskStatusRequest{TaskId: task.GetId(), AgentId: "agent-1", State: pb.TaskState_TASK_STATE_RUNNING, Pid: 42,
				Health: &pb.TaskHealthReport{Health: pb.HealthState_HEALTH_STATE_HEALTHY, Ready: true}}, t0, newChanges()); err != nil {
				t.Fatal(err)
			}
			if !tb.tasks[task.GetId()].GetReady() {
				t.Fatal("the task is not ready before its end")
			}
			c := newChanges()
			if err := tt.end(tb, as[0].GetId(), task.GetId(), c); err != nil {
				t.Fatal(err)
			}
			var ended *pb.Task
			for _, e := range c.Events {
				if e.GetKind() == pb.EventKind_EVENT_KIND_TASK_STATE && e.GetTask().GetId() == task.GetId() {
					ended = e.GetTask()
				}
			}
			if ended == nil {
				t.Fatalf("no TASK_STATE event for %s in %v", task.GetId(), c.Events)
			}
			if ended.GetState() != tt.state || ended.GetReady() || ended.GetHealth() != pb.HealthState_HEALTH_STATE_HEALTHY {
				t.Fatalf("ended task is %v ready=%v health %v, want %v, not ready, HEALTHY as last seen",
					ended.GetState(), ended.GetReady(), ended.GetHealth(), tt.state)
			}
		})
	}
}
