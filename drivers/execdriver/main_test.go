package execdriver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/internal/executor/wire"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// supervisorEnv, set in the test process and so in the supervisors its
// drivers start, makes the test binary run SupervisorMain: SupervisorCmd
// is the test binary itself with the state dir as last argument.
const supervisorEnv = "EXECDRIVER_TEST_SUPERVISOR"

func TestMain(m *testing.M) {
	if gate := os.Getenv(driverEnv); gate != "" {
		os.Unsetenv(driverEnv)
		os.Exit(driverMain(os.Args[len(os.Args)-1], gate))
	}
	if os.Getenv(supervisorEnv) == "1" {
		os.Exit(SupervisorMain(os.Args[len(os.Args)-1], nil))
	}
	os.Setenv(supervisorEnv, "1")
	if os.Getenv("GORACE") == "" {
		// With -race, every process sleeps 1 s at exit (atexit_sleep_ms):
		// the supervisor's detaching parent would delay each first start.
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	os.Exit(m.Run())
}

// driverEnv makes the test binary a driver process that starts a gated
// task (see gatedTask) with its value as gate, prints the handle and waits
// to be killed.
const driverEnv = "EXECDRIVER_TEST_DRIVER"

func driverMain(dir, gate string) int {
	d, err := New(Config{StateDir: dir, SupervisorCmd: []string{os.Args[0], "supervisor", "--state-dir", dir}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := gatedTask("killed-driver", gate)
	cfg.Env = map[string]string{"PATH": testPath}
	h, err := d.StartTask(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	b, _ := contract.MarshalHandle(h)
	fmt.Printf("%x\n", b)
	select {}
}

const testPath = "/usr/local/bin:/usr/bin:/bin"

// newDriver returns a driver on a fresh state dir. At cleanup it closes
// the driver and checks that the supervisor exits on its own (tasks are
// killed by killAtCleanup before).
func newDriver(t testing.TB) (*Driver, string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the exec driver needs Linux")
	}
	dir := t.TempDir()
	t.Cleanup(func() { waitNoSupervisor(t, dir) }) // after the driver's Close
	return openDriver(t, dir), dir
}

// openDriver returns a driver on dir, closed at cleanup.
func openDriver(t testing.TB, dir string) *Driver {
	t.Helper()
	d, err := New(Config{StateDir: dir, SupervisorCmd: []string{os.Args[0], "supervisor", "--state-dir", dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// supervisorPids returns the pids of running supervisors of dir.
func supervisorPids(dir string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !bytes.Contains(b, []byte("\x00"+dir+"\x00")) {
			continue
		}
		if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitNoSupervisor checks that every supervisor of dir exits within a
// few seconds (its idle exit); stragglers are killed and fail the test.
func waitNoSupervisor(t testing.TB, dir string) {
	t.Helper()
	deadline := time.Now().Add(3*time.Second + 2*wireIdle)
	for time.Now().Before(deadline) {
		if len(supervisorPids(dir)) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range supervisorPids(dir) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("supervisor %d of %s did not exit once idle", pid, dir)
	}
}

const wireIdle = 2 * time.Second

// killAtCleanup kills the task of h (its process group) at cleanup, in
// case the test did not end it.
func killAtCleanup(t testing.TB, h *contract.TaskHandle) {
	t.Helper()
	var ds driverState
	if err := json.Unmarshal(h.DriverState, &ds); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if proc.Alive(ds.Pid, ds.StartTime) {
			proc.SignalGroup(ds.Pid, syscall.SIGKILL)
		}
	})
}

func start(t testing.TB, d *Driver, cfg *contract.TaskConfig) *contract.TaskHandle {
	t.Helper()
	if cfg.Env == nil {
		cfg.Env = map[string]string{"PATH": testPath}
	}
	h, err := d.StartTask(context.Background(), cfg)
	if err != nil {
		t.Fatalf("StartTask(%s): %v", cfg.ID, err)
	}
	killAtCleanup(t, h)
	return h
}

func wait(t testing.TB, d *Driver, id string) *contract.ExitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := d.WaitTask(ctx, id)
	if err != nil {
		t.Fatalf("WaitTask(%s): %v", id, err)
	}
	return r
}

func pidOf(t testing.TB, h *contract.TaskHandle) int {
	t.Helper()
	var ds driverState
	if err := json.Unmarshal(h.DriverState, &ds); err != nil {
		t.Fatal(err)
	}
	return ds.Pid
}

// waitFile waits for path to exist.
func waitFile(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", path)
}

func TestDriver_StartWait(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	tests := []struct {
		name string
		cmd  string
		args []string
		want contract.ExitResult
	}{
		{name: "exit 0", cmd: "true", want: contract.ExitResult{}},
		{name: "exit 3", cmd: "sh", args: []string{"-c", "exit 3"}, want: contract.ExitResult{ExitCode: 3}},
		{name: "killed by SIGTERM", cmd: "sh", args: []string{"-c", "kill -TERM $$"}, want: contract.ExitResult{ExitCode: -1, Signal: int(syscall.SIGTERM)}},
		{name: "absolute path", cmd: "/bin/sh", args: []string{"-c", "exit 255"}, want: contract.ExitResult{ExitCode: 255}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "start-wait-" + strconv.Itoa(i)
			start(t, d, &contract.TaskConfig{ID: id, Command: tt.cmd, Args: tt.args})
			if got := wait(t, d, id); *got != tt.want {
				t.Errorf("exit = %+v, want %+v", *got, tt.want)
			}
			// Again, concurrently: WaitTask works any number of times.
			errs := make(chan error, 4)
			for range 4 {
				go func() {
					r, err := d.WaitTask(context.Background(), id)
					if err == nil && *r != tt.want {
						err = errors.New("different result")
					}
					errs <- err
				}()
			}
			for range 4 {
				if err := <-errs; err != nil {
					t.Errorf("WaitTask again: %v", err)
				}
			}
			st, err := d.InspectTask(context.Background(), id)
			if err != nil || st.State != contract.TaskStateExited || st.CompletedAt.IsZero() {
				t.Errorf("InspectTask = %+v, %v; want exited", st, err)
			}
			if err := d.DestroyTask(context.Background(), id, false); err != nil {
				t.Errorf("DestroyTask: %v", err)
			}
			if _, err := d.WaitTask(context.Background(), id); !errors.Is(err, contract.ErrTaskNotFound) {
				t.Errorf("WaitTask after destroy: %v, want ErrTaskNotFound", err)
			}
		})
	}
}

func TestDriver_StartErrors(t *testing.T) {
	t.Parallel()
	d, dir := newDriver(t)
	file := filepath.Join(t.TempDir(), "file")
	newOut := filepath.Join(t.TempDir(), "out")
	os.WriteFile(file, nil, 0o644)
	tests := []struct {
		name    string
		cfg     contract.TaskConfig
		wantErr string
	}{
		{name: "empty command", cfg: contract.TaskConfig{ID: "e1"}, wantErr: "command is empty"},
		{name: "bad id", cfg: contract.TaskConfig{ID: "a/b", Command: "true"}, wantErr: `task id "a/b"`},
		{name: "missing command", cfg: contract.TaskConfig{ID: "e2", Command: "no-such-command-xyz"}, wantErr: `command "no-such-command-xyz": not found in PATH`},
		{name: "no PATH in env", cfg: contract.TaskConfig{ID: "e3", Command: "true", Env: map[string]string{"A": "b"}}, wantErr: `command "true": not found in PATH ""`},
		{name: "missing path command", cfg: contract.TaskConfig{ID: "e4", Command: "./nope", WorkDir: "/"}, wantErr: `command "./nope": stat /nope: no such file`},
		{name: "missing work dir", cfg: contract.TaskConfig{ID: "e5", Command: "true", WorkDir: "/no/such/dir"}, wantErr: "work dir: stat /no/such/dir: no such file"},
		{name: "work dir is a file", cfg: contract.TaskConfig{ID: "e6", Command: "true", WorkDir: file}, wantErr: "not a directory"},
		{name: "relative work dir", cfg: contract.TaskConfig{ID: "e7", Command: "true", WorkDir: "rel"}, wantErr: `work dir "rel": want an absolute path`},
		{name: "stdout in missing dir", cfg: contract.TaskConfig{ID: "e8", Command: "true", StdoutPath: "/no/such/dir/out"}, wantErr: "stdout: logfile create: open /no/such/dir: no such file"},
		{name: "missing cgroup", cfg: contract.TaskConfig{ID: "e9", Command: "true", Cgroups: []string{"/sys/fs/cgroup/memory/no-such-execdriver-cgroup"}}, wantErr: "cgroup /sys/fs/cgroup/memory/no-such-execdriver-cgroup: no such file"},
		{name: "env name with =", cfg: contract.TaskConfig{ID: "e12", Command: "true", Env: map[string]string{"A=B": "c"}}, wantErr: `env name "A=B"`},
		{name: "user", cfg: contract.TaskConfig{ID: "e11", Command: "true", User: "nobody"}, wantErr: `user "nobody": not supported`},
		{name: "missing cgroup, new output files", cfg: contract.TaskConfig{ID: "e13", Command: "true", StdoutPath: newOut, StderrPath: newOut + "2",
			Cgroups: []string{"/sys/fs/cgroup/memory/no-such-execdriver-cgroup"}}, wantErr: "no-such-execdriver-cgroup"},
		{name: "not a cgroup", cfg: contract.TaskConfig{ID: "e10", Command: "true", Cgroups: []string{"/tmp"}}, wantErr: "cgroup /tmp: not a cgroup directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg.Env == nil {
				cfg.Env = map[string]string{"PATH": testPath}
			}
			_, err := d.StartTask(context.Background(), &cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("StartTask = %v, want an error containing %q", err, tt.wantErr)
			}
			if _, err := d.InspectTask(context.Background(), cfg.ID); !errors.Is(err, contract.ErrTaskNotFound) {
				t.Errorf("InspectTask after failed start: %v, want ErrTaskNotFound", err)
			}
			if _, err := os.Stat(wire.ExitRecordPath(dir, cfg.ID)); !errors.Is(err, os.ErrNotExist) && wire.ValidTaskID(cfg.ID) == nil {
				t.Errorf("exit record after failed start: %v", err)
			}
		})
	}
	for _, p := range []string{newOut, newOut + "2"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("output file %s left by a failed start: %v", p, err)
		}
	}
	// The supervisor holds nothing either.
	if r, err := supervisorCall(dir, &wire.Request{ID: 1, Op: wire.OpList}); err != nil || len(r.Tasks) != 0 {
		t.Errorf("supervisor tasks after failed starts: %+v, %v", r, err)
	}
}

// supervisorCall sends req to the supervisor of dir on a connection of its
// own and returns the reply.
func supervisorCall(dir string, req *wire.Request) (*wire.Reply, error) {
	c, err := net.Dial("unix", filepath.Join(dir, wire.SocketName))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, err
	}
	line, err := bufio.NewReaderSize(c, wire.MaxMessage+1).ReadBytes('\n')
	if err != nil {
		return nil, err
	}
	return wire.DecodeReply(bytes.TrimSuffix(line, []byte("\n")))
}

// driverState is the executor's TaskHandle.DriverState.
type driverState struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

func TestDriver_StopTask(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	tmp := t.TempDir()
	tests := []struct {
		name     string
		script   string
		signal   string
		timeout  time.Duration
		want     contract.ExitResult
		minDelay time.Duration
	}{
		{name: "SIGTERM obeyed", script: "exec sleep 30", timeout: 10 * time.Second,
			want: contract.ExitResult{ExitCode: -1, Signal: int(syscall.SIGTERM)}},
		{name: "SIGINT ignored escalates to SIGKILL", script: "trap '' INT; exec sleep 30", signal: "SIGINT", timeout: 300 * time.Millisecond,
			want: contract.ExitResult{ExitCode: -1, Signal: int(syscall.SIGKILL)}, minDelay: 300 * time.Millisecond},
		{name: "SIGTERM ignored escalates to SIGKILL", script: "trap '' TERM; exec sleep 30", timeout: 300 * time.Millisecond,
			want: contract.ExitResult{ExitCode: -1, Signal: int(syscall.SIGKILL)}, minDelay: 300 * time.Millisecond},
		{name: "SIGHUP trapped exits 5", script: "trap 'exit 5' HUP; while :; do sleep 0.05; done", signal: "SIGHUP", timeout: 10 * time.Second,
			want: contract.ExitResult{ExitCode: 5}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "stop-" + strconv.Itoa(i)
			ready := filepath.Join(tmp, id)
			start(t, d, &contract.TaskConfig{ID: id, Command: "sh", Args: []string{"-c", "touch " + ready + "; " + tt.script}})
			waitFile(t, ready)
			time.Sleep(20 * time.Millisecond) // let the shell reach exec
			begin := time.Now()
			if err := d.StopTask(context.Background(), id, tt.timeout, tt.signal); err != nil {
				t.Fatalf("StopTask: %v", err)
			}
			if el := time.Since(begin); el < tt.minDelay {
				t.Errorf("StopTask returned after %v, before the timeout %v", el, tt.minDelay)
			}
			if got := wait(t, d, id); *got != tt.want {
				t.Errorf("exit = %+v, want %+v", *got, tt.want)
			}
			if err := d.StopTask(context.Background(), id, time.Second, ""); err != nil {
				t.Errorf("StopTask of an exited task: %v", err)
			}
		})
	}
}

func TestDriver_EnvWorkDirOutput(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "run.sh"), []byte("#!/bin/sh\npwd\necho to-stderr >&2\n"), 0o755)
	out, errf := filepath.Join(work, "stdout"), filepath.Join(work, "stderr")
	os.WriteFile(out, []byte("before\n"), 0o644)

	env := map[string]string{"PATH": testPath, "FOO": "bar baz", "EMPTY": ""}
	start(t, d, &contract.TaskConfig{ID: "env", Command: "env", Env: env, StdoutPath: out, StderrPath: errf})
	if r := wait(t, d, "env"); !r.Successful() {
		t.Fatalf("env: %+v", r)
	}
	start(t, d, &contract.TaskConfig{ID: "script", Command: "./run.sh", WorkDir: work, StdoutPath: out, StderrPath: errf})
	if r := wait(t, d, "script"); !r.Successful() {
		t.Fatalf("run.sh: %+v", r)
	}
	b, _ := os.ReadFile(out)
	want := "before\nEMPTY=\nFOO=bar baz\nPATH=" + testPath + "\n" + work + "\n"
	if string(b) != want {
		t.Errorf("stdout = %q, want %q (appended, env exactly TaskConfig.Env, pwd = WorkDir)", b, want)
	}
	if b, _ := os.ReadFile(errf); string(b) != "to-stderr\n" {
		t.Errorf("stderr = %q", b)
	}
	// Empty output paths discard.
	start(t, d, &contract.TaskConfig{ID: "discard", Command: "echo", Args: []string{"x"}})
	if r := wait(t, d, "discard"); !r.Successful() {
		t.Errorf("echo to /dev/null: %+v", r)
	}
}

func TestDriver_TaskStats(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	// Two processes in the group: sh and sleep.
	start(t, d, &contract.TaskConfig{ID: "stats", Command: "sh", Args: []string{"-c", "sleep 30 & wait"}})
	var u *contract.TaskUsage
	for range 100 {
		var err error
		if u, err = d.TaskStats(context.Background(), "stats"); err != nil {
			t.Fatal(err)
		}
		if u.PIDs == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if u.PIDs != 2 || u.MemoryRSSBytes == 0 {
		t.Errorf("TaskStats = %+v, want 2 processes and some RSS", u)
	}
	if err := d.StopTask(context.Background(), "stats", 5*time.Second, ""); err != nil {
		t.Fatal(err)
	}
	if u, err := d.TaskStats(context.Background(), "stats"); err != nil || u.PIDs != 0 {
		t.Errorf("TaskStats after exit = %+v, %v", u, err)
	}
}

func TestDriver_Contract(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"WaitTask":    func() error { _, err := d.WaitTask(ctx, "nope"); return err },
		"StopTask":    func() error { return d.StopTask(ctx, "nope", time.Second, "") },
		"InspectTask": func() error { _, err := d.InspectTask(ctx, "nope"); return err },
		"TaskStats":   func() error { _, err := d.TaskStats(ctx, "nope"); return err },
		"SignalTask":  func() error { return d.SignalTask(ctx, "nope", "SIGHUP") },
	} {
		if err := call(); !errors.Is(err, contract.ErrTaskNotFound) {
			t.Errorf("%s(unknown) = %v, want ErrTaskNotFound", name, err)
		}
	}
	if err := d.DestroyTask(ctx, "nope", false); err != nil {
		t.Errorf("DestroyTask(unknown) = %v, want nil", err)
	}
	h := start(t, d, &contract.TaskConfig{ID: "c1", Command: "sleep", Args: []string{"30"}})
	if _, err := d.StartTask(ctx, h.Config); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second StartTask = %v, want already exists", err)
	}
	if err := d.RecoverTask(ctx, h); err != nil {
		t.Errorf("RecoverTask of a tracked task = %v, want nil", err)
	}
	bad := *h
	bad.Version = contract.HandleVersion + 1
	if err := d.RecoverTask(ctx, &bad); !errors.Is(err, contract.ErrHandleVersion) {
		t.Errorf("RecoverTask(version+1) = %v, want ErrHandleVersion", err)
	}
	if err := d.SignalTask(ctx, "c1", "SIGNOPE"); err == nil {
		t.Error("SignalTask(SIGNOPE) = nil, want an error")
	}
	if err := d.DestroyTask(ctx, "c1", false); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("DestroyTask(running, !force) = %v, want still running", err)
	}
	if err := d.SignalTask(ctx, "c1", "SIGUSR1"); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, d, "c1"); r.Signal != int(syscall.SIGUSR1) {
		t.Errorf("exit after SIGUSR1 = %+v", r)
	}
	h2 := start(t, d, &contract.TaskConfig{ID: "c2", Command: "sleep", Args: []string{"30"}})
	if err := d.DestroyTask(ctx, "c2", true); err != nil {
		t.Fatalf("DestroyTask(force) = %v", err)
	}
	if proc.Alive(pidOf(t, h2), 0) || syscall.Kill(pidOf(t, h2), 0) == nil {
		t.Errorf("task process %d alive after DestroyTask(force)", pidOf(t, h2))
	}
	for range 2 {
		if err := d.DestroyTask(ctx, "c2", false); err != nil {
			t.Errorf("DestroyTask again = %v", err)
		}
	}
	caps, _ := d.Capabilities(ctx)
	if *caps != (contract.Capabilities{SendSignals: true, FSIsolation: contract.FSIsolationNone, RecoverTasks: true, JoinCgroups: true, JoinNetns: true,
		Isolation: os.Geteuid() == 0}) {
		t.Errorf("Capabilities = %+v", caps)
	}
}

// TestDriver_GroupKilledWithMain: when the task's main process exits, what
// is left of its process group is killed.
func TestDriver_GroupKilledWithMain(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	start(t, d, &contract.TaskConfig{ID: "group", Command: "sh", Args: []string{"-c", "sleep 60 & echo $! > " + pidfile + "; exit 4"}})
	if r := wait(t, d, "group"); r.ExitCode != 4 {
		t.Fatalf("exit = %+v, want code 4", r)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("background sleep %d of the task survived its main process", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := inspect(t, d, "group")
	if st.StartedAt.IsZero() || st.CompletedAt.Before(st.StartedAt) {
		t.Errorf("InspectTask times: started %v completed %v", st.StartedAt, st.CompletedAt)
	}
}
