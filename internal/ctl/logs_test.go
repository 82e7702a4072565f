package ctl

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

var (
	stdoutStream = syscallsv1.LogStream_LOG_STREAM_STDOUT
	stderrStream = syscallsv1.LogStream_LOG_STREAM_STDERR
)

func chunk(s syscallsv1.LogStream, data, cursor string) *syscallsv1.LogsChunk {
	return &syscallsv1.LogsChunk{Stream: s, Data: []byte(data), Cursor: cursor}
}

func TestRun_LogsRequest(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *syscallsv1.LogsRequest
	}{
		{"default", nil, &syscallsv1.LogsRequest{TaskId: "t-1", Streams: []syscallsv1.LogStream{stdoutStream}}},
		{"stderr", []string{"--stderr"}, &syscallsv1.LogsRequest{TaskId: "t-1", Streams: []syscallsv1.LogStream{stderrStream}}},
		{"all", []string{"--all"}, &syscallsv1.LogsRequest{TaskId: "t-1", Streams: []syscallsv1.LogStream{stdoutStream, stderrStream}}},
		{"tail and since", []string{"--tail", "10", "--since", "1h30m"}, &syscallsv1.LogsRequest{TaskId: "t-1", Streams: []syscallsv1.LogStream{stdoutStream},
			Tail: proto.Int64(10), Since: durationpb.New(90 * time.Minute)}},
		{"tail 0", []string{"--tail=0"}, &syscallsv1.LogsRequest{TaskId: "t-1", Streams: []syscallsv1.LogStream{stdoutStream}, Tail: proto.Int64(0)}},
		{"tail -1 is all", []string{"--tail", "-1"}, &syscallsv1.LogsRequest{TaskId: "t-1", Streams: []syscallsv1.LogStream{stdoutStream}}},
		{"follow and limit", []string{"-f", "--limit-bytes", "4096"}, &syscallsv1.LogsRequest{TaskId: "t-1", Streams: []syscallsv1.LogStream{stdoutStream}, Follow: true, LimitBytes: 4096}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := &fakeKernel{}
			url := k.serve(t)
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "logs", "t-1"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			assertProto(t, k.last("Logs"), tt.want)
		})
	}
}

func TestRun_LogsUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no task", []string{"logs"}, "logs: want TASK"},
		{"two tasks", []string{"logs", "a", "b"}, "want one TASK"},
		{"stderr and all", []string{"logs", "t-1", "--stderr", "--all"}, "--stderr and --all exclude each other"},
		{"bad tail", []string{"logs", "t-1", "--tail", "-2"}, "--tail"},
		{"bad since", []string{"logs", "t-1", "--since", "yesterday"}, `--since: want a positive duration such as 10m or 1h30m, got "yesterday"`},
		{"negative since", []string{"logs", "t-1", "--since", "-5m"}, "--since"},
		{"bad limit", []string{"logs", "t-1", "--limit-bytes", "-1"}, "--limit-bytes"},
		{"exec without command", []string{"exec", "t-1"}, "exec: want a command after TASK"},
		{"exec without task", []string{"exec"}, "exec: want TASK -- CMD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := &fakeKernel{}
			url := k.serve(t)
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url}, tt.args...)...)
			if r.code != exitUsageError || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tt.want)
			}
			if m := k.methods(); len(m) != 0 {
				t.Errorf("calls made: %v", m)
			}
		})
	}
}

// TestRun_LogsFollowReconnects breaks a -f stream twice with Unavailable
// (once after chunks, once before any): dcosctl reconnects from the last
// cursor of each stream, and every byte is printed once, on its own fd.
func TestRun_LogsFollowReconnects(t *testing.T) {
	isolate(t)
	down := connect.NewError(connect.CodeUnavailable, errorString("agent ag-1 is not connected"))
	k := &fakeKernel{logs: []fakeLogs{
		{chunks: []*syscallsv1.LogsChunk{
			chunk(stdoutStream, "out 1\n", "1:6"),
			chunk(stderrStream, "err 1\n", "1:6"),
			chunk(stdoutStream, "out 2\n", "1:12"),
		}, err: down},
		{err: down},
		{chunks: []*syscallsv1.LogsChunk{
			chunk(stdoutStream, "out 3\n", "2:6"),
			chunk(stderrStream, "err 2\n", "1:12"),
		}},
	}}
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "logs", "-f", "--all", "--tail", "5", "t-1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.stdout != "out 1\nout 2\nout 3\n" {
		t.Errorf("stdout = %q", r.stdout)
	}
	if strings.Count(r.stderr, "err 1\n") != 1 || strings.Count(r.stderr, "err 2\n") != 1 || strings.Index(r.stderr, "err 1") > strings.Index(r.stderr, "err 2") {
		t.Errorf("stderr = %q", r.stderr)
	}
	if !strings.Contains(r.stderr, "Unavailable: agent ag-1 is not connected; reconnecting") {
		t.Errorf("stderr does not say it reconnects: %q", r.stderr)
	}
	var reqs []*syscallsv1.LogsRequest
	for _, c := range k.recorded() {
		reqs = append(reqs, c.req.(*syscallsv1.LogsRequest))
	}
	if len(reqs) != 3 {
		t.Fatalf("%d Logs calls, want 3", len(reqs))
	}
	first := &syscallsv1.LogsRequest{TaskId: "t-1", Streams: []syscallsv1.LogStream{stdoutStream, stderrStream}, Follow: true, Tail: proto.Int64(5)}
	assertProto(t, reqs[0], first)
	resumed := proto.CloneOf(first)
	resumed.StdoutCursor, resumed.StderrCursor = "1:12", "1:6"
	assertProto(t, reqs[1], resumed)
	assertProto(t, reqs[2], resumed)
}

func TestRun_LogsErrors(t *testing.T) {
	tests := []struct {
		name   string
		follow bool
		err    error
		want   string
	}{
		{"unavailable without follow", false, connect.NewError(connect.CodeUnavailable, errorString("agent ag-1 is not connected")), "Logs: Unavailable: agent ag-1 is not connected"},
		{"permission denied with follow", true, connect.NewError(connect.CodePermissionDenied, errorString("task t-1 belongs to fw-a")), "Logs: PermissionDenied: task t-1 belongs to fw-a"},
		{"not found with follow", true, connect.NewError(connect.CodeNotFound, errorString("no task t-1")), "Logs: NotFound: no task t-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := &fakeKernel{logs: []fakeLogs{{chunks: []*syscallsv1.LogsChunk{chunk(stdoutStream, "x\n", "1:2")}, err: tt.err}, {}}}
			url := k.serve(t)
			args := []string{"--kernel", url, "logs", "t-1"}
			if tt.follow {
				args = append(args, "-f")
			}
			r := runCtl(t, context.Background(), "", args...)
			if r.code != exitCallError || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", r.code, r.stderr, tt.want)
			}
			if r.stdout != "x\n" {
				t.Errorf("stdout = %q", r.stdout)
			}
			if n := len(k.methods()); n != 1 {
				t.Errorf("%d calls, want 1 (no retry)", n)
			}
		})
	}
}

// TestStreamLogs_GivesUp: a stream that never comes back ends -f with a
// clear error once the give-up time has passed.
func TestStreamLogs_GivesUp(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	for range 1000 {
		k.logs = append(k.logs, fakeLogs{err: connect.NewError(connect.CodeUnavailable, errorString("agent ag-1 is not connected"))})
	}
	url := k.serve(t)
	var out, errb bytes.Buffer
	p := &logsPrinter{e: &env{stdout: &out, stderr: &errb}}
	err := streamLogs(context.Background(), target{baseURL: url}.kernel(), &syscallsv1.LogsRequest{TaskId: "t-1", Follow: true}, p,
		logsBackoff{first: time.Millisecond, max: 4 * time.Millisecond, giveUp: 30 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "gave up after 30ms of failed reconnects") || !strings.Contains(err.Error(), "agent ag-1 is not connected") {
		t.Fatalf("err = %v", err)
	}
	if n := len(k.methods()); n < 2 || n >= 1000 {
		t.Errorf("%d calls", n)
	}
}

// TestRun_LogsInterrupted: Ctrl-C while -f waits to reconnect ends with
// 130 and no message.
func TestRun_LogsInterrupted(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	for range 100 {
		k.logs = append(k.logs, fakeLogs{err: connect.NewError(connect.CodeUnavailable, errorString("down"))})
	}
	url := k.serve(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for len(k.methods()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	r := runCtl(t, ctx, "", "--kernel", url, "logs", "-f", "t-1")
	if r.code != exitInterrupted {
		t.Errorf("exit %d, want 130: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "interrupted") {
		t.Errorf("stderr = %q, want no message about the interrupt", r.stderr)
	}
}

func TestRun_LogsJSONAndTruncated(t *testing.T) {
	junk := []byte{0xff, 0xfe, 0, 'x'}
	chunks := []*syscallsv1.LogsChunk{
		{Stream: stdoutStream, Data: []byte("héllo\n"), Cursor: "1:7"},
		{Stream: stderrStream, Data: junk, Cursor: "1:4"},
		{Stream: stdoutStream, Data: []byte("after gap\n"), Cursor: "3:10", Truncated: true},
	}
	t.Run("json", func(t *testing.T) {
		isolate(t)
		k := &fakeKernel{logs: []fakeLogs{{chunks: chunks}}}
		url := k.serve(t)
		r := runCtl(t, context.Background(), "", "--kernel", url, "logs", "--all", "-o", "json", "t-1")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if len(lines) != 3 {
			t.Fatalf("got %d lines:\n%s", len(lines), r.stdout)
		}
		for i, line := range lines {
			var got struct {
				Stream, Data, Encoding, Cursor string
				Truncated                      *bool
			}
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("line %d %q: %v", i, line, err)
			}
			data := []byte(got.Data)
			if got.Encoding == "base64" {
				var err error
				if data, err = base64.StdEncoding.DecodeString(got.Data); err != nil {
					t.Fatal(err)
				}
			} else if got.Encoding != "utf8" {
				t.Errorf("line %d: encoding %q", i, got.Encoding)
			}
			want := chunks[i]
			if got.Stream != logStreamName(want.Stream) || !bytes.Equal(data, want.Data) || got.Cursor != want.Cursor ||
				got.Truncated == nil || *got.Truncated != want.Truncated {
				t.Errorf("line %d = %s, want %v", i, line, want)
			}
		}
		if !strings.Contains(lines[1], `"encoding":"base64"`) || !strings.Contains(lines[0], `"data":"héllo\n"`) {
			t.Errorf("encodings: %s", r.stdout)
		}
	})
	t.Run("text", func(t *testing.T) {
		isolate(t)
		k := &fakeKernel{logs: []fakeLogs{{chunks: chunks}}}
		url := k.serve(t)
		r := runCtl(t, context.Background(), "", "--kernel", url, "logs", "--all", "t-1")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if r.stdout != "héllo\nafter gap\n" {
			t.Errorf("stdout = %q", r.stdout)
		}
		warning := "dcosctl: warning: stdout: output was rotated away before it could be read; it goes on after a gap\n"
		if r.stderr != string(junk)+warning {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
}

// TestRun_LogsLimitAcrossReconnect: a resumed -f asks only for what is
// left of --limit-bytes, and stops once it is reached.
func TestRun_LogsLimitAcrossReconnect(t *testing.T) {
	isolate(t)
	k := &fakeKernel{logs: []fakeLogs{
		{chunks: []*syscallsv1.LogsChunk{chunk(stdoutStream, "1234", "1:4")}, err: connect.NewError(connect.CodeUnavailable, errorString("down"))},
		{chunks: []*syscallsv1.LogsChunk{chunk(stdoutStream, "5678", "1:8"), chunk(stdoutStream, "90ab", "1:12")}},
		{chunks: []*syscallsv1.LogsChunk{chunk(stdoutStream, "never", "1:17")}},
	}}
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "logs", "-f", "--limit-bytes", "10", "t-1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if r.stdout != "1234567890ab" {
		t.Errorf("stdout = %q", r.stdout)
	}
	calls := k.recorded()
	if len(calls) != 2 {
		t.Fatalf("%d calls, want 2", len(calls))
	}
	assertProto(t, calls[1].req, &syscallsv1.LogsRequest{TaskId: "t-1", Streams: []syscallsv1.LogStream{stdoutStream}, Follow: true, LimitBytes: 6, StdoutCursor: "1:4"})
}

// BenchmarkRun_Logs is dcosctl's side of a log stream: chunks of 4 KiB
// from a Logs call (over loopback HTTP) to stdout.
func BenchmarkRun_Logs(b *testing.B) {
	data := strings.Repeat("x", 4095) + "\n"
	var chunks []*syscallsv1.LogsChunk
	for i := range 256 {
		chunks = append(chunks, chunk(stdoutStream, data, "1:"+strings.Repeat("9", i%5+1)))
	}
	k := &fakeKernel{}
	srv := k.serveBench(b)
	b.SetBytes(int64(len(data) * len(chunks)))
	for b.Loop() {
		k.mu.Lock()
		k.logs = []fakeLogs{{chunks: chunks}}
		k.calls = nil
		k.mu.Unlock()
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"dcosctl", "--kernel", srv, "logs", "t-1"}, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: time.Now}); code != 0 {
			b.Fatalf("exit %d: %s", code, errb.String())
		}
	}
}
