package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/kernel"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func taskEvent(rev int64, id string, s syscallsv1.TaskState, reason string) *syscallsv1.Event {
	return &syscallsv1.Event{Revision: rev, Kind: syscallsv1.EventKind_EVENT_KIND_TASK_STATE,
		Task: &syscallsv1.Task{Id: id, AllocationId: "a-1", State: s, Reason: reason}}
}

// TestRun_RunWaits: run waits until its task is RUNNING or ended, watching
// its state events from the Launch revision; it exits 0 for RUNNING and
// FINISHED, 1 with the reason otherwise; --detach does not wait.
func TestRun_RunWaits(t *testing.T) {
	const (
		pending  = syscallsv1.TaskState_TASK_STATE_PENDING
		starting = syscallsv1.TaskState_TASK_STATE_STARTING
		running  = syscallsv1.TaskState_TASK_STATE_RUNNING
		finished = syscallsv1.TaskState_TASK_STATE_FINISHED
		failed   = syscallsv1.TaskState_TASK_STATE_FAILED
		lost     = syscallsv1.TaskState_TASK_STATE_LOST
		killed   = syscallsv1.TaskState_TASK_STATE_KILLED
	)
	tests := []struct {
		name        string
		args        []string
		launched    syscallsv1.TaskState // the Launch response's state
		revision    int64                // the Launch response's revision
		events      []*syscallsv1.Event
		watches     []fakeWatch // the first watches, before events
		listed      []*syscallsv1.Task
		listErr     error
		wantCode    int
		wantCalls   []string
		wantStdout  []string
		wantStderr  string
		wantTask    syscallsv1.TaskState // in -o json
		wantWatchAt int64
	}{
		{
			name:     "runs",
			launched: pending, revision: 5,
			events:    []*syscallsv1.Event{taskEvent(6, "t-9", failed, "other"), taskEvent(6, "t-1", starting, ""), taskEvent(7, "t-1", running, "")},
			wantCalls: []string{"Allocate", "Launch", "Watch"}, wantStdout: []string{"a-1", "ag-1", "t-1"},
			wantTask: running, wantWatchAt: 5,
		},
		{
			name:     "fails at once",
			launched: pending, revision: 5,
			events:    []*syscallsv1.Event{taskEvent(6, "t-1", failed, "exit code 127: exec: \"nosuch\": not found")},
			wantCode:  exitCallError,
			wantCalls: []string{"Allocate", "Launch", "Watch"}, wantStdout: []string{"t-1"},
			wantStderr: `task t-1 failed: exit code 127: exec: "nosuch": not found`,
			wantTask:   failed, wantWatchAt: 5,
		},
		{
			name:     "finishes",
			launched: pending, revision: 5,
			events:    []*syscallsv1.Event{taskEvent(6, "t-1", finished, "")},
			wantCalls: []string{"Allocate", "Launch", "Watch"}, wantStdout: []string{"task t-1 finished: exit code 0"},
			wantTask: finished, wantWatchAt: 5,
		},
		{
			name:     "lost",
			launched: pending, revision: 5,
			events:     []*syscallsv1.Event{taskEvent(6, "t-1", lost, "agent lost")},
			wantCode:   exitCallError,
			wantCalls:  []string{"Allocate", "Launch", "Watch"},
			wantStderr: "task t-1 failed: LOST: agent lost",
			wantTask:   lost, wantWatchAt: 5,
		},
		{
			name:     "killed",
			launched: starting, revision: 5,
			events:     []*syscallsv1.Event{taskEvent(6, "t-1", killed, "revoked")},
			wantCode:   exitCallError,
			wantCalls:  []string{"Allocate", "Launch", "Watch"},
			wantStderr: "task t-1 failed: KILLED: revoked",
			wantTask:   killed, wantWatchAt: 5,
		},
		{
			name:     "running at launch: no watch",
			launched: running, revision: 5,
			wantCalls: []string{"Allocate", "Launch"}, wantStdout: []string{"t-1"},
			wantTask: running,
		},
		{
			// Watching "from now on" could miss the change.
			name:      "no launch revision: lists first",
			launched:  pending,
			listed:    []*syscallsv1.Task{{Id: "t-0"}, {Id: "t-1", State: starting}},
			events:    []*syscallsv1.Event{taskEvent(12, "t-1", running, "")},
			wantCalls: []string{"Allocate", "Launch", "ListTasks", "Watch"}, wantStdout: []string{"t-1"},
			wantTask: running, wantWatchAt: 11,
		},
		{
			name:     "watch breaks: lists again",
			launched: pending, revision: 5,
			watches:   []fakeWatch{{events: []*syscallsv1.Event{taskEvent(6, "t-1", starting, "")}, err: errorString("compacted")}},
			listed:    []*syscallsv1.Task{{Id: "t-1", State: running}},
			wantCalls: []string{"Allocate", "Launch", "Watch", "ListTasks"}, wantStdout: []string{"t-1"},
			wantTask: running, wantWatchAt: 5,
		},
		{
			name:     "watch breaks, list fails",
			launched: pending, revision: 5,
			watches:    []fakeWatch{{err: errorString("compacted")}},
			listErr:    errorString("kernel down"),
			wantCode:   exitCallError,
			wantCalls:  []string{"Allocate", "Launch", "Watch", "ListTasks"},
			wantStderr: "waiting for task t-1 to run: ListTasks: Unknown: kernel down",
			wantTask:   pending, wantWatchAt: 5,
		},
		{
			name:     "task gone",
			launched: pending,
			listed:   []*syscallsv1.Task{{Id: "t-2"}},
			wantCode: exitCallError, wantCalls: []string{"Allocate", "Launch", "ListTasks"},
			wantStderr: "task t-1 is not listed in allocation a-1 any more",
			wantTask:   pending,
		},
		{
			name:     "detach",
			args:     []string{"--detach"},
			launched: pending, revision: 5,
			wantCalls: []string{"Allocate", "Launch"}, wantStdout: []string{"a-1", "ag-1", "t-1"},
			wantTask: pending,
		},
		{
			name:     "-d",
			args:     []string{"-d"},
			launched: pending, revision: 5,
			wantCalls: []string{"Allocate", "Launch"}, wantStdout: []string{"t-1"},
			wantTask: pending,
		},
	}
	granted := &syscallsv1.Allocation{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}
	for _, tt := range tests {
		for _, out := range []string{"table", "json"} {
			t.Run(tt.name+"/"+out, func(t *testing.T) {
				isolate(t)
				k := (&fakeKernel{events: tt.events, firstWatches: slices.Clone(tt.watches)}).
					replyWith("Allocate", &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}}, nil).
					replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-1", AllocationId: "a-1", State: tt.launched}, Revision: tt.revision}, nil).
					replyWith("ListTasks", &syscallsv1.ListTasksResponse{Tasks: tt.listed, Revision: 11}, tt.listErr)
				url := k.serve(t)
				args := append([]string{"--kernel", url, "-o", out, "run", "--cpus", "1", "--mem", "1Mi"}, tt.args...)
				r := runCtl(t, context.Background(), "", append(args, "--", "nosuch")...)
				if r.code != tt.wantCode {
					t.Fatalf("exit %d, want %d; stderr %q", r.code, tt.wantCode, r.stderr)
				}
				if got := strings.Join(k.methods(), ","); got != strings.Join(tt.wantCalls, ",") {
					t.Errorf("calls %s, want %s", got, strings.Join(tt.wantCalls, ","))
				}
				if w, ok := k.last("Watch").(*syscallsv1.WatchRequest); ok {
					if w.GetAfterRevision() != tt.wantWatchAt || !slices.Equal(w.GetKinds(), []syscallsv1.EventKind{syscallsv1.EventKind_EVENT_KIND_TASK_STATE}) {
						t.Errorf("watch %v, want task states after %d", w, tt.wantWatchAt)
					}
				}
				if l, ok := k.last("ListTasks").(*syscallsv1.ListTasksRequest); ok && l.GetAllocationId() != "a-1" {
					t.Errorf("listed tasks of %q, want a-1", l.GetAllocationId())
				}
				if !strings.Contains(r.stderr, tt.wantStderr) {
					t.Errorf("stderr %q does not contain %q", r.stderr, tt.wantStderr)
				}
				if out == "table" {
					for _, s := range tt.wantStdout {
						if !strings.Contains(r.stdout, s) {
							t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
						}
					}
					return
				}
				var got struct {
					Task struct{ ID, State string } `json:"task"`
				}
				if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
					t.Fatalf("%v:\n%s", err, r.stdout)
				}
				if want := tt.wantTask.String(); got.Task.ID != "t-1" || got.Task.State != want && !(got.Task.State == "" && tt.wantTask == 0) {
					t.Errorf("JSON task %+v, want t-1 %s", got.Task, want)
				}
			})
		}
	}
}

// TestRun_RunWaitTimeout: past --wait-timeout, run exits 1 naming the
// state the task is stuck in, and the task is left alone.
func TestRun_RunWaitTimeout(t *testing.T) {
	isolate(t)
	granted := &syscallsv1.Allocation{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}
	k := (&fakeKernel{watchHold: true, events: []*syscallsv1.Event{taskEvent(6, "t-1", syscallsv1.TaskState_TASK_STATE_STARTING, "pulling image")}}).
		replyWith("Allocate", &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}}, nil).
		replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-1", AllocationId: "a-1"}, Revision: 5}, nil)
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "run", "--cpus", "1", "--mem", "1Mi", "--wait-timeout", "300ms", "--", "sleep", "1")
	if r.code != exitCallError {
		t.Fatalf("exit %d, want 1; stderr %q", r.code, r.stderr)
	}
	if want := "task t-1 still STARTING after 300ms (--wait-timeout): pulling image"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q lacks %q", r.stderr, want)
	}
	if !strings.Contains(r.stdout, "t-1") {
		t.Errorf("stdout lacks the ids:\n%s", r.stdout)
	}
	if slices.Contains(k.methods(), "Revoke") {
		t.Errorf("calls %v: the task was revoked", k.methods())
	}
}

// TestRun_RunWaitInterrupted: interrupting the wait leaves the task
// running and says which it is.
func TestRun_RunWaitInterrupted(t *testing.T) {
	isolate(t)
	granted := &syscallsv1.Allocation{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}
	k := (&fakeKernel{watchHold: true}).
		replyWith("Allocate", &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}}, nil).
		replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-1", AllocationId: "a-1"}, Revision: 5}, nil)
	url := k.serve(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for !slices.Contains(k.methods(), "Watch") {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	r := runCtl(t, ctx, "", "--kernel", url, "run", "--cpus", "1", "--mem", "1Mi", "--", "sleep", "1")
	if r.code != exitInterrupted {
		t.Fatalf("exit %d, want %d; stderr %q", r.code, exitInterrupted, r.stderr)
	}
	if want := "task t-1 of allocation a-1 launched; no longer waiting"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q lacks %q", r.stderr, want)
	}
	if slices.Contains(k.methods(), "Revoke") {
		t.Errorf("calls %v: the task was revoked", k.methods())
	}
}

// TestRun_RunImage: --image launches with the oci driver and its config;
// ARGS replace the image's CMD, --entrypoint and --command its
// entrypoint; --port works as without an image.
func TestRun_RunImage(t *testing.T) {
	const ref = "127.0.0.1:5000/nginx:test"
	tests := []struct {
		name  string
		args  []string
		want  *syscallsv1.LaunchRequest
		ports int64
	}{
		{"image as built", []string{"--image", ref},
			&syscallsv1.LaunchRequest{DriverConfig: `{"image":"` + ref + `"}`}, 0},
		{"args replace CMD", []string{"--image", ref, "--", "-g", "daemon off;"},
			&syscallsv1.LaunchRequest{Args: []string{"-g", "daemon off;"}, DriverConfig: `{"image":"` + ref + `"}`}, 0},
		{"read-only", []string{"--image", ref, "--read-only"},
			&syscallsv1.LaunchRequest{DriverConfig: `{"image":"` + ref + `","readonly_root":true}`}, 0},
		{"entrypoint", []string{"--image", ref, "--entrypoint", "/bin/sh", "--", "-c", "echo hi"},
			&syscallsv1.LaunchRequest{Command: "/bin/sh", Args: []string{"-c", "echo hi"}, DriverConfig: `{"image":"` + ref + `"}`}, 0},
		{"entrypoint without args", []string{"--image", ref, "--entrypoint", "/bin/true"},
			&syscallsv1.LaunchRequest{Command: "/bin/true", DriverConfig: `{"image":"` + ref + `"}`}, 0},
		{"command", []string{"--image", ref, "--command", "--", "nginx", "-T"},
			&syscallsv1.LaunchRequest{Command: "nginx", Args: []string{"-T"}, DriverConfig: `{"image":"` + ref + `"}`}, 0},
		{"driver oci said", []string{"--image", ref, "--driver", "oci"},
			&syscallsv1.LaunchRequest{DriverConfig: `{"image":"` + ref + `"}`}, 0},
		{"port", []string{"--image", ref, "--port", "http:80", "--env", "A=1"},
			&syscallsv1.LaunchRequest{DriverConfig: `{"image":"` + ref + `"}`, Network: "bridge", Env: map[string]string{"A": "1"},
				Ports: []*syscallsv1.PortRequest{{Name: "http", ContainerPort: 80}}}, 1},
	}
	granted := &syscallsv1.Allocation{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := (&fakeKernel{}).
				replyWith("Allocate", &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}}, nil).
				replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-1", State: syscallsv1.TaskState_TASK_STATE_RUNNING}}, nil)
			url := k.serve(t)
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "run", "--cpus", "1", "--mem", "1Mi"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			tt.want.AllocationId, tt.want.Driver = "a-1", "oci"
			assertProto(t, k.last("Launch"), tt.want)
			if got := k.last("Allocate").(*syscallsv1.AllocateRequest).GetResources().GetPorts(); got != tt.ports {
				t.Errorf("resources.ports %d, want %d", got, tt.ports)
			}
		})
	}
}

// TestRun_RunUsageErrors: run's flags that do not go together are usage
// errors naming them, before any call.
func TestRun_RunUsageErrors(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", []string{}, "no command"},
		{"read-only without image", []string{"--read-only", "--", "x"}, "--read-only goes with --image"},
		{"entrypoint without image", []string{"--entrypoint", "/x", "--", "x"}, "--entrypoint goes with --image"},
		{"command without image", []string{"--command", "--", "x"}, "--command goes with --image"},
		{"other driver", []string{"--image", "r/x:1", "--driver", "exec"}, "--image runs with driver oci, not --driver exec"},
		{"driver config", []string{"--image", "r/x:1", "--driver-config", "{}"}, "--driver-config goes without it"},
		{"entrypoint and command", []string{"--image", "r/x:1", "--entrypoint", "/x", "--command", "--", "y"}, "give one"},
		{"empty entrypoint", []string{"--image", "r/x:1", "--entrypoint", ""}, "--entrypoint: want a PATH"},
		{"command without program", []string{"--image", "r/x:1", "--command"}, "--command: put the program"},
		{"empty image", []string{"--image", ""}, "--image \"\": want an image reference"},
		{"image with a space", []string{"--image", "r/x :1"}, "want an image reference"},
		{"zero timeout", []string{"--wait-timeout", "0s", "--", "x"}, "--wait-timeout: want a positive duration"},
		{"detach and timeout", []string{"--detach", "--wait-timeout", "1m", "--", "x"}, "--wait-timeout goes without --detach"},
		{"bad port", []string{"--image", "r/x:1", "--port", "http"}, "--port \"http\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "run", "--cpus", "1", "--mem", "1Mi"}, tt.args...)...)
			if r.code != exitUsageError || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want usage error %q", r.code, r.stderr, tt.want)
			}
		})
	}
	if calls := k.methods(); len(calls) != 0 {
		t.Errorf("usage errors made calls %v", calls)
	}
}

// TestRun_RunRealKernel: against a real kernel (embedded etcd, the API
// door), with the test as the agent reporting what became of each task,
// run exits by the task's fate; an image task's empty command passes the
// kernel's validation with the oci driver.
func TestRun_RunRealKernel(t *testing.T) {
	isolate(t)
	srv := kerneltest.Start(t, kerneltest.Options{
		Tokens: []api.TokenEntry{
			{Token: svcOpToken, Name: "ops", Role: "operator"},
			{Token: svcAgentToken, Name: "node-1", Role: "agent"},
		},
		Kernel: func(c *kernel.Config) { c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) },
	})
	ctx := context.Background()
	agent := kclient.New(srv.URL, svcAgentToken)
	op := kclient.New(srv.URL, svcOpToken)
	reg, err := agent.RegisterAgent(ctx, connect.NewRequest(&syscallsv1.RegisterAgentRequest{Hostname: "node-1",
		Resources: &syscallsv1.Resources{Cpus: 4, MemBytes: 4 << 30, DiskBytes: 1 << 30}}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		reports  []*syscallsv1.ReportTaskStatusRequest
		wantCode int
		want     string // in stdout (exit 0) or stderr
		launched *syscallsv1.LaunchRequest
	}{
		{
			name: "fails at once",
			args: []string{"--", "/nonexistent/program"},
			reports: []*syscallsv1.ReportTaskStatusRequest{
				{State: syscallsv1.TaskState_TASK_STATE_FAILED, ExitCode: 127, Reason: `exit code 127: exec: "/nonexistent/program": no such file`},
			},
			wantCode: exitCallError,
			want:     `failed: exit code 127: exec: "/nonexistent/program": no such file`,
		},
		{
			name: "starts then runs",
			args: []string{"--", "sleep", "60"},
			reports: []*syscallsv1.ReportTaskStatusRequest{
				{State: syscallsv1.TaskState_TASK_STATE_STARTING},
				{State: syscallsv1.TaskState_TASK_STATE_RUNNING, Pid: 10},
			},
			want: "TASK",
		},
		{
			name:     "finishes",
			args:     []string{"--", "true"},
			reports:  []*syscallsv1.ReportTaskStatusRequest{{State: syscallsv1.TaskState_TASK_STATE_FINISHED, Reason: "exit code 0"}},
			want:     "finished: exit code 0",
			launched: &syscallsv1.LaunchRequest{Command: "true"},
		},
		{
			name:     "image without a command",
			args:     []string{"--image", "127.0.0.1:5000/nginx:test"},
			reports:  []*syscallsv1.ReportTaskStatusRequest{{State: syscallsv1.TaskState_TASK_STATE_RUNNING, Pid: 11}},
			want:     "TASK",
			launched: &syscallsv1.LaunchRequest{Driver: "oci", DriverConfig: `{"image":"127.0.0.1:5000/nginx:test"}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The agent's side: find the new task, report its fate.
			seen := map[string]bool{}
			before, err := op.ListTasks(ctx, connect.NewRequest(&syscallsv1.ListTasksRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range before.Msg.GetTasks() {
				seen[k.GetId()] = true
			}
			done := make(chan error, 1)
			var launched *syscallsv1.Task
			// stop ends the search when run made no task; reports in flight
			// are not cut short.
			stop := make(chan struct{})
			go func() {
				for {
					res, err := op.ListTasks(ctx, connect.NewRequest(&syscallsv1.ListTasksRequest{}))
					if err != nil {
						done <- err
						return
					}
					for _, k := range res.Msg.GetTasks() {
						if seen[k.GetId()] {
							continue
						}
						launched = k
						for _, r := range tt.reports {
							r.AgentId, r.TaskId = reg.Msg.GetAgentId(), k.GetId()
							if _, err := agent.ReportTaskStatus(ctx, connect.NewRequest(r)); err != nil {
								done <- err
								return
							}
						}
						done <- nil
						return
					}
					select {
					case <-stop:
						done <- errors.New("no new task")
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}()
			args := append([]string{"--kernel", srv.URL, "--token", svcOpToken, "run", "--cpus", "0.1", "--mem", "16Mi", "--wait-timeout", "1m"}, tt.args...)
			r := runCtl(t, ctx, "", args...)
			close(stop)
			if err := <-done; err != nil {
				t.Fatalf("agent: %v; run: exit %d, stdout %q, stderr %q", err, r.code, r.stdout, r.stderr)
			}
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout %q, stderr %q", r.code, tt.wantCode, r.stdout, r.stderr)
			}
			out := r.stdout
			if tt.wantCode != 0 {
				out = r.stderr
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output %q lacks %q", out, tt.want)
			}
			if tt.launched != nil && (launched.GetCommand() != tt.launched.GetCommand() || launched.GetDriver() != tt.launched.GetDriver() ||
				launched.GetDriverConfig() != tt.launched.GetDriverConfig()) {
				t.Errorf("launched %v, want %v", launched, tt.launched)
			}
		})
	}
}
