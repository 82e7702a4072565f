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
		{"too long", "/" + strings.Repeat("d", 200), "longer than a unix socket address"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := plugin.NewExecutor(plugin.ExecutorConfig{StateDir: tt.dir}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewExecutor(%q) = %v, want an error saying %q", tt.dir, err, tt.want)
			}
		})
	}
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
// the field named, and nothing of them is left.
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
		{"bad cap", plugin.TaskConfig{ID: "c", Command: "/bin/sh", Isolation: iso}, &plugin.Container{RootFS: root, Caps: []string{"net_admin"}}, `capability "net_admin"`},
		{"relative dir", plugin.TaskConfig{ID: "c", Command: "/bin/sh", Isolation: iso}, &plugin.Container{RootFS: root, Dir: "x"}, `container dir "x"`},
		{"missing entrypoint", plugin.TaskConfig{ID: "c", Command: "/bin/sh", Isolation: iso}, &plugin.Container{RootFS: root}, `command "/bin/sh" in ` + root},
		{"entrypoint not in PATH", plugin.TaskConfig{ID: "c", Command: "nginx", Isolation: iso, Env: map[string]string{"PATH": "/usr/sbin"}},
			&plugin.Container{RootFS: root}, `command "nginx": not found in ` + root},
	}
	// A well-formed container whose entrypoint exists: refused until the
	// task init has a container mode (TODO(issue 14): then it runs).
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/entry"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/bin", filepath.Join(root, "bin")); err != nil { // absolute, inside root
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "stdout")
	tests = append(tests, struct {
		name string
		cfg  plugin.TaskConfig
		c    *plugin.Container
		want string
	}{"no container init yet", plugin.TaskConfig{ID: "c", Command: "entry", Isolation: iso, StdoutPath: out,
		Env: map[string]string{"PATH": "/bin"}}, &plugin.Container{RootFS: root, Hostname: "web-1", UID: 101, GID: 101,
		Binds: []plugin.Bind{{Source: iso.Sandbox, Target: "/sandbox"}}, Caps: []string{"CAP_NET_BIND_SERVICE"}, Dir: "/"},
		"has no container mode"})
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
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output file of a refused start: %v, want none", err)
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
