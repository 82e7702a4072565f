package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

type execStream = connect.BidiStream[syscallsv1.ExecInput, syscallsv1.ExecOutput]

// scriptedExec is an Exec that records its start and answers outs, then
// ends with err.
func scriptedExec(k *fakeKernel, outs []*syscallsv1.ExecOutput, err error) func(context.Context, *execStream) error {
	return func(_ context.Context, s *execStream) error {
		first, rerr := s.Receive()
		if rerr != nil {
			return rerr
		}
		k.record("Exec", first, s.RequestHeader())
		for _, o := range outs {
			if serr := s.Send(o); serr != nil {
				return serr
			}
		}
		return err
	}
}

func TestRun_ExecStdin(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	r := runCtl(t, context.Background(), "hello\nworld\n", "--kernel", url, "exec", "-i", "t-1", "--", "cat", "-n", "--", "x")
	if r.code != 3 {
		t.Fatalf("exit %d, want 3 (the command's): %s", r.code, r.stderr)
	}
	if r.stdout != "hello\nworld\n" || r.stderr != "" {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
	assertProto(t, k.last("Exec"), &syscallsv1.ExecInput{Start: &syscallsv1.ExecStart{TaskId: "t-1", Command: "cat", Args: []string{"-n", "--", "x"}, Stdin: true}})
	if eof := k.last("ExecInput"); !proto.Equal(eof, &syscallsv1.ExecInput{StdinEof: true}) {
		t.Errorf("last input = %v, want stdin_eof", eof)
	}
}

// TestRun_ExecStdinChunks: a large stdin goes in inputs of at most 32 KiB,
// every byte once.
func TestRun_ExecStdinChunks(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	in := strings.Repeat("0123456789abcdef", 10<<10) // 160 KiB
	r := runCtl(t, context.Background(), in, "--kernel", url, "exec", "-i", "t-1", "--", "cat")
	if r.code != 3 || r.stdout != in {
		t.Fatalf("exit %d, %d bytes out (want %d): %s", r.code, len(r.stdout), len(in), r.stderr)
	}
	for _, c := range k.recorded() {
		if in, ok := c.req.(*syscallsv1.ExecInput); ok && len(in.GetStdin()) > execStdinChunk {
			t.Errorf("a stdin input of %d bytes", len(in.GetStdin()))
		}
	}
}

func TestRun_ExecExitStatus(t *testing.T) {
	tests := []struct {
		name     string
		outs     []*syscallsv1.ExecOutput
		err      error
		code     int
		stdout   string
		inStderr string
	}{
		{"exit 0", []*syscallsv1.ExecOutput{{Stdout: []byte("ok\n")}, {Stderr: []byte("warn\n"), Exit: &syscallsv1.ExecExit{}}}, nil, 0, "ok\n", "warn\n"},
		{"killed by signal 9", []*syscallsv1.ExecOutput{{Exit: &syscallsv1.ExecExit{Code: -1, Signal: 9}}}, nil, 137, "", ""},
		{"no exit", []*syscallsv1.ExecOutput{{Stdout: []byte("x")}}, nil, exitCallError, "x", "Exec: the stream ended without the command's exit status"},
		{"permission denied", nil, connect.NewError(connect.CodePermissionDenied, errors.New("task t-1 belongs to fw-a")), exitCallError, "", "Exec: PermissionDenied: task t-1 belongs to fw-a"},
		{"agent down", nil, connect.NewError(connect.CodeUnavailable, errors.New("agent ag-1 is not connected")), exitCallError, "", "Exec: Unavailable: agent ag-1 is not connected"},
		{"not found", nil, connect.NewError(connect.CodeNotFound, errors.New("no task t-1")), exitCallError, "", "Exec: NotFound: no task t-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := &fakeKernel{}
			k.exec = scriptedExec(k, tt.outs, tt.err)
			url := k.serve(t)
			r := runCtl(t, context.Background(), "", "--kernel", url, "exec", "t-1", "true")
			if r.code != tt.code || r.stdout != tt.stdout || !strings.Contains(r.stderr, tt.inStderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.inStderr)
			}
			assertProto(t, k.last("Exec"), &syscallsv1.ExecInput{Start: &syscallsv1.ExecStart{TaskId: "t-1", Command: "true"}})
		})
	}
}

// TestRun_ExecTTYWithoutTerminal: -t with a stdin that is not a terminal
// warns and goes on without a TTY.
func TestRun_ExecTTYWithoutTerminal(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "exec", "-it", "t-1", "--", "sh")
	if r.code != 3 || !strings.Contains(r.stderr, "Unable to use a TTY - input is not a terminal") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	assertProto(t, k.last("Exec"), &syscallsv1.ExecInput{Start: &syscallsv1.ExecStart{TaskId: "t-1", Command: "sh", Stdin: true}})
}

func TestRun_ExecJSON(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	k.exec = scriptedExec(k, []*syscallsv1.ExecOutput{
		{Stdout: []byte("out\n"), Stderr: []byte{0xff, 0x00}},
		{Exit: &syscallsv1.ExecExit{Code: 3}},
	}, nil)
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "-o", "json", "exec", "t-1", "--", "x")
	if r.code != 3 || r.stderr != "" {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := `{"stream":"stdout","data":"out\n","encoding":"utf8"}
{"stream":"stderr","data":"/wA=","encoding":"base64"}
{"exit":{"code":3,"signal":0}}
`
	if r.stdout != want {
		t.Errorf("stdout =\n%s\nwant\n%s", r.stdout, want)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not JSON: %s", line)
		}
	}
}

// TestRun_ExecTTY runs exec -it with a real pseudo-terminal as stdin and
// stdout: the start carries the terminal's size, the terminal is in raw
// mode while the command runs (keys go through at once, unechoed), a
// resize of the terminal (SIGWINCH) sends a resize input, the command's
// exit status is dcosctl's, and the terminal's mode is restored.
func TestRun_ExecTTY(t *testing.T) {
	isolate(t)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	fd, ok := fileFD(tty)
	if !ok {
		t.Fatal("no descriptor for the pty")
	}
	before, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(out, ptmx); close(copied) }()

	k := &fakeKernel{}
	url := k.serve(t)
	var errb lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"dcosctl", "--kernel", url, "exec", "-it", "t-1", "--", "sh"},
			&env{stdin: tty, stdout: tty, stderr: &errb, now: time.Now})
	}()
	waitFor(t, "the start", func() bool { return k.last("Exec") != nil })
	assertProto(t, k.last("Exec"), &syscallsv1.ExecInput{Start: &syscallsv1.ExecStart{
		TaskId: "t-1", Command: "sh", Tty: true, Stdin: true, Size: &syscallsv1.TermSize{Rows: 30, Cols: 100}}})
	raw, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 {
		t.Errorf("terminal not in raw mode while exec runs: lflag %#x", raw.Lflag)
	}

	if _, err := ptmx.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the echo", func() bool { return strings.Contains(out.String(), "hello") })

	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	// The pty is not the test process's controlling terminal, so the
	// kernel does not signal the resize: do what it does for dcosctl.
	if err := syscall.Kill(os.Getpid(), syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resize", func() bool {
		return proto.Equal(k.last("ExecInput"), &syscallsv1.ExecInput{Resize: &syscallsv1.TermSize{Rows: 40, Cols: 120}})
	})

	if _, err := ptmx.Write([]byte{4}); err != nil { // Ctrl-D: the fake exits 3
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 3 {
			t.Errorf("exit %d, want 3: %s", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("exec did not end")
	}
	after, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if after.Iflag != before.Iflag || after.Oflag != before.Oflag || after.Lflag != before.Lflag || after.Cflag != before.Cflag {
		t.Errorf("terminal mode not restored: before %+v, after %+v", before, after)
	}
	// With the slave closed (dcosctl's read of it was cut when exec
	// ended), the master's reader sees EIO.
	tty.Close()
	<-copied
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// BenchmarkRun_ExecTrue is dcosctl's side of "dcosctl exec TASK -- true":
// an h2c connection, the start, and the exit, against an in-process kernel.
func BenchmarkRun_ExecTrue(b *testing.B) {
	k := &fakeKernel{}
	k.exec = func(_ context.Context, s *execStream) error {
		if _, err := s.Receive(); err != nil {
			return err
		}
		return s.Send(&syscallsv1.ExecOutput{Exit: &syscallsv1.ExecExit{}})
	}
	srv := k.serveBench(b)
	for b.Loop() {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"dcosctl", "--kernel", srv, "exec", "t-1", "--", "true"}, &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: time.Now}); code != 0 {
			b.Fatalf("exit %d: %s", code, errb.String())
		}
	}
}
