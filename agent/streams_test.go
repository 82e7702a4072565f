package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/logfile"
	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

const (
	stdoutStream = syscallsv1.LogStream_LOG_STREAM_STDOUT
	stderrStream = syscallsv1.LogStream_LOG_STREAM_STDERR
)

// writeLog writes lines first..last ("line N\n") to stream name in dir as
// a rotated log.
func writeLog(t *testing.T, dir, name string, o logfile.Options, first, last int) {
	t.Helper()
	w, err := logfile.Create(dir, name, o)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := first; i <= last; i++ {
		if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
			t.Fatal(err)
		}
	}
}

// lines is "line N\n" for N in first..last.
func lines(first, last int) string {
	var b strings.Builder
	for i := first; i <= last; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// logChunks checks that ups are log chunks and returns them.
func logChunks(t *testing.T, ups []*syscallsv1.RelayUp) []*syscallsv1.LogsChunk {
	t.Helper()
	var out []*syscallsv1.LogsChunk
	for _, up := range ups {
		if up.GetLogs() == nil {
			t.Fatalf("relay sent %v, want only log chunks", up)
		}
		if n := len(up.GetLogs().GetData()); n == 0 || n > relayChunk {
			t.Fatalf("chunk of %d bytes, want 1 to %d", n, relayChunk)
		}
		out = append(out, up.GetLogs())
	}
	return out
}

// data concatenates the chunks of stream s.
func data(chunks []*syscallsv1.LogsChunk, s syscallsv1.LogStream) string {
	var b bytes.Buffer
	for _, c := range chunks {
		if c.GetStream() == s {
			b.Write(c.GetData())
		}
	}
	return b.String()
}

// endedTask runs a task that exits at once and returns its sandbox, which
// stays after the kernel has its final report.
func endedTask(t *testing.T, k *fakeKernel, a *runningAgent, id string) string {
	t.Helper()
	k.pushTask(newTask(id, a.ID(), pending, "true"))
	k.waitReport(t, id, finished)
	eventually(t, id+" forgotten", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.tasks[id] == nil
	})
	return filepath.Join(a.dataDir, "sandboxes", id)
}

func TestAgent_Logs(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	sb := endedTask(t, k, a, "t-logs")
	small := logfile.Options{MaxBytes: 4096, MaxFiles: 100}
	writeLog(t, sb, "stdout", small, 1, 2000)
	writeLog(t, sb, "stderr", small, 1, 3)
	sbCut := endedTask(t, k, a, "t-cut")
	writeLog(t, sbCut, "stdout", logfile.Options{MaxBytes: 4096, MaxFiles: 2}, 1, 2000)
	sbBig := endedTask(t, k, a, "t-big")
	big := bytes.Repeat([]byte("x"), 100<<10) // one line longer than a chunk
	w, err := logfile.Create(sbBig, "stdout", logfile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(big)
	w.Close()

	// The cursor of a chunk in the middle, to resume from.
	all := logChunks(t, k.openStream(t, &syscallsv1.StreamOpen{StreamId: "s-all", Logs: &syscallsv1.LogsRequest{TaskId: "t-logs"}}).rest(t))
	var mid string
	var got strings.Builder
	var afterMid int
	for i, c := range all {
		got.Write(c.GetData())
		if i == len(all)/2 {
			mid, afterMid = c.GetCursor(), got.Len()
		}
		if c.GetTruncated() {
			t.Errorf("chunk at %s truncated, want none (nothing was deleted)", c.GetCursor())
		}
	}
	if got.String() != lines(1, 2000) {
		t.Fatalf("whole stdout: got %d bytes, want lines 1-2000", got.Len())
	}
	if len(all) < 4 {
		t.Fatalf("%d chunks, want one per generation or more", len(all))
	}

	tail := int64(3)
	tests := []struct {
		name          string
		req           *syscallsv1.LogsRequest
		stdout        string
		stderr        string
		truncatedHead bool
	}{
		{name: "resume at a cursor", req: &syscallsv1.LogsRequest{TaskId: "t-logs", StdoutCursor: mid}, stdout: lines(1, 2000)[afterMid:]},
		{name: "tail", req: &syscallsv1.LogsRequest{TaskId: "t-logs", Tail: &tail}, stdout: lines(1998, 2000)},
		{name: "tail of both streams", req: &syscallsv1.LogsRequest{TaskId: "t-logs", Tail: &tail,
			Streams: []syscallsv1.LogStream{stdoutStream, stderrStream}}, stdout: lines(1998, 2000), stderr: lines(1, 3)},
		{name: "stderr only", req: &syscallsv1.LogsRequest{TaskId: "t-logs", Streams: []syscallsv1.LogStream{stderrStream}}, stderr: lines(1, 3)},
		{name: "limit bytes", req: &syscallsv1.LogsRequest{TaskId: "t-logs", LimitBytes: 14}, stdout: "line 1\nline 2\n"},
		{name: "start rotated away", req: &syscallsv1.LogsRequest{TaskId: "t-cut"}, stdout: "*", truncatedHead: true},
		{name: "line longer than a chunk", req: &syscallsv1.LogsRequest{TaskId: "t-big"}, stdout: string(big)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := k.openStream(t, &syscallsv1.StreamOpen{StreamId: fmt.Sprintf("s-%d", i), Logs: tt.req})
			chunks := logChunks(t, r.rest(t))
			if len(chunks) == 0 {
				t.Fatal("no chunks")
			}
			if chunks[0].GetTruncated() != tt.truncatedHead {
				t.Errorf("first chunk truncated = %v, want %v", chunks[0].GetTruncated(), tt.truncatedHead)
			}
			out := data(chunks, stdoutStream)
			if tt.stdout == "*" { // the end of lines 1-2000, from a line start
				if !strings.HasSuffix(lines(1, 2000), out) || !strings.HasPrefix(out, "line ") || len(out) > 2*4096 {
					t.Errorf("stdout = %d bytes from %.20q, want the last generations of lines 1-2000", len(out), out)
				}
			} else if out != tt.stdout {
				t.Errorf("stdout = %d bytes %.40q…, want %d bytes %.40q…", len(out), out, len(tt.stdout), tt.stdout)
			}
			if got := data(chunks, stderrStream); got != tt.stderr {
				t.Errorf("stderr = %q, want %q", got, tt.stderr)
			}
			// Resuming at the last chunk's cursor gives nothing more.
			last := chunks[len(chunks)-1]
			if tt.req.GetLimitBytes() == 0 && len(tt.req.GetStreams()) == 0 {
				r := k.openStream(t, &syscallsv1.StreamOpen{StreamId: fmt.Sprintf("s-%d-end", i),
					Logs: &syscallsv1.LogsRequest{TaskId: tt.req.GetTaskId(), StdoutCursor: last.GetCursor()}})
				if rest := r.rest(t); len(rest) != 0 {
					t.Errorf("from the last cursor %s: %d more messages, want none", last.GetCursor(), len(rest))
				}
			}
		})
	}
}

func TestAgent_LogsErrors(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	sb := endedTask(t, k, a, "t-e")
	writeLog(t, sb, "stdout", logfile.Options{}, 1, 10)
	tests := []struct {
		name string
		open *syscallsv1.StreamOpen
		code connect.Code
		msg  string
	}{
		{"unknown task", &syscallsv1.StreamOpen{Logs: &syscallsv1.LogsRequest{TaskId: "t-nope"}}, connect.CodeNotFound, "task t-nope is not on agent " + a.ID()},
		{"path in task id", &syscallsv1.StreamOpen{Logs: &syscallsv1.LogsRequest{TaskId: "../t-e"}}, connect.CodeInvalidArgument, "task_id"},
		{"bad cursor", &syscallsv1.StreamOpen{Logs: &syscallsv1.LogsRequest{TaskId: "t-e", StdoutCursor: "1:x"}}, connect.CodeInvalidArgument, "stdout_cursor"},
		{"cursor past the end", &syscallsv1.StreamOpen{Logs: &syscallsv1.LogsRequest{TaskId: "t-e", StderrCursor: "9:0",
			Streams: []syscallsv1.LogStream{stderrStream}}}, connect.CodeInvalidArgument, "stderr_cursor 9:0"},
		{"bad stream", &syscallsv1.StreamOpen{Logs: &syscallsv1.LogsRequest{TaskId: "t-e", Streams: []syscallsv1.LogStream{7}}}, connect.CodeInvalidArgument, "streams"},
		{"neither logs nor exec", &syscallsv1.StreamOpen{}, connect.CodeInvalidArgument, "exactly one"},
		{"exec of an unknown task", &syscallsv1.StreamOpen{Exec: &syscallsv1.ExecStart{TaskId: "t-nope", Command: "true"}}, connect.CodeNotFound, "not on agent"},
		{"exec of an ended task", &syscallsv1.StreamOpen{Exec: &syscallsv1.ExecStart{TaskId: "t-e", Command: "true"}}, connect.CodeNotFound, "not on agent"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.open.StreamId = fmt.Sprintf("e-%d", i)
			ups := k.openStream(t, tt.open).rest(t)
			if len(ups) != 1 || ups[0].GetError() == nil {
				t.Fatalf("relay sent %v, want one RelayError", ups)
			}
			e := ups[0].GetError()
			if connect.Code(e.GetCode()) != tt.code || !strings.Contains(e.GetMessage(), tt.msg) {
				t.Errorf("error %v %q, want %v containing %q", connect.Code(e.GetCode()), e.GetMessage(), tt.code, tt.msg)
			}
		})
	}
}

// inotifyFDs counts the test process's inotify descriptors.
func inotifyFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && l == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// TestAgent_LogsFollow follows both streams of a running task while they
// are written across many rotations; the stream ends once the task has
// ended and both are read to their end, with every line once, in order.
// Not parallel: it counts the process's inotify descriptors.
func TestAgent_LogsFollow(t *testing.T) {
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	k.pushTask(newTask("t-f", a.ID(), pending, "sleep", "300"))
	run := k.waitReport(t, "t-f", running)
	before := inotifyFDs(t)

	r := k.openStream(t, &syscallsv1.StreamOpen{StreamId: "f", Logs: &syscallsv1.LogsRequest{
		TaskId: "t-f", Follow: true, Streams: []syscallsv1.LogStream{stdoutStream, stderrStream}}})
	o := logfile.Options{MaxBytes: 4096, MaxFiles: 100}
	var wg sync.WaitGroup
	wg.Go(func() { writeLog(t, run.GetSandbox(), "stdout", o, 1, 5000) })
	wg.Go(func() { writeLog(t, run.GetSandbox(), "stderr", o, 1, 500) })
	first, ok := r.next(t) // the stream is live before the task ends
	if !ok {
		t.Fatal("relay closed before any chunk")
	}
	wg.Wait()
	k.pushTask(newTask("t-f", a.ID(), killed, "sleep"))
	chunks := logChunks(t, append([]*syscallsv1.RelayUp{first}, r.rest(t)...))
	for _, s := range []syscallsv1.LogStream{stdoutStream, stderrStream} {
		want := map[syscallsv1.LogStream]string{stdoutStream: lines(1, 5000), stderrStream: lines(1, 500)}[s]
		if got := data(chunks, s); got != want {
			t.Errorf("%v: got %d bytes, want %d (every line once, in order)", s, len(got), len(want))
		}
		var prev logfile.Cursor
		for _, c := range chunks {
			if c.GetStream() != s {
				continue
			}
			cur, err := logfile.ParseCursor(c.GetCursor())
			if err != nil {
				t.Fatal(err)
			}
			if cur.Gen < prev.Gen || (cur.Gen == prev.Gen && cur.Off <= prev.Off) {
				t.Errorf("%v: cursor %s after %s", s, cur, prev)
			}
			prev = cur
		}
		if prev.Gen < map[syscallsv1.LogStream]uint64{stdoutStream: 10, stderrStream: 2}[s] {
			t.Errorf("%v: last cursor %s; want the stream followed across rotations", s, prev)
		}
	}
	eventually(t, "inotify descriptors released", func() bool { return inotifyFDs(t) <= before })
	eventually(t, "no logs stream counted open", func() bool { return a.Metrics().Streams["logs"] == 0 })
}

// TestAgent_LogsRelayCancel ends a follow's relay from the kernel's side:
// the agent stops reading. Not parallel: it counts inotify descriptors.
func TestAgent_LogsRelayCancel(t *testing.T) {
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	k.pushTask(newTask("t-c", a.ID(), pending, "sleep", "300"))
	run := k.waitReport(t, "t-c", running)
	writeLog(t, run.GetSandbox(), "stdout", logfile.Options{}, 1, 3)
	before := inotifyFDs(t)
	r := k.openStream(t, &syscallsv1.StreamOpen{StreamId: "c", Logs: &syscallsv1.LogsRequest{TaskId: "t-c", Follow: true}})
	if up, ok := r.next(t); !ok || string(up.GetLogs().GetData()) != lines(1, 3) {
		t.Fatalf("first message %v, want lines 1-3", up)
	}
	if n := a.Metrics().Streams["logs"]; n != 1 {
		t.Errorf("open logs streams = %d, want 1", n)
	}
	eventually(t, "the follower's inotify descriptor", func() bool { return inotifyFDs(t) > before })
	r.cancel()
	eventually(t, "the follower to stop", func() bool {
		return a.Metrics().Streams["logs"] == 0 && inotifyFDs(t) <= before
	})
}

// TestAgent_LogLimits: a task's LogConfig, else the agent's defaults,
// reach its driver; the real task's output is in its sandbox.
func TestAgent_LogLimits(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	var rec *recordingPlugins
	a := startAgentWith(t, k, url, "", func(c *Config) {
		c.LogMaxBytes, c.LogMaxFiles = 64<<10, 3
		rec = &recordingPlugins{testPlugins: c.Plugins.(*testPlugins)}
		c.Plugins = rec
	})
	own := newTask("t-own", a.ID(), pending, "echo", "own")
	own.Logs = &syscallsv1.LogConfig{MaxBytes: 8192, MaxFiles: 7}
	half := newTask("t-half", a.ID(), pending, "echo", "half")
	half.Logs = &syscallsv1.LogConfig{MaxFiles: 2}
	for _, tk := range []*syscallsv1.Task{own, half, newTask("t-def", a.ID(), pending, "echo", "def")} {
		k.pushTask(tk)
		k.waitReport(t, tk.GetId(), finished)
	}
	for id, want := range map[string][2]int64{"t-own": {8192, 7}, "t-half": {64 << 10, 2}, "t-def": {64 << 10, 3}} {
		cfg := rec.config(id)
		if cfg == nil {
			t.Errorf("%s: driver got no TaskConfig", id)
			continue
		}
		if cfg.LogMaxBytes != want[0] || int64(cfg.LogMaxFiles) != want[1] {
			t.Errorf("%s: LogMaxBytes, LogMaxFiles = %d, %d; want %d, %d", id, cfg.LogMaxBytes, cfg.LogMaxFiles, want[0], want[1])
		}
		b, err := os.ReadFile(filepath.Join(a.dataDir, "sandboxes", id, "stdout"))
		if want := strings.TrimPrefix(id, "t-") + "\n"; err != nil || string(b) != want {
			t.Errorf("%s: sandbox/stdout = %q, %v; want %q", id, b, err, want)
		}
	}
}

func TestAgent_NewLogLimits(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		bytes int64
		files int
		want  string
	}{{100, 0, "LogMaxBytes 100"}, {2 << 30, 0, "LogMaxBytes"}, {0, -1, "LogMaxFiles -1"}, {0, 101, "LogMaxFiles 101"}} {
		_, err := New(Config{DataDir: t.TempDir(), KernelURL: "http://127.0.0.1:1", Plugins: &testPlugins{}, LogMaxBytes: tt.bytes, LogMaxFiles: tt.files})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(LogMaxBytes %d, LogMaxFiles %d) = %v, want an error naming %q", tt.bytes, tt.files, err, tt.want)
		}
	}
}

// recordingPlugins records the TaskConfig each task started with and
// serves the exec driver as an ExecDriver (its real ExecTask) when exec
// is set, else hidden behind contract.Driver alone.
type recordingPlugins struct {
	*testPlugins
	exec bool

	mu      sync.Mutex
	configs map[string]*contract.TaskConfig
}

func (p *recordingPlugins) config(id string) *contract.TaskConfig {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.configs[id]
}

func (p *recordingPlugins) Driver(name string) (contract.Driver, error) {
	d, err := p.testPlugins.Driver(name)
	if err != nil {
		return nil, err
	}
	if p.exec {
		return execRecordingDriver{recordingDriver{Driver: d, p: p}, d.(contract.ExecDriver)}, nil
	}
	return recordingDriver{Driver: d, p: p}, nil
}

type recordingDriver struct {
	contract.Driver
	p *recordingPlugins
}

func (d recordingDriver) StartTask(ctx context.Context, cfg *contract.TaskConfig) (*contract.TaskHandle, error) {
	d.p.mu.Lock()
	if d.p.configs == nil {
		d.p.configs = map[string]*contract.TaskConfig{}
	}
	d.p.configs[cfg.ID] = cfg
	d.p.mu.Unlock()
	return d.Driver.StartTask(ctx, cfg)
}

// execRecordingDriver is recordingDriver with the real driver's ExecTask.
type execRecordingDriver struct {
	recordingDriver
	x contract.ExecDriver
}

func (d execRecordingDriver) ExecTask(ctx context.Context, opts *contract.ExecOptions, eio contract.ExecIO) (*contract.ExitResult, error) {
	return d.x.ExecTask(ctx, opts, eio)
}

// execResult collects an exec relay's output until the agent closes it.
func execResult(t *testing.T, r *fakeRelay) (stdout, stderr string, exit *syscallsv1.ExecExit, relayErr *syscallsv1.RelayError) {
	t.Helper()
	var o, e strings.Builder
	for _, up := range r.rest(t) {
		switch {
		case up.GetError() != nil:
			relayErr = up.GetError()
		case up.GetExec().GetExit() != nil:
			exit = up.GetExec().GetExit()
		default:
			if len(up.GetExec().GetStdout())+len(up.GetExec().GetStderr()) > relayChunk {
				t.Errorf("exec frame of %d bytes, want at most %d", len(up.GetExec().GetStdout()), relayChunk)
			}
			o.Write(up.GetExec().GetStdout())
			e.Write(up.GetExec().GetStderr())
		}
	}
	return o.String(), e.String(), exit, relayErr
}

func TestAgent_Exec(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	var rec *recordingPlugins
	a := startAgentWith(t, k, url, "", func(c *Config) {
		rec = &recordingPlugins{testPlugins: c.Plugins.(*testPlugins), exec: true}
		c.Plugins = rec
	})
	k.pushTask(newTask("t-x", a.ID(), pending, "sleep", "300"))
	k.waitReport(t, "t-x", running)

	t.Run("stdin, stdout, stderr, exit code", func(t *testing.T) {
		r := k.openStream(t, &syscallsv1.StreamOpen{StreamId: "x1", Exec: &syscallsv1.ExecStart{
			TaskId: "t-x", Command: "sh", Args: []string{"-c", `read a; read b; echo "got $a $b $FOO"; echo oops >&2; cat >/dev/null; exit 3`},
			Env: map[string]string{"FOO": "foo"}, Stdin: true}})
		r.send(t, &syscallsv1.RelayDown{Exec: &syscallsv1.ExecInput{Stdin: []byte("hello\n")}})
		r.send(t, &syscallsv1.RelayDown{Exec: &syscallsv1.ExecInput{Stdin: []byte("world\n"), Resize: &syscallsv1.TermSize{Rows: 5, Cols: 7}}})
		r.send(t, &syscallsv1.RelayDown{Exec: &syscallsv1.ExecInput{StdinEof: true}})
		out, errOut, exit, rerr := execResult(t, r)
		if rerr != nil || exit == nil {
			t.Fatalf("exit %v, error %v; want an exit", exit, rerr)
		}
		if out != "got hello world foo\n" || errOut != "oops\n" || exit.GetCode() != 3 {
			t.Errorf("stdout %q, stderr %q, exit %d; want %q, %q, 3", out, errOut, exit.GetCode(), "got hello world foo\n", "oops\n")
		}
	})
	t.Run("large output in bounded frames", func(t *testing.T) {
		r := k.openStream(t, &syscallsv1.StreamOpen{StreamId: "x2", Exec: &syscallsv1.ExecStart{
			TaskId: "t-x", Command: "head", Args: []string{"-c", "300000", "/dev/zero"}}})
		out, _, exit, rerr := execResult(t, r)
		if rerr != nil || exit.GetCode() != 0 || len(out) != 300000 {
			t.Errorf("stdout %d bytes, exit %v, error %v; want 300000 bytes, exit 0", len(out), exit, rerr)
		}
	})
	t.Run("relay end kills the command", func(t *testing.T) {
		arg := fmt.Sprintf("300.%d", time.Now().UnixNano()) // sleep's argument (a valid one) names it
		r := k.openStream(t, &syscallsv1.StreamOpen{StreamId: "x3", Exec: &syscallsv1.ExecStart{
			TaskId: "t-x", Command: "sh", Args: []string{"-c", "echo up; exec sleep " + arg}}})
		if up, ok := r.next(t); !ok || string(up.GetExec().GetStdout()) != "up\n" {
			t.Fatalf("first output %v, want up", up)
		}
		var pid int
		eventually(t, "the exec'd command running", func() bool { pid = pidWithArg(arg); return pid > 0 })
		r.cancel()
		eventually(t, "the exec'd command killed", func() bool { return processGone(pid) })
		eventually(t, "no exec stream counted open", func() bool { return a.Metrics().Streams["exec"] == 0 })
	})
	t.Run("tty and its size", func(t *testing.T) {
		r := k.openStream(t, &syscallsv1.StreamOpen{StreamId: "x4", Exec: &syscallsv1.ExecStart{TaskId: "t-x", Command: "stty", Args: []string{"size"},
			Tty: true, Size: &syscallsv1.TermSize{Rows: 5, Cols: 7}}})
		out, _, exit, rerr := execResult(t, r)
		if rerr != nil || exit.GetCode() != 0 || strings.TrimSpace(out) != "5 7" {
			t.Errorf("stty size under a 5x7 tty: %q, exit %v, error %v", out, exit, rerr)
		}
	})
	t.Run("no command", func(t *testing.T) {
		_, _, _, rerr := execResult(t, k.openStream(t, &syscallsv1.StreamOpen{StreamId: "x5", Exec: &syscallsv1.ExecStart{TaskId: "t-x"}}))
		if connect.Code(rerr.GetCode()) != connect.CodeInvalidArgument || !strings.Contains(rerr.GetMessage(), "command") {
			t.Errorf("error %v, want InvalidArgument naming command", rerr)
		}
	})
}

func TestAgent_ExecNotSupported(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgentWith(t, k, url, "", func(c *Config) {
		c.Plugins = &recordingPlugins{testPlugins: c.Plugins.(*testPlugins)} // its driver is no ExecDriver
	})
	k.pushTask(newTask("t-n", a.ID(), pending, "sleep", "300"))
	k.waitReport(t, "t-n", running)
	_, _, exit, rerr := execResult(t, k.openStream(t, &syscallsv1.StreamOpen{StreamId: "n", Exec: &syscallsv1.ExecStart{TaskId: "t-n", Command: "true"}}))
	if exit != nil || connect.Code(rerr.GetCode()) != connect.CodeUnimplemented || rerr.GetMessage() != "driver exec cannot exec" {
		t.Errorf("exit %v, error %v; want Unimplemented \"driver exec cannot exec\"", exit, rerr)
	}
}

// TestAgent_StreamsReopen: a failed AgentStreams call is made again, and
// streams are served on the new one.
func TestAgent_StreamsReopen(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	k.script(&k.streamsErrs, connect.NewError(connect.CodeUnavailable, errors.New("kernel restarting")))
	a := startAgent(t, k, url, "")
	k.waitFor(t, "a second AgentStreams call", func() bool { return k.streamsCalls >= 2 })
	ups := k.openStream(t, &syscallsv1.StreamOpen{StreamId: "r", Logs: &syscallsv1.LogsRequest{TaskId: "t-none"}}).rest(t)
	if len(ups) != 1 || connect.Code(ups[0].GetError().GetCode()) != connect.CodeNotFound {
		t.Errorf("relay sent %v, want NotFound for t-none on %s", ups, a.ID())
	}
}

// pidWithArg is the pid of a process with arg among its arguments, or 0.
func pidWithArg(arg string) int {
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		for _, a := range strings.Split(string(b), "\x00") {
			if a == arg {
				return pid
			}
		}
	}
	return 0
}
