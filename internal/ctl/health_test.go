package ctl

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestParseCheck(t *testing.T) {
	tests := []struct {
		in   string
		want *syscallsv1.HealthCheck
		err  string
	}{
		{"http:web/health", &syscallsv1.HealthCheck{Http: &syscallsv1.HTTPCheck{PortName: "web", Path: "/health"}}, ""},
		{"http:8080", &syscallsv1.HealthCheck{Http: &syscallsv1.HTTPCheck{Port: 8080, Path: "/"}}, ""},
		{"http:8080/a/b?x=1", &syscallsv1.HealthCheck{Http: &syscallsv1.HTTPCheck{Port: 8080, Path: "/a/b?x=1"}}, ""},
		{"tcp:db", &syscallsv1.HealthCheck{Tcp: &syscallsv1.TCPCheck{PortName: "db"}}, ""},
		{"tcp:5432", &syscallsv1.HealthCheck{Tcp: &syscallsv1.TCPCheck{Port: 5432}}, ""},
		{"cmd:test -e ready", &syscallsv1.HealthCheck{Command: &syscallsv1.CommandCheck{Command: "sh", Args: []string{"-c", "test -e ready"}}}, ""},
		{"cmd: ", nil, "want a command"},
		{"tcp:", nil, "want a port"},
		{"tcp:Web", nil, `port "Web"`},
		{"http:70000/", nil, `port "70000"`},
		{"udp:53", nil, "want http:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseCheck(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertProto(t, got, tt.want)
		})
	}
}

func TestRun_LaunchChecks(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-7"}}, nil)
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "launch", "a-1", "--network", "host", "--port", "web",
		"--health", "http:web/health", "--ready", "cmd:test -e ready", "--check-interval", "5s", "--check-timeout", "1s",
		"--check-grace", "0s", "--check-failures", "2", "--", "server")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	timing := func(hc *syscallsv1.HealthCheck) *syscallsv1.HealthCheck {
		hc.Interval, hc.Timeout, hc.GracePeriod, hc.ConsecutiveFailures = durationpb.New(5*time.Second), durationpb.New(time.Second), durationpb.New(0), 2
		return hc
	}
	assertProto(t, k.last("Launch"), &syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "server", Network: "host",
		Ports:          []*syscallsv1.PortRequest{{Name: "web"}},
		HealthCheck:    timing(&syscallsv1.HealthCheck{Http: &syscallsv1.HTTPCheck{PortName: "web", Path: "/health"}}),
		ReadinessCheck: timing(&syscallsv1.HealthCheck{Command: &syscallsv1.CommandCheck{Command: "sh", Args: []string{"-c", "test -e ready"}}})})

	// Unset timing flags are the kernel's defaults.
	r = runCtl(t, context.Background(), "", "--kernel", url, "launch", "a-1", "--health", "tcp:5432", "--", "db")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	assertProto(t, k.last("Launch"), &syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "db",
		HealthCheck: &syscallsv1.HealthCheck{Tcp: &syscallsv1.TCPCheck{Port: 5432}}})

	r = runCtl(t, context.Background(), "", "--kernel", url, "launch", "a-1", "--kill-grace", "300ms", "--", "db")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	assertProto(t, k.last("Launch"), &syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "db",
		KillGracePeriod: durationpb.New(300 * time.Millisecond)})
	r = runCtl(t, context.Background(), "", "--kernel", url, "launch", "a-1", "--kill-grace", "-1s", "--", "db")
	if r.code == 0 || !strings.Contains(r.stderr, "--kill-grace") {
		t.Errorf("negative --kill-grace: exit %d, stderr %q", r.code, r.stderr)
	}

	r = runCtl(t, context.Background(), "", "--kernel", url, "launch", "a-1", "--log-max-size", "64Ki", "--log-max-files", "100", "--", "db")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	assertProto(t, k.last("Launch"), &syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "db",
		Logs: &syscallsv1.LogConfig{MaxBytes: 64 << 10, MaxFiles: 100}})
	r = runCtl(t, context.Background(), "", "--kernel", url, "launch", "a-1", "--log-max-size", "lots", "--", "db")
	if r.code == 0 || !strings.Contains(r.stderr, "--log-max-size") {
		t.Errorf("bad --log-max-size: exit %d, stderr %q", r.code, r.stderr)
	}

	r = runCtl(t, context.Background(), "", "--kernel", url, "launch", "a-1", "--health", "ping:x", "--", "db")
	if r.code == 0 || !strings.Contains(r.stderr, `--health "ping:x"`) {
		t.Errorf("bad --health: exit %d, stderr %q", r.code, r.stderr)
	}
}
