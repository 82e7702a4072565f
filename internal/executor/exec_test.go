package executor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/internal/logfile"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

const testPath = "/usr/local/bin:/usr/bin:/bin"

// newExecutor returns an executor on a fresh state dir, closed at cleanup,
// whose supervisor must then exit on its own.
func newExecutor(t testing.TB) *Executor {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the executor needs Linux")
	}
	dir := t.TempDir()
	e, err := New(Config{StateDir: dir, SupervisorCmd: []string{os.Args[0], "supervisor", dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		if tt, ok := t.(*testing.T); ok {
			waitNoSupervisor(tt, dir)
		}
	})
	return e
}

// startSleeper starts a task that sleeps until killed (at cleanup).
func startSleeper(t testing.TB, e *Executor, id string, iso *contract.TaskIsolation, cgroups ...string) *contract.TaskHandle {
	t.Helper()
	ctx := context.Background()
	sandbox := t.TempDir()
	cfg := &contract.TaskConfig{ID: id, Command: "sleep", Args: []string{"1000"}, WorkDir: sandbox,
		Env: map[string]string{"PATH": testPath, "TASKVAR": "from-task"}, Isolation: iso, Cgroups: cgroups}
	if iso != nil {
		iso.Sandbox = sandbox
	}
	h, err := e.StartTask(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.DestroyTask(context.Background(), id, true); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	return h
}

// syncBuffer is a bytes.Buffer safe for one writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds, failing after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestExecutor_LogsRotate: a task's output goes through the supervisor
// into rotated generations; every line is there once, in order, when its
// exit is reported.
func TestExecutor_LogsRotate(t *testing.T) {
	e := newExecutor(t)
	ctx := context.Background()
	sandbox := t.TempDir()
	const lines = 3000
	_, err := e.StartTask(ctx, &contract.TaskConfig{ID: "rot", Command: "sh",
		Args: []string{"-c", fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo line-$i; echo err-$i >&2; i=$((i+1)); done`, lines)},
		Env:  map[string]string{"PATH": testPath}, WorkDir: sandbox,
		StdoutPath: filepath.Join(sandbox, "stdout"), StderrPath: filepath.Join(sandbox, "stderr"),
		LogMaxBytes: 4096, LogMaxFiles: 1000})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.WaitTask(ctx, "rot")
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("wait: %+v %v", r, err)
	}
	for _, stream := range []string{"stdout", "stderr"} {
		rd, err := logfile.Open(sandbox, stream)
		if err != nil {
			t.Fatal(err)
		}
		var all bytes.Buffer
		buf := make([]byte, 1000)
		c := logfile.Cursor{}
		for {
			n, next, err := rd.Read(c, buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			all.Write(buf[:n])
			c = next
		}
		rd.Close()
		got := strings.Split(strings.TrimSuffix(all.String(), "\n"), "\n")
		prefix := map[string]string{"stdout": "line-", "stderr": "err-"}[stream]
		if len(got) != lines {
			t.Fatalf("%s: %d lines, want %d", stream, len(got), lines)
		}
		for i, l := range got {
			if l != prefix+strconv.Itoa(i+1) {
				t.Fatalf("%s: line %d is %q", stream, i+1, l)
			}
		}
		if c.Gen < 5 {
			t.Errorf("%s: %d generations; want rotation with MaxBytes 4096", stream, c.Gen)
		}
		live, err := os.ReadFile(filepath.Join(sandbox, stream))
		if err != nil || !strings.HasSuffix(string(live), prefix+strconv.Itoa(lines)+"\n") {
			t.Errorf("%s: the live file (hard link) does not end with the last line: %v", stream, err)
		}
	}
	if err := e.DestroyTask(ctx, "rot", false); err != nil {
		t.Fatal(err)
	}
}

// TestExecutor_LogsPlantedSymlink: a task that replaces its next
// generation with a symlink to a root-only file makes the supervisor
// write neither there nor anywhere else through it.
func TestExecutor_LogsPlantedSymlink(t *testing.T) {
	e := newExecutor(t)
	ctx := context.Background()
	sandbox := t.TempDir()
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root:x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := e.StartTask(ctx, &contract.TaskConfig{ID: "plant", Command: "sh",
		Args: []string{"-c", `ln -s "$SECRET" stdout.000002 && i=0; while [ $i -lt 200 ]; do echo pwned-$i; i=$((i+1)); done`},
		Env:  map[string]string{"PATH": testPath, "SECRET": secret}, WorkDir: sandbox,
		StdoutPath: filepath.Join(sandbox, "stdout"), LogMaxBytes: 256})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := e.WaitTask(ctx, "plant"); err != nil || r.ExitCode != 0 {
		t.Fatalf("wait: %+v %v (the task must not die of its own output)", r, err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "root:x\n" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	if err := e.DestroyTask(ctx, "plant", false); err != nil {
		t.Fatal(err)
	}
}

func TestExecutor_ExecPipes(t *testing.T) {
	e := newExecutor(t)
	ctx := context.Background()
	startSleeper(t, e, "p", nil)
	t.Run("streams and code", func(t *testing.T) {
		var out, errb bytes.Buffer
		r, err := e.Exec(ctx, &contract.ExecOptions{TaskID: "p", Command: "sh",
			Args: []string{"-c", `echo out $TASKVAR $EXTRA; echo err >&2; exit 3`}, Env: map[string]string{"EXTRA": "x"}},
			contract.ExecIO{Stdout: &out, Stderr: &errb})
		if err != nil || r.ExitCode != 3 {
			t.Fatalf("exec: %+v %v", r, err)
		}
		if out.String() != "out from-task x\n" || errb.String() != "err\n" {
			t.Errorf("stdout %q stderr %q", out.String(), errb.String())
		}
	})
	t.Run("stdin", func(t *testing.T) {
		var out, errb bytes.Buffer
		in := strings.NewReader(strings.Repeat("0123456789", 10000)) // 100 KB: several frames
		r, err := e.Exec(ctx, &contract.ExecOptions{TaskID: "p", Command: "cat", Stdin: true},
			contract.ExecIO{Stdin: in, Stdout: &out, Stderr: &errb})
		if err != nil || r.ExitCode != 0 {
			t.Fatalf("exec: %+v %v", r, err)
		}
		if out.Len() != 100000 || out.String() != strings.Repeat("0123456789", 10000) {
			t.Errorf("cat echoed %d bytes", out.Len())
		}
	})
	t.Run("not found", func(t *testing.T) {
		var out, errb bytes.Buffer
		r, err := e.Exec(ctx, &contract.ExecOptions{TaskID: "p", Command: "no-such-command"},
			contract.ExecIO{Stdout: &out, Stderr: &errb})
		if err != nil || r.ExitCode != 127 || !strings.Contains(errb.String(), "no-such-command") {
			t.Fatalf("exec: %+v %v, stderr %q; want 127 and why", r, err, errb.String())
		}
	})
	t.Run("unknown task", func(t *testing.T) {
		_, err := e.Exec(ctx, &contract.ExecOptions{TaskID: "nope", Command: "true"},
			contract.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
		if !errors.Is(err, contract.ErrTaskNotFound) {
			t.Fatalf("exec: %v, want ErrTaskNotFound", err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, o := range []*contract.ExecOptions{{TaskID: "p"}, {TaskID: "p", Command: "true", Env: map[string]string{"A=B": "c"}},
			{TaskID: "p", Command: "true", Stdin: true}} {
			if _, err := e.Exec(ctx, o, contract.ExecIO{Stdout: io.Discard, Stderr: io.Discard}); err == nil {
				t.Errorf("exec %+v: no error", o)
			}
		}
	})
}

// TestExecutor_ExecExitedTask: exec into a task that has exited is an
// error saying so.
func TestExecutor_ExecExitedTask(t *testing.T) {
	e := newExecutor(t)
	ctx := context.Background()
	if _, err := e.StartTask(ctx, &contract.TaskConfig{ID: "x", Command: "true", Env: map[string]string{"PATH": testPath}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitTask(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	_, err := e.Exec(ctx, &contract.ExecOptions{TaskID: "x", Command: "true"}, contract.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("exec into an exited task: %v", err)
	}
	e.DestroyTask(ctx, "x", false)
}

// TestExecutor_ExecCancel: ending the context kills the command (its
// process is gone) and Exec returns the context's error.
func TestExecutor_ExecCancel(t *testing.T) {
	e := newExecutor(t)
	startSleeper(t, e, "c", nil)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	res := make(chan error, 1)
	go func() {
		_, err := e.Exec(ctx, &contract.ExecOptions{TaskID: "c", Command: "sh", Args: []string{"-c", `echo $$; exec sleep 1000`}},
			contract.ExecIO{Stdout: &out, Stderr: io.Discard})
		res <- err
	}()
	waitFor(t, "the exec's pid", func() bool { return strings.HasSuffix(out.String(), "\n") })
	pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
	if err != nil {
		t.Fatal(err)
	}
	st, err := proc.StartTime(pid)
	if err != nil {
		t.Fatalf("the exec's process %d: %v", pid, err)
	}
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("exec: %v, want context.Canceled", err)
	}
	waitFor(t, "the exec's process to be gone", func() bool { return !proc.Alive(pid, st) })
}

// TestExecutor_ExecTTY: a shell under a pty in an isolated task (its own
// pid namespace): the terminal's size and its resize, the namespace, the
// exit code.
func TestExecutor_ExecTTY(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("isolated tasks need root")
	}
	e := newExecutor(t)
	ctx := context.Background()
	cg := memoryCgroup(t)
	h := startSleeper(t, e, "tty", &contract.TaskIsolation{UID: 0, GID: 0}, cg)
	pr, pw := io.Pipe()
	resize := make(chan contract.TermSize, 1)
	var out syncBuffer
	res := make(chan error, 1)
	var r *contract.ExitResult
	go func() {
		var err error
		r, err = e.Exec(ctx, &contract.ExecOptions{TaskID: "tty", Command: "sh", TTY: true, Stdin: true,
			Size: contract.TermSize{Rows: 24, Cols: 80}}, contract.ExecIO{Stdin: pr, Stdout: &out, Resize: resize})
		res <- err
	}()
	say := func(s string) {
		if _, err := pw.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	say("stty size\n")
	waitFor(t, "24 80", func() bool { return strings.Contains(out.String(), "24 80") })
	resize <- contract.TermSize{Rows: 30, Cols: 100}
	// The resize and the next line travel on different goroutines: ask
	// until the new size shows.
	waitFor(t, "30 100", func() bool {
		say("stty size\n")
		time.Sleep(20 * time.Millisecond)
		return strings.Contains(out.String(), "30 100")
	})
	say("echo ns=$(readlink /proc/self/ns/pid) tty=$(tty)\n")
	var taskNs string
	if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", h.PID)); err == nil {
		taskNs = ns
	}
	hostNs, _ := os.Readlink("/proc/self/ns/pid")
	waitFor(t, "the namespace", func() bool {
		return strings.Contains(out.String(), "ns=pid:") && strings.Contains(out.String(), "tty=/dev/")
	})
	say("exit 3\n")
	if err := <-res; err != nil {
		t.Fatalf("exec: %v", err)
	}
	if r.ExitCode != 3 {
		t.Errorf("exit %+v, want 3; output %q", r, out.String())
	}
	// Its cgroup is the task's: the same as the task's init, which is in
	// the cgroup the task was given.
	var cgOut, cgErr bytes.Buffer
	if r, err := e.Exec(ctx, &contract.ExecOptions{TaskID: "tty", Command: "sh", Args: []string{"-c", "grep :memory: /proc/self/cgroup /proc/1/cgroup"}},
		contract.ExecIO{Stdout: &cgOut, Stderr: &cgErr}); err != nil || r.ExitCode != 0 {
		t.Fatalf("exec cgroup: %+v %v %s", r, err, cgErr.String())
	}
	lines := strings.Split(strings.TrimSpace(cgOut.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("exec cgroup: %q", cgOut.String())
	}
	_, self, _ := strings.Cut(lines[0], ":")
	_, init, _ := strings.Cut(lines[1], ":")
	hostView, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", h.PID))
	if self != init || !strings.Contains(string(hostView), strings.TrimPrefix(cg, "/sys/fs/cgroup/memory")) {
		t.Errorf("exec in memory cgroup %q, the task's init in %q; the host sees the task in %q, want %s", self, init, hostView, cg)
	}

	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		if ns, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ns="); ok {
			ns, _, _ = strings.Cut(ns, " ")
			// The task's main process is its init, pid 1 of the task's
			// namespace, whose /proc/PID/ns/pid is that namespace.
			if ns != taskNs || ns == hostNs {
				t.Errorf("exec in pid namespace %s; the task's is %s, the host's %s", ns, taskNs, hostNs)
			}
		}
	}
}

// memoryCgroup creates a cgroup v1 memory cgroup under this process's
// own, removed at cleanup (after the tasks in it are gone).
func memoryCgroup(t *testing.T) string {
	t.Helper()
	const mount = "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(mount, "cgroup.procs")); err != nil {
		t.Skipf("no cgroup v1 memory hierarchy at %s: %v", mount, err)
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	own := ""
	for _, l := range strings.Split(string(b), "\n") {
		if p := strings.SplitN(l, ":", 3); len(p) == 3 && p[1] == "memory" {
			own = p[2]
		}
	}
	dir := filepath.Join(mount, own, fmt.Sprintf("executor-test-%d-%s", os.Getpid(), t.Name()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		waitFor(t, "the test cgroup to be removable", func() bool {
			err := os.Remove(dir)
			return err == nil || os.IsNotExist(err)
		})
	})
	return dir
}

// BenchmarkExecTrue: one exec of `true` into a running task, round trip.
func BenchmarkExecTrue(b *testing.B) {
	e := newExecutor(b)
	startSleeper(b, e, "bench", nil)
	ctx := context.Background()
	opts := &contract.ExecOptions{TaskID: "bench", Command: "true"}
	for b.Loop() {
		r, err := e.Exec(ctx, opts, contract.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
		if err != nil || r.ExitCode != 0 {
			b.Fatalf("exec: %+v %v", r, err)
		}
	}
}

// TestExecutor_LogsEscapedWriter: a process that leaves the task's group
// but keeps its stdout does not hold up the task's exit for longer than
// the drain bound (the exit is reported, the supervisor goes on); what
// the task wrote is in the log when its exit is reported.
func TestExecutor_LogsEscapedWriter(t *testing.T) {
	e := newExecutor(t)
	ctx := context.Background()
	sandbox := t.TempDir()
	pidFile := filepath.Join(sandbox, "escaped.pid")
	_, err := e.StartTask(ctx, &contract.TaskConfig{ID: "esc", Command: "sh",
		Args: []string{"-c", `setsid sh -c 'echo $$ > escaped.pid.tmp; mv escaped.pid.tmp escaped.pid; exec sleep 1000' & while [ ! -e escaped.pid ]; do sleep 0.01; done; echo hi`},
		Env:  map[string]string{"PATH": testPath}, WorkDir: sandbox, StdoutPath: filepath.Join(sandbox, "stdout")})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.WaitTask(ctx, "esc")
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("wait: %+v %v", r, err)
	}
	var pid int
	waitFor(t, "the escaped process's pid", func() bool {
		b, _ := os.ReadFile(pidFile)
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	defer syscall.Kill(-pid, syscall.SIGKILL)
	if b, err := os.ReadFile(filepath.Join(sandbox, "stdout")); err != nil || !strings.Contains(string(b), "hi\n") {
		t.Fatalf("stdout at the exit: %q, %v; want hi", b, err)
	}
	if err := e.DestroyTask(ctx, "esc", false); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	waitFor(t, "the escaped process to go", func() bool { return syscall.Kill(pid, 0) != nil })
}

// TestExecutor_ExecWithoutSupervisor: a task whose supervisor died runs
// on, watched through a pidfd, but nothing can enter it: exec says why.
func TestExecutor_ExecWithoutSupervisor(t *testing.T) {
	e := newExecutor(t)
	ctx := context.Background()
	startSleeper(t, e, "orphan", nil)
	e.mu.Lock()
	spid := e.cl.supervisorPid()
	e.mu.Unlock()
	if err := syscall.Kill(spid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the executor to notice", func() bool {
		st, err := e.InspectTask(ctx, "orphan")
		return err == nil && st.Attributes["supervised"] == "false"
	})
	_, err := e.Exec(ctx, &contract.ExecOptions{TaskID: "orphan", Command: "true"}, contract.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "supervisor is gone") {
		t.Fatalf("exec without a supervisor: %v", err)
	}
}
