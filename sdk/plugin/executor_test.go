package plugin_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/sdk/plugin"
)

func TestMain(m *testing.M) {
	// The executors of these tests re-execute the test binary as their
	// supervisor.
	plugin.RunSupervisorIfAsked()
	os.Exit(m.Run())
}

// newExecutor returns an executor with the default supervisor command on a
// fresh state dir, closed at cleanup; the supervisor then exits on its own.
func newExecutor(t *testing.T) (*plugin.Executor, string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the executor needs Linux")
	}
	dir := t.TempDir()
	e, err := plugin.NewExecutor(plugin.ExecutorConfig{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		waitNoSocket(t, dir)
	})
	return e, dir
}

// waitNoSocket waits for the supervisor of dir to exit.
func waitNoSocket(t *testing.T, dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if supervisorGone(dir) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("the supervisor of %s did not exit once idle", dir)
}

func TestNewExecutor_BadConfig(t *testing.T) {
	for _, tt := range []struct{ name, dir, want string }{
		{"empty", "", `state dir ""`},
		{"relative", "rel/dir", `state dir "rel/dir": want an absolute path`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := plugin.NewExecutor(plugin.ExecutorConfig{StateDir: tt.dir}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewExecutor(%q) = %v, want an error saying %q", tt.dir, err, tt.want)
			}
		})
	}
}

// TestNewExecutor_LongStateDir: a state dir longer than a unix socket
// address allows is accepted (the supervisor's socket is reached through
// the directory's descriptor; internal/executor TestExecutor_LongStateDir
// runs a task there).
func TestNewExecutor_LongStateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 200))
	e, err := plugin.NewExecutor(plugin.ExecutorConfig{StateDir: dir})
	if err != nil {
		t.Fatalf("NewExecutor(a %d-byte state dir) = %v, want it accepted", len(dir), err)
	}
	e.Close()
}

// TestExecutor_DefaultSupervisor: with no SupervisorCmd the executor
// re-executes its own binary as the supervisor, which runs a task, reports
// its real exit and strips the plugin machinery's variables from its env.
func TestExecutor_DefaultSupervisor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, dir := newExecutor(t)
	out := filepath.Join(t.TempDir(), "out")
	cfg := &plugin.TaskConfig{ID: "t1", Command: "sh", Args: []string{"-c", "env; exit 3"}, StdoutPath: out,
		Env: map[string]string{"PATH": "/usr/bin:/bin", "KEEP": "1", "PLUGIN_CLIENT_CERT": "x", "PLUGIN_MIN_PORT": "1",
			"DCOS_PLUGIN_MAGIC_COOKIE": "c", plugin.StateDirEnv: dir}}
	h, err := e.StartTask(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != plugin.HandleVersion || h.Config != cfg || h.PID <= 1 {
		t.Errorf("handle = %+v", h)
	}
	r, err := e.WaitTask(ctx, "t1")
	if err != nil || r.ExitCode != 3 {
		t.Fatalf("WaitTask = %+v, %v; want exit code 3", r, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, _, _ := strings.Cut(kv, "="); k != "PWD" && k != "SHLVL" && k != "_" { // the shell's own
			env = append(env, kv)
		}
	}
	if strings.Join(env, " ") != "KEEP=1 PATH=/usr/bin:/bin" {
		t.Errorf("task env = %q, want exactly KEEP and PATH", env)
	}
	if err := e.DestroyTask(ctx, "t1", false); err != nil {
		t.Error(err)
	}
}

// TestExecutor_StartContainerRefusals: bad containers are refused with
// the field named, and nothing of them is left. (Checked before anything
// that needs root.)
func TestExecutor_StartContainerRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, _ := newExecutor(t)
	root := t.TempDir()
	iso := &plugin.TaskIsolation{Sandbox: t.TempDir()}
	tests := []struct {
		name string
		cfg  plugin.TaskConfig
		c    *plugin.Container
		want string
	}{
		{"no container", plugin.TaskConfig{ID: "c", Command: "/bin/sh", Isolation: iso}, nil, "no container"},
		{"no isolation", plugin.TaskConfig{ID: "c", Command: "/bin/sh"}, &plugin.Container{RootFS: root}, "no isolation"},
		{"relative rootfs", plugin.TaskConfig{ID: "c", Command: "/bin/sh", Isolation: iso}, &plugin.Container{RootFS: "rootfs"}, `container rootfs "rootfs"`},
		{"bad hostname", plugin.TaskConfig{ID: "c", Command: "/bin/sh", Isolation: iso}, &plugin.Container{RootFS: root, Hostname: "a b"}, `container hostname "a b"`},
		{"relative bind", plugin.TaskConfig{ID: "c", Command: "/bin/sh", Isolation: iso},
			&plugin.Container{RootFS: root, Binds: []plugin.Bind{{Source: "src", Target: "/x"}}}, "container binds[0]"},
		{"bad cap", plugin.TaskConfig{ID: "c", Command: "/bin/sh", Isolation: iso}, &plugin.Container{RootFS: root, Caps: []string{"CAP_NOPE"}}, `unknown capability "CAP_NOPE"`},
		{"relative dir", plugin.TaskConfig{ID: "c", Command: "/bin/sh", Isolation: iso}, &plugin.Container{RootFS: root, Dir: "x"}, `container dir "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.StartContainer(ctx, &tt.cfg, tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("StartContainer = %v, want an error saying %q", err, tt.want)
			}
			if _, err := e.InspectTask(ctx, "c"); !errors.Is(err, plugin.ErrTaskNotFound) {
				t.Errorf("InspectTask after a refused start: %v, want ErrTaskNotFound", err)
			}
		})
	}
}

func TestDecodeHandle(t *testing.T) {
	type state struct {
		Pid int `json:"pid"`
	}
	b, err := plugin.EncodeDriverState(state{Pid: 42})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &plugin.TaskConfig{ID: "t"}
	tests := []struct {
		name string
		h    *plugin.TaskHandle
		want string
		is   error
	}{
		{"ok", &plugin.TaskHandle{Version: plugin.HandleVersion, Config: cfg, DriverState: b}, "", nil},
		{"nil", nil, "nil handle", nil},
		{"future version", &plugin.TaskHandle{Version: plugin.HandleVersion + 1, Config: cfg, DriverState: b}, "version", plugin.ErrHandleVersion},
		{"no config", &plugin.TaskHandle{Version: plugin.HandleVersion, DriverState: b}, "no task config", nil},
		{"bad state", &plugin.TaskHandle{Version: plugin.HandleVersion, Config: cfg, DriverState: []byte("pid=1")}, `decode handle "t": driver state`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s state
			err := plugin.DecodeHandle(tt.h, &s)
			switch {
			case tt.want == "" && (err != nil || s.Pid != 42):
				t.Errorf("DecodeHandle = %+v, %v; want pid 42", s, err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("DecodeHandle = %v, want an error saying %q", err, tt.want)
			case tt.is != nil && !errors.Is(err, tt.is):
				t.Errorf("DecodeHandle = %v, want it to wrap %v", err, tt.is)
			}
		})
	}
}

func TestStateDir(t *testing.T) {
	t.Setenv(plugin.StateDirEnv, "")
	if _, err := plugin.StateDir(); err == nil || !strings.Contains(err.Error(), plugin.StateDirEnv) {
		t.Errorf("StateDir() unset = %v, want an error naming %s", err, plugin.StateDirEnv)
	}
	t.Setenv(plugin.StateDirEnv, "/var/lib/dcos/plugins/driver-x")
	if dir, err := plugin.StateDir(); err != nil || dir != "/var/lib/dcos/plugins/driver-x" {
		t.Errorf("StateDir() = %q, %v", dir, err)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		cfg  plugin.TaskConfig
		want string
	}{
		{"in PATH", plugin.TaskConfig{Command: "sh", Env: map[string]string{"PATH": "rel:/bin"}}, "/bin/sh"},
		{"absolute", plugin.TaskConfig{Command: "/bin/sh"}, "/bin/sh"},
		{"missing", plugin.TaskConfig{Command: "sh", Env: map[string]string{"PATH": dir}}, `command "sh": not found in PATH`},
		{"relative to WorkDir", plugin.TaskConfig{Command: "./nope", WorkDir: dir}, "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := plugin.LookPath(&tt.cfg)
			if !strings.Contains(p+errString(err), tt.want) {
				t.Errorf("LookPath = %q, %v; want %q", p, err, tt.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// supervisorGone reports whether no supervisor holds dir: its lock file
// can be locked.
func supervisorGone(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "supervisor.lock"))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}

// hostRootFS returns an empty root filesystem whose /usr the container
// gets by a read-only bind of the node's, with the merged-/usr links
// (/bin -> usr/bin, ...) of the node, so that its programs run.
func hostRootFS(t *testing.T) (string, []plugin.Bind) {
	t.Helper()
	root := t.TempDir()
	for _, name := range []string{"bin", "sbin", "lib", "lib32", "lib64"} {
		if target, err := os.Readlink("/" + name); err == nil {
			if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root, []plugin.Bind{{Source: "/usr", Target: "/usr", ReadOnly: true}}
}

// TestExecutor_StartContainer: a container task runs as pid 1 of its own
// pid namespace in its own root, with the container's hostname, user and
// working dir and exactly its Env, writes to the host's output files,
// reports its real exit, refuses an entrypoint that cannot run with the
// init's reason and nothing left, and is recovered by a new executor.
func TestExecutor_StartContainer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: the task init's namespaces and mounts need root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, dir := newExecutor(t)
	root, binds := hostRootFS(t)
	sandbox := t.TempDir()
	if err := os.Chmod(sandbox, 0o777); err != nil {
		t.Fatal(err)
	}
	binds = append(binds, plugin.Bind{Source: sandbox, Target: "/sandbox"})
	out := filepath.Join(sandbox, "stdout")
	cfg := &plugin.TaskConfig{ID: "web", Command: "sh", StdoutPath: out, Isolation: &plugin.TaskIsolation{Sandbox: sandbox},
		Args: []string{"-c", `echo "pid=$$ host=$(cat /proc/sys/kernel/hostname) uid=$(id -u) dir=$(pwd) env=$(env | grep -v '^PWD=' | sort | tr '\n' ' ')"; ls -a /; while [ ! -e /sandbox/gate ]; do sleep 0.01; done; exit 3`},
		Env:  map[string]string{"PATH": "/usr/bin:/bin", "PLUGIN_CLIENT_CERT": "x", "K": "v"}}
	c := &plugin.Container{RootFS: root, Hostname: "web-1", Binds: binds, UID: 101, GID: 101, Dir: "/sandbox"}
	h, err := e.StartContainer(ctx, cfg, c)
	if err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	t.Cleanup(func() { syscall.Kill(-h.PID, syscall.SIGKILL) })
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 101 || st.Gid != 101 {
		t.Errorf("stdout owned by %d:%d, want the container's 101:101", st.Uid, st.Gid)
	}

	// A new executor on the same state dir recovers it, then sees its exit.
	e.Close()
	e2, err := plugin.NewExecutor(plugin.ExecutorConfig{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e2.Close() })
	if err := e2.RecoverTask(ctx, h); err != nil {
		t.Fatalf("RecoverTask: %v", err)
	}
	if err := os.WriteFile(filepath.Join(sandbox, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := e2.WaitTask(ctx, "web")
	if err != nil || r.ExitCode != 3 || r.Signal != 0 || r.Err != "" {
		t.Fatalf("WaitTask = %+v, %v; want exit code 3", r, err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// env: K and PATH, then only the shell's own (SHLVL, _).
	want := "pid=1 host=web-1 uid=101 dir=/sandbox env=K=v PATH=/usr/bin:/bin "
	if first, _, _ := strings.Cut(string(b), "\n"); !strings.HasPrefix(first, want) || strings.Contains(first, "PLUGIN") {
		t.Errorf("the task says %q, want it to begin %q", b, want)
	}
	if strings.Contains(string(b), "\nhome\n") || strings.Contains(string(b), "\nroot\n") {
		t.Errorf("the container sees the node's root: %q", b)
	}
	if err := e2.DestroyTask(ctx, "web", false); err != nil {
		t.Error(err)
	}

	// An entrypoint that is not in the image fails the start, with the
	// init's reason, leaving nothing.
	out2 := filepath.Join(sandbox, "stdout2")
	_, err = e2.StartContainer(ctx, &plugin.TaskConfig{ID: "bad", Command: "/no/such/entry", StdoutPath: out2,
		Isolation: &plugin.TaskIsolation{Sandbox: sandbox}}, &plugin.Container{RootFS: root, Binds: binds})
	if err == nil || !strings.Contains(err.Error(), "/no/such/entry") {
		t.Errorf("StartContainer(missing entrypoint) = %v, want an error naming it", err)
	}
	if _, err := e2.InspectTask(ctx, "bad"); !errors.Is(err, plugin.ErrTaskNotFound) {
		t.Errorf("InspectTask after a failed start: %v", err)
	}
	if _, err := os.Stat(out2); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output file of a failed start: %v, want none", err)
	}
}
