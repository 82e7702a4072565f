package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

const (
	healthy   = syscallsv1.HealthState_HEALTH_STATE_HEALTHY
	unhealthy = syscallsv1.HealthState_HEALTH_STATE_UNHEALTHY
)

// check is a health check as the kernel hands it to agents (defaults
// filled in), probing fast: every 20ms, timeout 20ms unless set, no grace
// period, failures failures in a row.
func check(failures int32) *syscallsv1.HealthCheck {
	return &syscallsv1.HealthCheck{
		GracePeriod: durationpb.New(0), Interval: durationpb.New(20 * time.Millisecond),
		Timeout: durationpb.New(20 * time.Millisecond), ConsecutiveFailures: failures,
	}
}

func commandCheck(failures int32, command string, args ...string) *syscallsv1.HealthCheck {
	c := check(failures)
	c.Command = &syscallsv1.CommandCheck{Command: command, Args: args}
	c.Timeout = durationpb.New(5 * time.Second) // a process start, not a deadline
	c.Interval = durationpb.New(5 * time.Second)
	return c
}

// healthReports returns the health reports of task id, in order.
func (k *fakeKernel) healthReports(id string) []*syscallsv1.TaskHealthReport {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []*syscallsv1.TaskHealthReport
	for _, r := range k.reports {
		if r.GetTaskId() == id && r.GetHealth() != nil {
			out = append(out, r.GetHealth())
		}
	}
	return out
}

// waitHealth waits for a health report of task id with health h and
// returns it; every health report must say RUNNING.
func (k *fakeKernel) waitHealth(t *testing.T, id string, h syscallsv1.HealthState) *syscallsv1.TaskHealthReport {
	t.Helper()
	var got *syscallsv1.TaskHealthReport
	k.waitFor(t, fmt.Sprintf("%s %v", id, h), func() bool {
		for _, r := range k.reports {
			if r.GetTaskId() == id && r.GetHealth() != nil {
				if r.GetState() != running || r.GetPid() == 0 {
					t.Errorf("health report %v: want state RUNNING with the pid", r)
				}
				if r.GetHealth().GetHealth() == h {
					got = r.GetHealth()
				}
			}
		}
		return got != nil
	})
	return got
}

// freePort returns a TCP port of 127.0.0.1 nobody listens on (now).
func freePort(t *testing.T) uint32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port)
}

func TestAgent_HealthHTTP(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	port := freePort(t)
	server := []string{"-c", "exec python3 -m http.server --bind 127.0.0.1 " + strconv.Itoa(int(port))}
	task := newTask("t-web", a.ID(), pending, "sh", server...)
	task.Ports = []*syscallsv1.PortMapping{{Name: "web", HostPort: port, Protocol: "tcp"}}
	task.HealthCheck = check(3)
	task.HealthCheck.GracePeriod = durationpb.New(time.Hour) // python starts slowly
	task.HealthCheck.Timeout = durationpb.New(time.Second)
	task.HealthCheck.Interval = durationpb.New(time.Second)
	task.HealthCheck.Http = &syscallsv1.HTTPCheck{Path: "/", PortName: "web", StatusMin: 200, StatusMax: 399}
	// The readiness check asks for a path the server answers 404: it
	// never passes, and after 2 failures the task is not ready, with the
	// failure's message.
	task.ReadinessCheck = check(2)
	task.ReadinessCheck.Timeout = durationpb.New(time.Second)
	task.ReadinessCheck.Interval = durationpb.New(time.Second)
	task.ReadinessCheck.Http = &syscallsv1.HTTPCheck{Path: "/missing", Port: port, StatusMin: 200, StatusMax: 399}
	k.pushTask(task)
	k.waitReport(t, "t-web", running)

	h := k.waitHealth(t, "t-web", healthy)
	want := fmt.Sprintf("readiness: GET http://127.0.0.1:%d/missing: status 404", port)
	if h.GetReady() {
		t.Errorf("ready with a failing readiness check: %v", h)
	}
	k.waitFor(t, "the readiness failure's message", func() bool {
		for _, r := range k.reports {
			if r.GetTaskId() == "t-web" && r.GetHealth().GetMessage() == want {
				return true
			}
		}
		return false
	})
	for _, r := range k.healthReports("t-web") {
		if r.GetHealth() == unhealthy {
			t.Errorf("a serving task reported UNHEALTHY: %v", r)
		}
	}
}

func TestAgent_HealthHTTPStatus(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	port := freePort(t)
	task := newTask("t-404", a.ID(), pending, "python3", "-m", "http.server", "--bind", "127.0.0.1", strconv.Itoa(int(port)))
	task.HealthCheck = check(3)
	task.HealthCheck.Timeout = durationpb.New(time.Second)
	task.HealthCheck.Interval = durationpb.New(time.Second)
	task.HealthCheck.Http = &syscallsv1.HTTPCheck{Path: "/health", Port: port, StatusMin: 200, StatusMax: 399}
	k.pushTask(task)
	// Until the server listens, the probes' message is "connection
	// refused"; then the 404 (the message change is reported).
	want := fmt.Sprintf("GET http://127.0.0.1:%d/health: status 404", port)
	k.waitFor(t, want, func() bool {
		for _, r := range k.reports {
			if h := r.GetHealth(); r.GetTaskId() == "t-404" && h.GetMessage() == want {
				return h.GetHealth() == unhealthy && !h.GetReady()
			}
		}
		return false
	})
	for _, h := range k.healthReports("t-404") {
		if h.GetHealth() != unhealthy {
			t.Errorf("reported %v", h)
		}
	}
}

func TestAgent_HealthTCPClosedPort(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	port := freePort(t)
	task := newTask("t-tcp", a.ID(), pending, "sleep", "300")
	task.HealthCheck = check(2)
	task.HealthCheck.Tcp = &syscallsv1.TCPCheck{Port: port}
	k.pushTask(task)
	h := k.waitHealth(t, "t-tcp", unhealthy)
	if want := fmt.Sprintf("dial tcp 127.0.0.1:%d: connect: connection refused", port); h.GetMessage() != want {
		t.Errorf("message %q, want %q", h.GetMessage(), want)
	}
}

func TestAgent_HealthCommand(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	tests := []struct {
		id      string
		check   *syscallsv1.HealthCheck
		health  syscallsv1.HealthState
		message string
		ready   bool
	}{
		{"t-true", commandCheck(1, "true"), healthy, "", true},
		{"t-false", commandCheck(1, "sh", "-c", "echo broken >&2; echo more >&2; exit 3"), unhealthy, "command exited 3: broken", false},
		{"t-missing", commandCheck(1, "no-such-check"), unhealthy, "command exited 127: exec no-such-check: no such file or directory", false},
		// It runs in the task's sandbox with the task's environment.
		{"t-env", commandCheck(1, "sh", "-c", `test "$PWD" = "$DCOS_SANDBOX" && test "$CHECK" = yes`), healthy, "", true},
	}
	for _, tt := range tests {
		task := newTask(tt.id, a.ID(), pending, "sleep", "300")
		task.Env = map[string]string{"CHECK": "yes"}
		task.HealthCheck = tt.check
		k.pushTask(task)
	}
	for _, tt := range tests {
		h := k.waitHealth(t, tt.id, tt.health)
		if h.GetMessage() != tt.message || h.GetReady() != tt.ready {
			t.Errorf("%s: report %v, want message %q ready %v", tt.id, h, tt.message, tt.ready)
		}
	}
}

func TestAgent_HealthGracePeriod(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	task := newTask("t-grace", a.ID(), pending, "sleep", "300")
	// Every probe fails and leaves a line in the sandbox; within the
	// hour of grace none counts.
	task.HealthCheck = commandCheck(1, "sh", "-c", "echo probe >> probes; exit 1")
	task.HealthCheck.GracePeriod = durationpb.New(time.Hour)
	task.HealthCheck.Interval = durationpb.New(time.Second)
	task.HealthCheck.Timeout = durationpb.New(time.Second)
	k.pushTask(task)
	k.waitReport(t, "t-grace", running)
	probes := filepath.Join(a.dataDir, "sandboxes", "t-grace", "probes")
	eventually(t, "5 failed probes", func() bool {
		b, _ := os.ReadFile(probes)
		return strings.Count(string(b), "probe\n") >= 5
	})
	if hs := k.healthReports("t-grace"); len(hs) != 0 {
		t.Errorf("failures within the grace period were reported: %v", hs)
	}
}

func TestAgent_HealthCommandTimeout(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	task := newTask("t-slow", a.ID(), pending, "sleep", "300")
	task.HealthCheck = commandCheck(1, "sh", "-c", "echo $$ >> probe.pids; exec sleep 300")
	task.HealthCheck.Timeout = durationpb.New(200 * time.Millisecond)
	task.HealthCheck.Interval = durationpb.New(time.Hour)
	k.pushTask(task)
	h := k.waitHealth(t, "t-slow", unhealthy)
	if h.GetMessage() != "command timed out after 200ms" {
		t.Errorf("message %q", h.GetMessage())
	}
	b, err := os.ReadFile(filepath.Join(a.dataDir, "sandboxes", "t-slow", "probe.pids"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		eventually(t, "the timed-out probe "+f+" gone", func() bool { return pid > 0 && processGone(pid) })
	}
}

// TestAgent_HealthStopsWithTask: once a task ended, its probes are gone
// before its final report and none follows it.
func TestAgent_HealthStopsWithTask(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	task := newTask("t-end", a.ID(), pending, "sleep", "300")
	// A probe that outlives its task unless it is killed.
	task.HealthCheck = commandCheck(1, "sh", "-c", "echo $$ >> probe.pids; exec sleep 300")
	task.HealthCheck.Timeout = durationpb.New(time.Minute)
	task.HealthCheck.Interval = durationpb.New(time.Minute)
	k.pushTask(task)
	k.waitReport(t, "t-end", running)
	pids := filepath.Join(a.dataDir, "sandboxes", "t-end", "probe.pids")
	eventually(t, "a probe running", func() bool { _, err := os.Stat(pids); return err == nil })
	b, _ := os.ReadFile(pids)
	probe, _ := strconv.Atoi(strings.TrimSpace(string(b)))

	k.pushTask(newTask("t-end", a.ID(), killed, "sleep"))
	k.waitReport(t, "t-end", killed)
	// Killed before the final report (it may be exiting for a moment).
	eventually(t, "the probe gone", func() bool { return processGone(probe) })
	a.mu.Lock()
	tk := a.tasks["t-end"]
	a.mu.Unlock()
	if tk != nil {
		select {
		case <-tk.probeDone:
		default:
			t.Error("the probe goroutine still runs after the final report")
		}
	}
	states := k.states("t-end")
	if i := slices.Index(states, killed); i != len(states)-1 {
		t.Errorf("reports after KILLED: %v", states)
	}
}

func TestAgent_HealthRecovered(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	dataDir := t.TempDir()
	a1 := startAgent(t, k, url, dataDir)
	id := a1.ID()
	task := newTask("t-rec", id, pending, "sleep", "300")
	// Healthy while the marker file in its sandbox exists.
	task.HealthCheck = commandCheck(1, "test", "-e", "ok")
	k.pushTask(task)
	k.waitReport(t, "t-rec", running)
	k.waitHealth(t, "t-rec", unhealthy)
	a1.stop(t)

	if err := os.WriteFile(filepath.Join(dataDir, "sandboxes", "t-rec", "ok"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	k.setExpected(newTask("t-rec", id, running, "sleep", "300"))
	startAgent(t, k, url, dataDir)
	// The recovered task's probes run again, from its checkpoint.
	k.waitHealth(t, "t-rec", healthy)
}

// TestAgent_HealthCommandIsolated: on an agent that isolates tasks, a
// command check runs as the task does: its uid, its pid and mount
// namespaces, its sandbox.
func TestAgent_HealthCommandIsolated(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("task isolation needs root")
	}
	t.Parallel()
	k, url := startFakeKernel(t)
	dataDir := t.TempDir()
	plugins := newTestPlugins(t, dataDir)
	a, err := New(Config{KernelURL: url, Token: "agent-token", DataDir: dataDir, KillGrace: 2 * time.Second,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Plugins: plugins, TaskIsolation: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAgent{Agent: a, dataDir: dataDir, plugins: plugins, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx); close(r.done) }()
	t.Cleanup(func() { r.stop(t) })
	<-a.Registered()

	task := newTask("t-iso", a.ID(), pending, "sleep", "300")
	task.Owner = "fw-a"
	task.HealthCheck = commandCheck(1, "sh", "-c", `echo "$(id -u) $(readlink /proc/self/ns/pid) $(readlink /proc/self/ns/mnt) $PWD" > check.out`)
	k.pushTask(task)
	pid := int(k.waitReport(t, "t-iso", running).GetPid())
	k.waitHealth(t, "t-iso", healthy)

	sandbox := filepath.Join(dataDir, "sandboxes", "t-iso")
	b, err := os.ReadFile(filepath.Join(sandbox, "check.out"))
	if err != nil {
		t.Fatal(err)
	}
	pidNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	mntNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	self, _ := os.Readlink("/proc/self/ns/pid")
	if pidNS == self {
		t.Fatalf("the isolated task shares the agent's pid namespace %s", self)
	}
	uid, err := a.uids.uidOf("fw-a")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(b)), fmt.Sprintf("%d %s %s %s", uid, pidNS, mntNS, sandbox); got != want {
		t.Errorf("the check ran as %q, want %q (uid, pid and mount namespaces, working dir of the task)", got, want)
	}
}

func TestAgent_probeAddr(t *testing.T) {
	t.Parallel()
	a := &Agent{}
	ports := []*syscallsv1.PortMapping{{Name: "web", ContainerPort: 8080, HostPort: 31002, Protocol: "tcp"}}
	bridgeNet := &contract.NetworkStatus{IP: netip.MustParseAddr("10.88.1.5"), Netns: "/run/netns/dcos-t-1",
		Ports: []contract.PortMapping{{Name: "web", ContainerPort: 8080, HostPort: 31002, Protocol: "tcp"}}}
	noNetns := *bridgeNet
	noNetns.Netns = ""
	tests := []struct {
		name    string
		network string
		net     *contract.NetworkStatus
		port    string
		num     uint32
		want    string // netns|addr,addr or the error
	}{
		{"host by name", "host", nil, "web", 0, "|127.0.0.1:31002"},
		{"host by number", "host", nil, "", 9000, "|127.0.0.1:9000"},
		{"host unknown name", "host", nil, "admin", 0, `port "admin": the task has no such port`},
		{"bridge by name", "bridge", bridgeNet, "web", 0, "/run/netns/dcos-t-1|127.0.0.1:8080,10.88.1.5:8080"},
		{"bridge by number", "bridge", bridgeNet, "", 9000, "/run/netns/dcos-t-1|127.0.0.1:9000,10.88.1.5:9000"},
		{"bridge without namespace path", "bridge", &noNetns, "web", 0, "|10.88.1.5:8080"},
		{"bridge without address", "bridge", nil, "web", 0, "the task has no address on the bridge yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := &task{net: tt.net}
			to, err := a.probeAddr(tk, &syscallsv1.Task{Network: tt.network, Ports: ports}, tt.port, tt.num)
			got := to.netns + "|" + strings.Join(to.addrs, ",")
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("probeAddr = %q, want %q", got, tt.want)
			}
		})
	}
}
