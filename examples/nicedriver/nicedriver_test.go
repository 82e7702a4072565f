package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/sdk/plugin"
	"github.com/dcos-kernel/dcos/sdk/plugin/plugintest"
)

// pluginDir is an agent's plugin directory as an operator installs the
// driver into it: dcos-driver-nice and SHA256SUMS. TestMain builds it.
var pluginDir string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "nicedriver-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := install(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pluginDir = dir
	return m.Run()
}

// install builds the driver into dir as dcos-driver-nice and registers its
// checksum in dir/SHA256SUMS, as README.md tells an operator to.
func install(dir string) error {
	bin, err := plugintest.Build(dir, "github.com/dcos-kernel/dcos/examples/nicedriver")
	if err != nil {
		return err
	}
	installed := filepath.Join(dir, "dcos-driver-nice")
	if err := os.Rename(bin, installed); err != nil {
		return err
	}
	sum, err := plugintest.SHA256File(installed)
	if err != nil {
		return err
	}
	// sha256sum's format: the hex digest, two spaces, the file name.
	line := hex.EncodeToString(sum) + "  dcos-driver-nice\n"
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(line), 0o644)
}

// startNice starts the installed driver with the checksum registered in
// SHA256SUMS, as the agent's plugin host does, on a fresh state dir. At
// cleanup, after its tasks were killed, it checks that the executor's
// supervisor exits on its own.
func startNice(t *testing.T) *plugintest.Driver {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { waitNoSupervisor(t, dir) })
	return startNiceOn(t, dir)
}

// startNiceOn starts the driver on state dir dir.
func startNiceOn(t *testing.T, dir string) *plugintest.Driver {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pluginDir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	sumHex, name, ok := strings.Cut(strings.TrimSpace(string(b)), "  ")
	if !ok || name != "dcos-driver-nice" {
		t.Fatalf("SHA256SUMS = %q, want \"<sha256>  dcos-driver-nice\"", b)
	}
	sum, err := hex.DecodeString(sumHex)
	if err != nil {
		t.Fatal(err)
	}
	return plugintest.StartDriver(t, filepath.Join(pluginDir, name), plugintest.Options{SHA256: sum, StateDir: dir})
}

// testEnv is the environment of the tests' tasks; the agent sets PATH
// (and more) for every task.
var testEnv = map[string]string{"PATH": "/usr/bin:/bin"}

// waitNoSupervisor checks that every supervisor of state dir dir exits
// within a few seconds (it does 2 s after its last task and driver);
// stragglers are killed and fail the test.
func waitNoSupervisor(t *testing.T, dir string) {
	t.Helper()
	pids := func() []int {
		var pids []int
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil || !bytes.Contains(b, []byte(plugin.SupervisorArg+"\x00"+dir+"\x00")) {
				continue
			}
			if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
				continue
			}
			pids = append(pids, pid)
		}
		return pids
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if len(pids()) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range pids() {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("supervisor %d of %s did not exit once idle", pid, dir)
	}
}

// killGroup kills the process group of a started task at the end of the
// test, whatever became of the driver: killing a plugin does not kill its
// tasks.
func killGroup(t *testing.T, d plugin.Driver, id string) int {
	t.Helper()
	st, err := d.InspectTask(context.Background(), id)
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	pid, err := strconv.Atoi(st.Attributes["pid"])
	if err != nil {
		t.Fatalf("inspect %s: pid attribute %q: %v", id, st.Attributes["pid"], err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-pid, syscall.SIGKILL) })
	return pid
}

// niceOf returns the nice level of pid: field 19 of /proc/<pid>/stat.
func niceOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(niceField(b))
	if err != nil {
		t.Fatalf("/proc/%d/stat: field 19: %v", pid, err)
	}
	return n
}

// niceField returns field 19, the nice level, of a /proc/<pid>/stat file.
// Field 2, the command, is in parentheses and may hold spaces: count from
// the last ')', after which field 3 begins.
func niceField(stat []byte) string {
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 19-2 {
		return ""
	}
	return fields[19-3]
}

// waitExecd waits until pid runs comm: nice(1) has set the nice level
// and exec'd the task's command.
func waitExecd(t *testing.T, pid int, comm string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(b)) == comm {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %d runs %q, want %q", pid, b, comm)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// envOf returns the environment pid started with. Right after an exec
// (comm already the new program's) the kernel may not have published the
// whole new environment yet (it raises the environment's end string by
// string): it reads until two reads 5 ms apart agree and are not empty.
func envOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	var b, last []byte
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var err error
		if b, err = os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err != nil {
			t.Fatal(err)
		}
		if (len(b) > 0 && bytes.Equal(b, last)) || time.Now().After(deadline) {
			break
		}
		last = b
	}
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// waitForFile waits until the file at path holds want.
func waitForFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, want it to hold %q", path, b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDriver_Capabilities(t *testing.T) {
	d := startNice(t)
	caps, err := d.Capabilities(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := plugin.Capabilities{SendSignals: true, FSIsolation: plugin.FSIsolationNone, RecoverTasks: true, JoinCgroups: true,
		JoinNetns: true, Isolation: os.Geteuid() == 0}
	if *caps != want {
		t.Errorf("Capabilities = %+v, want %+v", *caps, want)
	}
}

func TestDriver_NiceAndEnv(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startNice(t)
	tests := []struct {
		name     string
		config   string
		wantNice int
		wantEnv  map[string]string
	}{
		{"default", ``, 10, map[string]string{"TASK": "t"}},
		{"nice 5 and env", `{"nice": 5, "env": {"K": "V", "TASK": "from config"}}`, 5, map[string]string{"K": "V", "TASK": "from config"}},
		{"nice 0", `{"nice": 0}`, 0, map[string]string{"TASK": "t"}},
		{"nice 19", `{"nice": 19}`, 19, map[string]string{"TASK": "t"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("t%d", i)
			_, err := d.StartTask(ctx, &plugin.TaskConfig{ID: id, Command: "sleep", Args: []string{"30"},
				Env: map[string]string{"TASK": "t", "PATH": "/usr/bin:/bin"}, DriverConfig: []byte(tt.config)})
			if err != nil {
				t.Fatal(err)
			}
			pid := killGroup(t, d, id)
			waitExecd(t, pid, "sleep")
			if got := niceOf(t, pid); got != tt.wantNice {
				t.Errorf("nice of the task = %d, want %d", got, tt.wantNice)
			}
			env := envOf(t, pid)
			for k, v := range tt.wantEnv {
				if env[k] != v {
					t.Errorf("task env %s = %q, want %q", k, env[k], v)
				}
			}
			if len(env) != len(tt.wantEnv)+1 { // + PATH
				t.Errorf("task env = %v: want only the task's and the config's variables", env)
			}
			if err := d.DestroyTask(ctx, id, true); err != nil {
				t.Errorf("DestroyTask(force): %v", err)
			}
		})
	}
}

func TestDriver_OutputAndExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startNice(t)
	dir := t.TempDir()
	stdout, stderr := filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr")
	if err := os.WriteFile(stdout, []byte("earlier\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := d.StartTask(ctx, &plugin.TaskConfig{ID: "t1", Command: "/bin/sh", WorkDir: dir,
		Args:         []string{"-c", `echo "out $K $(pwd)"; echo err >&2; exit 3`},
		DriverConfig: []byte(`{"env": {"K": "V"}}`), StdoutPath: stdout, StderrPath: stderr})
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.WaitTask(ctx, "t1")
	if err != nil || r.ExitCode != 3 || r.Signal != 0 {
		t.Fatalf("WaitTask = %+v, %v; want exit code 3", r, err)
	}
	if b, _ := os.ReadFile(stdout); string(b) != "earlier\nout V "+dir+"\n" {
		t.Errorf("stdout = %q: want the task's line appended", b)
	}
	if b, _ := os.ReadFile(stderr); string(b) != "err\n" {
		t.Errorf("stderr = %q", b)
	}
	st, err := d.InspectTask(ctx, "t1")
	if err != nil || st.State != plugin.TaskStateExited || st.ExitResult.ExitCode != 3 || st.CompletedAt.IsZero() {
		t.Errorf("InspectTask = %+v, %v", st, err)
	}
	// A second wait, after the exit, returns the same result.
	if r, err := d.WaitTask(ctx, "t1"); err != nil || r.ExitCode != 3 {
		t.Errorf("WaitTask again = %+v, %v", r, err)
	}
}

func TestDriver_StopWaitDestroy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startNice(t)
	stdout := filepath.Join(t.TempDir(), "stdout")

	// The task and its child ignore SIGTERM: the stop must escalate.
	_, err := d.StartTask(ctx, &plugin.TaskConfig{ID: "stubborn", Command: "/bin/sh", StdoutPath: stdout, Env: testEnv,
		Args: []string{"-c", `trap "" TERM; echo ready; sleep 30; echo survived`}})
	if err != nil {
		t.Fatal(err)
	}
	killGroup(t, d, "stubborn")
	waitForFile(t, stdout, "ready")
	if err := d.DestroyTask(ctx, "stubborn", false); err == nil {
		t.Error("DestroyTask(running, force=false): want error")
	}
	waited := make(chan *plugin.ExitResult, 1)
	go func() {
		r, err := d.WaitTask(ctx, "stubborn")
		if err != nil {
			t.Errorf("WaitTask: %v", err)
		}
		waited <- r
	}()
	start := time.Now()
	if err := d.StopTask(ctx, "stubborn", 300*time.Millisecond, "SIGTERM"); err != nil {
		t.Fatalf("StopTask: %v", err)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 5*time.Second {
		t.Errorf("StopTask took %v, want the 300ms timeout then SIGKILL", el)
	}
	if r := <-waited; r == nil || r.Signal != int(syscall.SIGKILL) {
		t.Errorf("WaitTask = %+v, want killed by SIGKILL", r)
	}
	// Stopping an exited task is not an error.
	if err := d.StopTask(ctx, "stubborn", time.Second, ""); err != nil {
		t.Errorf("StopTask(exited): %v", err)
	}

	// A task that honours SIGTERM stops at once; SignalTask reaches it.
	if _, err := d.StartTask(ctx, &plugin.TaskConfig{ID: "polite", Command: "sleep", Args: []string{"30"}, Env: testEnv}); err != nil {
		t.Fatal(err)
	}
	killGroup(t, d, "polite")
	if err := d.SignalTask(ctx, "polite", "SIGNOPE"); err == nil {
		t.Error("SignalTask(SIGNOPE): want error")
	}
	if err := d.SignalTask(ctx, "polite", "SIGTERM"); err != nil {
		t.Errorf("SignalTask: %v", err)
	}
	if r, err := d.WaitTask(ctx, "polite"); err != nil || r.Signal != int(syscall.SIGTERM) {
		t.Errorf("WaitTask = %+v, %v; want killed by SIGTERM", r, err)
	}

	// DestroyTask forgets an exited task, and is idempotent.
	for _, id := range []string{"stubborn", "stubborn", "polite", "never-started"} {
		if err := d.DestroyTask(ctx, id, false); err != nil {
			t.Errorf("DestroyTask(%s): %v", id, err)
		}
	}
	if _, err := d.InspectTask(ctx, "stubborn"); !errors.Is(err, plugin.ErrTaskNotFound) {
		t.Errorf("InspectTask(destroyed): err = %v, want ErrTaskNotFound", err)
	}
}

func TestDriver_Refusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startNice(t)
	tests := []struct {
		name, config, want string
	}{
		{"nice too high", `{"nice": 20}`, "nice 20 out of range 0..19"},
		{"nice negative", `{"nice": -1}`, "nice -1 out of range 0..19"},
		{"not JSON", `{nice: 5}`, "driver config: want {"},
		{"nice not a number", `{"nice": "5"}`, "cannot unmarshal string"},
		{"misspelt field", `{"niceness": 5}`, `unknown field "niceness"`},
		{"two objects", `{} {}`, "found more after it"},
		{"bad env name", `{"env": {"A=B": "c"}}`, `env "A=B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.StartTask(ctx, &plugin.TaskConfig{ID: "bad", Command: "sleep", Args: []string{"30"}, Env: testEnv, DriverConfig: []byte(tt.config)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("StartTask(%s): err = %v, want it to say %q", tt.config, err, tt.want)
			}
			if _, err := d.InspectTask(ctx, "bad"); !errors.Is(err, plugin.ErrTaskNotFound) {
				t.Errorf("a refused task is known to the driver: %v", err)
			}
		})
	}
	if err := d.RecoverTask(ctx, &plugin.TaskHandle{Version: 99}); !errors.Is(err, plugin.ErrHandleVersion) {
		t.Errorf("RecoverTask(v99): err = %v, want ErrHandleVersion", err)
	}
	if _, err := d.StartTask(ctx, &plugin.TaskConfig{ID: "u", Command: "true", User: "nobody", Env: testEnv}); !errors.Is(err, plugin.ErrNotSupported) {
		t.Errorf("StartTask(user): err = %v, want ErrNotSupported", err)
	}
	// A command that cannot run fails the start, with the reason.
	notExecutable := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for cmd, want := range map[string]string{
		"no-such-command": `command "no-such-command": not found in PATH "/usr/bin:/bin"`,
		"/no/such/cmd":    `command "/no/such/cmd": stat /no/such/cmd: no such file or directory`,
		notExecutable:     `command "` + notExecutable + `": permission denied`,
	} {
		_, err := d.StartTask(ctx, &plugin.TaskConfig{ID: "x", Command: cmd, Env: testEnv})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("StartTask(%s): err = %v, want it to say %q", cmd, err, want)
		}
		if _, err := d.InspectTask(ctx, "x"); !errors.Is(err, plugin.ErrTaskNotFound) {
			t.Errorf("StartTask(%s) failed, yet the driver knows the task: %v", cmd, err)
		}
	}
}

// TestDriver_PluginKeepsItsNice: the nice level is set by nice(1) in the
// task, never on a thread of the plugin serving the host.
func TestDriver_PluginKeepsItsNice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startNice(t)
	base := niceOf(t, d.Pid())
	for i := range 5 {
		id := fmt.Sprintf("t%d", i)
		if _, err := d.StartTask(ctx, &plugin.TaskConfig{ID: id, Command: "true", Env: testEnv, DriverConfig: []byte(`{"nice": 19}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.WaitTask(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var niced []string
		tids, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", d.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		for _, tid := range tids {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", d.Pid(), tid.Name()))
			if err != nil {
				continue // the thread exited
			}
			if n := niceField(b); n != strconv.Itoa(base) {
				niced = append(niced, tid.Name()+":"+n)
			}
		}
		if len(niced) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d: threads at another nice level than the plugin's %d: %v", d.Pid(), base, niced)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDriver_FastExit: a task that exits at once reports its real exit
// code, not an error of its start.
func TestDriver_FastExit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startNice(t)
	tests := []struct {
		name, cmd string
		args      []string
		want      plugin.ExitResult
	}{
		{"true", "true", nil, plugin.ExitResult{}},
		{"exit 3", "sh", []string{"-c", "exit 3"}, plugin.ExitResult{ExitCode: 3}},
		{"killed", "sh", []string{"-c", "kill -KILL $$"}, plugin.ExitResult{ExitCode: -1, Signal: int(syscall.SIGKILL)}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("fast%d", i)
			if _, err := d.StartTask(ctx, &plugin.TaskConfig{ID: id, Command: tt.cmd, Args: tt.args, Env: testEnv}); err != nil {
				t.Fatalf("StartTask: %v", err)
			}
			r, err := d.WaitTask(ctx, id)
			if err != nil || *r != tt.want {
				t.Fatalf("WaitTask = %+v, %v; want %+v", r, err, tt.want)
			}
			if err := d.DestroyTask(ctx, id, false); err != nil {
				t.Errorf("DestroyTask: %v", err)
			}
		})
	}
}

// TestDriver_PluginEnvNeverReachesTasks: the plugin's own environment
// (go-plugin's PLUGIN_CLIENT_CERT and the rest, the host's DCOS_PLUGIN_*)
// is not the task's, even when the task's Env carries copies of it.
func TestDriver_PluginEnvNeverReachesTasks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := startNice(t)
	pluginEnv := envOf(t, d.Pid())
	if pluginEnv["PLUGIN_CLIENT_CERT"] == "" || pluginEnv[plugin.StateDirEnv] == "" {
		t.Fatalf("plugin env %v: want PLUGIN_CLIENT_CERT and %s set by the host", pluginEnv, plugin.StateDirEnv)
	}
	env := map[string]string{"PATH": "/usr/bin:/bin", "MINE": "1"}
	for k, v := range pluginEnv {
		if strings.HasPrefix(k, "PLUGIN_") || strings.HasPrefix(k, "DCOS_PLUGIN_") {
			env[k] = v // as a driver that copied os.Environ() would
		}
	}
	if _, err := d.StartTask(ctx, &plugin.TaskConfig{ID: "env", Command: "sleep", Args: []string{"30"}, Env: env}); err != nil {
		t.Fatal(err)
	}
	pid := killGroup(t, d, "env")
	got := envOf(t, pid)
	want := map[string]string{"PATH": "/usr/bin:/bin", "MINE": "1"}
	if len(got) != len(want) || got["PATH"] != want["PATH"] || got["MINE"] != want["MINE"] {
		t.Errorf("task env = %v, want exactly %v", got, want)
	}
	for k := range got {
		if plugin.IsPluginEnv(k) {
			t.Errorf("task env has the plugin's %s", k)
		}
	}
	if err := d.DestroyTask(ctx, "env", true); err != nil {
		t.Errorf("DestroyTask(force): %v", err)
	}
}

// TestDriver_RecoverAfterRestart: tasks outlive the plugin; a new plugin
// process on the same state dir recovers them from their handles, running
// (still niced, still stoppable) or exited meanwhile with their real exit
// code.
func TestDriver_RecoverAfterRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	t.Cleanup(func() { waitNoSupervisor(t, dir) })
	gate := filepath.Join(t.TempDir(), "gate")
	d := startNiceOn(t, dir)
	runner, err := d.StartTask(ctx, &plugin.TaskConfig{ID: "runner", Command: "sleep", Args: []string{"30"}, Env: testEnv,
		DriverConfig: []byte(`{"nice": 7}`)})
	if err != nil {
		t.Fatal(err)
	}
	pid := killGroup(t, d, "runner")
	exiter, err := d.StartTask(ctx, &plugin.TaskConfig{ID: "exiter", Command: "sh", Env: testEnv,
		Args: []string{"-c", `while [ ! -e "$0" ]; do sleep 0.01; done; exit 3`, gate}})
	if err != nil {
		t.Fatal(err)
	}
	exiterPid := killGroup(t, d, "exiter")

	d.Kill()
	// The exiter ends while no plugin runs; its supervisor records it.
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(exiterPid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("task %d did not exit", exiterPid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("task %d did not survive its plugin: %v", pid, err)
	}

	d = startNiceOn(t, dir)
	if _, err := d.InspectTask(ctx, "runner"); !errors.Is(err, plugin.ErrTaskNotFound) {
		t.Fatalf("InspectTask before RecoverTask: %v, want ErrTaskNotFound", err)
	}
	for _, h := range []*plugin.TaskHandle{runner, exiter} {
		if err := d.RecoverTask(ctx, h); err != nil {
			t.Fatalf("RecoverTask(%s): %v", h.Config.ID, err)
		}
		if err := d.RecoverTask(ctx, h); err != nil { // a no-op
			t.Fatalf("RecoverTask(%s) again: %v", h.Config.ID, err)
		}
	}
	if r, err := d.WaitTask(ctx, "exiter"); err != nil || r.ExitCode != 3 || r.Err != "" {
		t.Errorf("WaitTask(exiter) = %+v, %v; want its real exit code 3", r, err)
	}
	st, err := d.InspectTask(ctx, "runner")
	if err != nil || st.State != plugin.TaskStateRunning || st.Attributes["supervised"] != "true" {
		t.Fatalf("InspectTask(runner) = %+v, %v; want running under its supervisor", st, err)
	}
	if n := niceOf(t, pid); n != 7 {
		t.Errorf("nice of the recovered task = %d, want 7", n)
	}
	if err := d.StopTask(ctx, "runner", 5*time.Second, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	if r, err := d.WaitTask(ctx, "runner"); err != nil || r.Signal != int(syscall.SIGTERM) {
		t.Errorf("WaitTask(runner) = %+v, %v; want killed by SIGTERM", r, err)
	}
	var ds struct {
		Pid int `json:"pid"`
	}
	if err := plugin.DecodeHandle(runner, &ds); err != nil || ds.Pid != pid {
		t.Errorf("DecodeHandle = %+v, %v; want pid %d", ds, err, pid)
	}
	for _, id := range []string{"runner", "exiter"} {
		if err := d.DestroyTask(ctx, id, false); err != nil {
			t.Errorf("DestroyTask(%s): %v", id, err)
		}
	}
}
