package plugintest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	sdkplugin "github.com/dcos-kernel/dcos/sdk/plugin"
	"github.com/dcos-kernel/dcos/sdk/plugin/plugintest"
)

// TestExecutor_PluginEnvNeverReachesTasks: a driver on the executor that
// copies its own os.Environ() into a task's Env still gives the task none
// of go-plugin's or the host's plugin variables; the rest of its
// environment does pass.
func TestExecutor_PluginEnvNeverReachesTasks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	t.Cleanup(func() { waitSupervisorGone(t, dir) })
	d := plugintest.StartDriver(t, envDriver, plugintest.Options{StateDir: dir, Env: []string{"VENDOR_VISIBLE=1"}})

	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", d.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	pluginEnv := string(b)
	for _, k := range []string{"PLUGIN_CLIENT_CERT=", "PLUGIN_PROTOCOL_VERSIONS=", "DCOS_PLUGIN_MAGIC_COOKIE=", sdkplugin.StateDirEnv + "="} {
		if !strings.Contains(pluginEnv, "\x00"+k) && !strings.HasPrefix(pluginEnv, k) {
			t.Fatalf("the plugin's env lacks %s: the test proves nothing", k)
		}
	}

	if _, err := d.StartTask(ctx, &sdkplugin.TaskConfig{ID: "env", Command: "sh", Args: []string{"-c", "exec sleep 30"},
		Env: map[string]string{"PATH": "/usr/bin:/bin"}}); err != nil {
		t.Fatal(err)
	}
	killTaskGroup(t, d, "env")
	st, err := d.InspectTask(ctx, "env")
	if err != nil {
		t.Fatal(err)
	}
	b = settledEnviron(t, st.Attributes["pid"])
	var names []string
	for _, kv := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		k, _, _ := strings.Cut(string(kv), "=")
		names = append(names, k)
		if sdkplugin.IsPluginEnv(k) || strings.HasPrefix(k, "PLUGIN_") {
			t.Errorf("task env has the plugin's %s", k)
		}
	}
	if !strings.Contains(string(b), "VENDOR_VISIBLE=1") {
		t.Errorf("task env %v: want the plugin's other variables, which this driver copies", names)
	}
	if err := d.DestroyTask(ctx, "env", true); err != nil {
		t.Errorf("DestroyTask: %v", err)
	}
}

// settledEnviron reads /proc/PID/environ once the process has exec'd
// sleep and its environment has stopped growing: execve publishes the new
// environment string by string (the kernel raises env_end as it goes), so
// a read racing the sh → sleep exec can see a prefix of it (a loaded CI
// run did).
func settledEnviron(t *testing.T, pid string) []byte {
	t.Helper()
	var last []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		comm, err := os.ReadFile("/proc/" + pid + "/comm")
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("/proc/" + pid + "/environ")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(comm)) == "sleep" && last != nil && bytes.Equal(b, last) {
			return b
		}
		last = b
	}
	t.Fatalf("task %s: its environment did not settle with sleep running in 10s", pid)
	return nil
}

// waitSupervisorGone waits for the executor's supervisor of dir to exit
// (it does once idle, removing its socket first, then its lock).
func waitSupervisorGone(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if supervisorGone(dir) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("the supervisor of %s did not exit once idle", dir)
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
