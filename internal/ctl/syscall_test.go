package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestRun_SyscallList(t *testing.T) {
	isolate(t)
	methods := syscallsv1.File_v1_syscalls_proto.Services().ByName("Kernel").Methods()
	if methods.Len() != 45 {
		t.Fatalf("the ABI has %d methods; this test expects 45", methods.Len())
	}

	t.Run("table", func(t *testing.T) {
		r := runCtl(t, context.Background(), "", "syscall", "--list")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 1+methods.Len() {
			t.Fatalf("got %d lines, want header + %d:\n%s", len(lines), methods.Len(), r.stdout)
		}
		for i := range methods.Len() {
			md := methods.Get(i)
			f := strings.Fields(lines[i+1])
			stream := "no"
			switch {
			case md.IsStreamingClient() && md.IsStreamingServer():
				stream = "bidi"
			case md.IsStreamingServer():
				stream = "server"
			}
			want := []string{strconv.Itoa(i + 1), string(md.Name()), string(md.Input().Name()), string(md.Output().Name()), stream}
			if strings.Join(f, " ") != strings.Join(want, " ") {
				t.Errorf("row %d = %q, want %q", i+1, f, want)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		r := runCtl(t, context.Background(), "", "-o", "json", "syscall", "--list")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		var got []syscallEntry
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatal(err)
		}
		want := []string{"Allocate", "Launch", "Watch", "Revoke", "KeepAlive", "RegisterAgent", "Heartbeat", "ReportTaskStatus", "ListAgents", "ListAllocations", "ListTasks",
			"PolicyLoad", "PolicyTest", "PolicyList", "PolicyUse", "PolicyRollback", "ListVolumes", "DestroyVolume", "RemoveImage",
			"Campaign", "Resign", "Leader", "StateGet", "StatePut", "StateDelete", "StateList",
			"Logs", "Exec", "AgentStreams", "AgentRelay",
			"RoleSet", "RoleList", "TokenCreate", "TokenList", "TokenRevoke", "AgentJoin", "AgentDrain", "ClusterInfo", "TaskSecrets", "AuditList", "CertRenew", "CARotate", "CertList",
			"LaunchBatch", "ReportTaskStatusBatch"}
		streams := map[string]string{"Watch": "server", "Logs": "server", "AgentStreams": "server", "Exec": "bidi", "AgentRelay": "bidi"}
		if len(got) != len(want) {
			t.Fatalf("%d entries, want %d", len(got), len(want))
		}
		for i, e := range got {
			stream := streams[e.Name]
			if stream == "" {
				stream = "no"
			}
			if e.Number != i+1 || e.Name != want[i] || e.Streaming != (stream != "no") || e.Stream != stream {
				t.Errorf("entry %d = %+v", i, e)
			}
		}
		if got[2].Response != "dcos.syscalls.v1.Event" || got[2].Procedure != "/dcos.syscalls.v1.Kernel/Watch" {
			t.Errorf("Watch entry = %+v", got[2])
		}
	})
}

func TestRun_SyscallRaw(t *testing.T) {
	isolate(t)
	want := &syscallsv1.AllocateResponse{
		Allocations: []*syscallsv1.Allocation{{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}},
		Revision:    7,
	}
	k := (&fakeKernel{}).replyWith("Allocate", want, nil)
	url := k.serve(t)
	body := `{"resources":{"cpus":0.5,"memBytes":"67108864"}}`
	tests := []struct {
		name  string
		args  []string
		stdin string
		req   *syscallsv1.AllocateRequest
	}{
		{"lower case, JSON argument", []string{"syscall", "allocate", body}, "",
			&syscallsv1.AllocateRequest{Resources: &syscallsv1.Resources{Cpus: 0.5, MemBytes: 64 << 20}}},
		{"exact case, stdin", []string{"syscall", "Allocate", "-"}, body,
			&syscallsv1.AllocateRequest{Resources: &syscallsv1.Resources{Cpus: 0.5, MemBytes: 64 << 20}}},
		{"no body is {}", []string{"syscall", "ALLOCATE"}, "", &syscallsv1.AllocateRequest{}},
		{"well-known types", []string{"syscall", "allocate", `{"leaseTtl":"30s","constraints":[{"label":"zone","op":"OP_IN","values":["a","b"]}]}`}, "",
			&syscallsv1.AllocateRequest{
				Constraints: []*syscallsv1.Constraint{{Label: "zone", Op: syscallsv1.Constraint_OP_IN, Values: []string{"a", "b"}}},
				LeaseTtl:    durationOf(30 * time.Second),
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), tt.stdin, append([]string{"--kernel", url}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			assertProto(t, k.last("Allocate"), tt.req)
			got := &syscallsv1.AllocateResponse{}
			if err := protojson.Unmarshal([]byte(r.stdout), got); err != nil {
				t.Fatalf("stdout is not an AllocateResponse: %v\n%s", err, r.stdout)
			}
			assertProto(t, got, want)
			if !strings.Contains(r.stdout, "\n  ") {
				t.Errorf("want multiline JSON, got %q", r.stdout)
			}
		})
	}
}

func TestRun_SyscallRejected(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	tests := []struct {
		name  string
		args  []string
		stdin string
		want  string
	}{
		{"malformed JSON", []string{"allocate", `{"resources":`}, "", "request is not a valid dcos.syscalls.v1.AllocateRequest"},
		{"unknown field", []string{"allocate", `{"cpus":1}`}, "", `unknown field "cpus"`},
		{"wrong type", []string{"allocate", `{"resources":{"cpus":"many"}}`}, "", "invalid value for double field cpus"},
		{"malformed stdin", []string{"launch", "-"}, "not json", "request is not a valid dcos.syscalls.v1.LaunchRequest"},
		{"unknown syscall", []string{"fork", "{}"}, "", `unknown syscall "fork"; known: allocate, launch, watch`},
		{"no name", nil, "", "want NAME [JSON | -]"},
		{"unquoted JSON", []string{"allocate", "{", "}"}, "", "got 3 arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), tt.stdin, append([]string{"--kernel", url, "syscall"}, tt.args...)...)
			if r.code != exitUsageError {
				t.Errorf("exit %d, want %d", r.code, exitUsageError)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.want)
			}
		})
	}
	if m := k.methods(); len(m) != 0 {
		t.Errorf("rejected requests were sent: %v", m)
	}
}

func TestRun_SyscallWatch(t *testing.T) {
	isolate(t)
	events := []*syscallsv1.Event{
		{Revision: 5, Kind: syscallsv1.EventKind_EVENT_KIND_ALLOCATION_GRANTED, Allocation: &syscallsv1.Allocation{Id: "a-1"}},
		{Revision: 6, Kind: syscallsv1.EventKind_EVENT_KIND_TASK_STATE, Task: &syscallsv1.Task{Id: "t-1", State: syscallsv1.TaskState_TASK_STATE_RUNNING}},
		{Revision: 6, Kind: syscallsv1.EventKind_EVENT_KIND_AGENT_LOST, Reason: "heartbeat timeout"},
	}
	k := &fakeKernel{events: events, watchHold: true}
	url := k.serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// The stream stays open; the test interrupts it once all events are in.
	go func() {
		for ctx.Err() == nil {
			if len(k.recorded()) > 0 {
				time.Sleep(200 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	r := runCtl(t, ctx, "", "--kernel", url, "syscall", "watch", `{"afterRevision":"4","kinds":["EVENT_KIND_TASK_STATE"]}`)
	if r.code != 0 {
		t.Fatalf("exit %d (an interrupted watch ends with 0): %s", r.code, r.stderr)
	}
	assertProto(t, k.last("Watch"), &syscallsv1.WatchRequest{AfterRevision: 4, Kinds: []syscallsv1.EventKind{syscallsv1.EventKind_EVENT_KIND_TASK_STATE}})
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != len(events) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(events), r.stdout)
	}
	for i, l := range lines {
		got := &syscallsv1.Event{}
		if err := protojson.Unmarshal([]byte(l), got); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, l)
		}
		assertProto(t, got, events[i])
	}
}

func TestRun_SyscallTrace(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{events: []*syscallsv1.Event{{Revision: 1}, {Revision: 2}}}).
		replyWith("Revoke", nil, connect.NewError(connect.CodeInvalidArgument, errorString("id: must start with a- or t-, got \"x\"")))
	url := k.serve(t)
	tests := []struct {
		name string
		args []string
		want string // a regexp for the whole of stderr's first line
	}{
		{"ok", []string{"--trace", "syscall", "allocate", `{"resources":{"cpus":0.5,"memBytes":"67108864"}}`},
			`^Allocate\(\{"resources":\{"cpus":0\.5,"memBytes":"67108864"\}\}\) = OK <\d+\.\d{3}ms>$`},
		{"flag after the call", []string{"syscall", "listagents", "--trace"},
			`^ListAgents\(\{\}\) = OK <\d+\.\d{3}ms>$`},
		{"error", []string{"syscall", "revoke", `{"id":"x"}`, "--trace"},
			`^Revoke\(\{"id":"x"\}\) = InvalidArgument "id: must start with a- or t-, got \\"x\\"" <\d+\.\d{3}ms>$`},
		{"stream", []string{"syscall", "watch", "--trace"},
			`^Watch\(\{\}\) = OK <\d+\.\d{3}(ms|s)> 2 events$`},
		{"friendly commands too", []string{"--trace", "revoke", "a-1", "--reason", "done"},
			`^Revoke\(\{"id":"a-1","reason":"done"\}\) = InvalidArgument`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url}, tt.args...)...)
			first, _, _ := strings.Cut(r.stderr, "\n")
			if !regexp.MustCompile(tt.want).MatchString(first) {
				t.Errorf("trace line %q does not match %s", first, tt.want)
			}
		})
	}
}

// TestRun_SyscallLogsAndExec: Logs (server stream) prints one chunk per
// line; Exec (bidi, over h2c) sends its one message, closes its side, and
// prints each output as a line.
func TestRun_SyscallLogsAndExec(t *testing.T) {
	isolate(t)
	k := &fakeKernel{logs: []fakeLogs{{chunks: []*syscallsv1.LogsChunk{
		{Stream: syscallsv1.LogStream_LOG_STREAM_STDOUT, Data: []byte("a\n"), Cursor: "1:2"},
		{Stream: syscallsv1.LogStream_LOG_STREAM_STDOUT, Data: []byte("b\n"), Cursor: "1:4"},
	}}}}
	k.exec = func(_ context.Context, s *connect.BidiStream[syscallsv1.ExecInput, syscallsv1.ExecOutput]) error {
		first, err := s.Receive()
		if err != nil {
			return err
		}
		k.record("Exec", first, s.RequestHeader())
		// The client closes its side after the start.
		if _, err := s.Receive(); !errors.Is(err, io.EOF) {
			return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("want the end of the inputs, got %v", err))
		}
		if err := s.Send(&syscallsv1.ExecOutput{Stdout: []byte("host-1\n")}); err != nil {
			return err
		}
		return s.Send(&syscallsv1.ExecOutput{Exit: &syscallsv1.ExecExit{Code: 0}})
	}
	url := k.serve(t)

	r := runCtl(t, context.Background(), "", "--kernel", url, "syscall", "logs", `{"taskId":"t-1","follow":true}`)
	if r.code != 0 {
		t.Fatalf("logs: exit %d: %s", r.code, r.stderr)
	}
	assertProto(t, k.last("Logs"), &syscallsv1.LogsRequest{TaskId: "t-1", Follow: true})
	if want := `{"stream":"LOG_STREAM_STDOUT","data":"YQo=","cursor":"1:2"}` + "\n" + `{"stream":"LOG_STREAM_STDOUT","data":"Ygo=","cursor":"1:4"}` + "\n"; r.stdout != want {
		t.Errorf("logs stdout = %q, want %q", r.stdout, want)
	}

	r = runCtl(t, context.Background(), "", "--kernel", url, "syscall", "exec", `{"start":{"taskId":"t-1","command":"hostname"}}`)
	if r.code != 0 {
		t.Fatalf("exec: exit %d: %s", r.code, r.stderr)
	}
	assertProto(t, k.last("Exec"), &syscallsv1.ExecInput{Start: &syscallsv1.ExecStart{TaskId: "t-1", Command: "hostname"}})
	if want := `{"stdout":"aG9zdC0xCg=="}` + "\n" + `{"exit":{}}` + "\n"; r.stdout != want {
		t.Errorf("exec stdout = %q, want %q", r.stdout, want)
	}
}
