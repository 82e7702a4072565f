package plugintest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/dcos-kernel/dcos/plugins/contract"
	sdkplugin "github.com/dcos-kernel/dcos/sdk/plugin"
	"github.com/dcos-kernel/dcos/sdk/plugin/plugintest"
)

var testDriver, futureDriver, testIsolator, envDriver string // plugin binaries built by TestMain

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if sock := os.Getenv(grpcServerEnv); sock != "" {
		return serveBaseline(sock)
	}
	dir, err := os.MkdirTemp("", "plugintest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for pkg, out := range map[string]*string{
		"github.com/dcos-kernel/dcos/sdk/plugin/internal/testdriver":   &testDriver,
		"github.com/dcos-kernel/dcos/sdk/plugin/internal/futuredriver": &futureDriver,
		"github.com/dcos-kernel/dcos/sdk/plugin/internal/testisolator": &testIsolator,
		"github.com/dcos-kernel/dcos/sdk/plugin/internal/envdriver":    &envDriver,
	} {
		if *out, err = plugintest.Build(dir, pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// killTaskGroup kills the process group of a task the test driver started,
// whatever became of the driver.
func killTaskGroup(t *testing.T, d sdkplugin.Driver, id string) {
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
}

func TestDriver_TaskLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := plugintest.StartDriver(t, testDriver, plugintest.Options{})

	caps, err := d.Capabilities(ctx)
	if err != nil || !caps.SendSignals || caps.FSIsolation != sdkplugin.FSIsolationNone {
		t.Fatalf("Capabilities = %+v, %v", caps, err)
	}
	if fp, err := d.Fingerprint(ctx); err != nil || fp.Health != sdkplugin.HealthHealthy {
		t.Fatalf("Fingerprint = %+v, %v", fp, err)
	}

	h, err := d.StartTask(ctx, &sdkplugin.TaskConfig{ID: "t1", Name: "sleeper", Command: "sleep", Args: []string{"30"}})
	if err != nil {
		t.Fatal(err)
	}
	killTaskGroup(t, d, "t1")
	if h.Version != sdkplugin.HandleVersion || h.State != sdkplugin.TaskStateRunning || h.Config.ID != "t1" || len(h.DriverState) == 0 {
		t.Errorf("handle = %+v", h)
	}

	st, err := d.InspectTask(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != sdkplugin.TaskStateRunning || st.Name != "sleeper" || st.StartedAt.IsZero() || st.ExitResult != nil {
		t.Errorf("InspectTask running = %+v", st)
	}
	if u, err := d.TaskStats(ctx, "t1"); err != nil || u.MemoryRSSBytes == 0 {
		t.Errorf("TaskStats = %+v, %v", u, err)
	}

	// A destroy without force refuses a running task.
	if err := d.DestroyTask(ctx, "t1", false); err == nil {
		t.Error("DestroyTask(running, force=false): want error")
	}

	waited := make(chan *sdkplugin.ExitResult, 1)
	go func() {
		r, err := d.WaitTask(ctx, "t1")
		if err != nil {
			t.Errorf("WaitTask: %v", err)
		}
		waited <- r
	}()

	start := time.Now()
	if err := d.StopTask(ctx, "t1", 5*time.Second, "SIGTERM"); err != nil {
		t.Fatalf("StopTask: %v", err)
	}
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("StopTask took %v: SIGTERM should stop sleep at once", el)
	}
	r := <-waited
	if r == nil || r.Signal != int(syscall.SIGTERM) || r.ExitCode != 0 || r.Successful() {
		t.Errorf("WaitTask = %+v, want killed by SIGTERM", r)
	}
	st, err = d.InspectTask(ctx, "t1")
	if err != nil || st.State != sdkplugin.TaskStateExited || st.CompletedAt.IsZero() || st.ExitResult.Signal != int(syscall.SIGTERM) {
		t.Errorf("InspectTask exited = %+v, %v", st, err)
	}
	// Stopping an exited task is not an error.
	if err := d.StopTask(ctx, "t1", time.Second, ""); err != nil {
		t.Errorf("StopTask(exited): %v", err)
	}

	for i := range 2 {
		if err := d.DestroyTask(ctx, "t1", false); err != nil {
			t.Errorf("DestroyTask #%d: %v", i+1, err)
		}
	}
	if _, err := d.InspectTask(ctx, "t1"); !errors.Is(err, sdkplugin.ErrTaskNotFound) {
		t.Errorf("InspectTask(destroyed): err = %v, want ErrTaskNotFound", err)
	}
}

func TestDriver_StopEscalatesToKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := plugintest.StartDriver(t, testDriver, plugintest.Options{})
	// The shell ignores SIGTERM; StopTask must SIGKILL it after the timeout.
	ready := filepath.Join(t.TempDir(), "ready")
	if _, err := d.StartTask(ctx, &sdkplugin.TaskConfig{ID: "stubborn", Command: "sh",
		Args: []string{"-c", "trap '' TERM; touch " + ready + "; sleep 30 & wait"}}); err != nil {
		t.Fatal(err)
	}
	killTaskGroup(t, d, "stubborn")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break // the trap is in place
		}
		if time.Now().After(deadline) {
			t.Fatal("task did not install its trap within 10s")
		}
	}
	start := time.Now()
	if err := d.StopTask(ctx, "stubborn", 300*time.Millisecond, "SIGTERM"); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 5*time.Second {
		t.Errorf("StopTask took %v, want about the 300ms timeout", el)
	}
	r, err := d.WaitTask(ctx, "stubborn")
	if err != nil || r.Signal != int(syscall.SIGKILL) {
		t.Errorf("WaitTask = %+v, %v; want killed by SIGKILL", r, err)
	}
	if err := d.DestroyTask(ctx, "stubborn", true); err != nil {
		t.Error(err)
	}
}

func TestDriver_Errors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := plugintest.StartDriver(t, testDriver, plugintest.Options{})
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"wait unknown", func() error { _, err := d.WaitTask(ctx, "nope"); return err }, sdkplugin.ErrTaskNotFound},
		{"signal unknown", func() error { return d.SignalTask(ctx, "nope", "SIGHUP") }, sdkplugin.ErrTaskNotFound},
		{"recover", func() error { return d.RecoverTask(ctx, &sdkplugin.TaskHandle{Version: sdkplugin.HandleVersion}) }, sdkplugin.ErrNotSupported},
		{"recover future handle", func() error { return d.RecoverTask(ctx, &sdkplugin.TaskHandle{Version: 2}) }, sdkplugin.ErrHandleVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if err := d.DestroyTask(ctx, "never-started", false); err != nil {
		t.Errorf("DestroyTask(unknown) = %v, want nil", err)
	}
}

func TestStart_ChecksumMismatchRefused(t *testing.T) {
	bad := make([]byte, 32)
	p, _, err := plugintest.Start(testDriver, contract.KindDriver, plugintest.Options{SHA256: bad})
	if err == nil {
		p.Kill()
		t.Fatal("Start with a wrong checksum: want error")
	}
	t.Logf("refused: %v", err)
	if !errors.Is(err, goplugin.ErrChecksumsDoNotMatch) || !strings.Contains(err.Error(), "sha256 does not match") {
		t.Errorf("err = %v, want a checksum refusal", err)
	}
}

func TestStart_NewerProtocolRefused(t *testing.T) {
	p, _, err := plugintest.Start(futureDriver, contract.KindDriver, plugintest.Options{})
	if err == nil {
		p.Kill()
		t.Fatal("Start of a protocol-2 plugin: want error")
	}
	t.Logf("refused: %v", err)
	if !errors.Is(err, contract.ErrIncompatibleVersion) {
		t.Fatalf("err = %v, want ErrIncompatibleVersion", err)
	}
	want := fmt.Sprintf("plugin %s speaks protocol version 2, this host speaks 1", futureDriver)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to say %q", err, want)
	}
}

func TestDriver_PluginKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := plugintest.StartDriver(t, testDriver, plugintest.Options{})
	if _, err := d.StartTask(ctx, &sdkplugin.TaskConfig{ID: "orphan", Command: "sleep", Args: []string{"30"}}); err != nil {
		t.Fatal(err)
	}
	killTaskGroup(t, d, "orphan")

	// A call in flight when the plugin dies fails too.
	waitErr := make(chan error, 1)
	go func() { _, err := d.WaitTask(ctx, "orphan"); waitErr <- err }()
	time.Sleep(50 * time.Millisecond)

	pid := d.Pid()
	if pid == 0 {
		t.Fatal("no plugin pid")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !d.Exited() {
		if time.Now().After(deadline) {
			t.Fatal("Exited() still false 5s after SIGKILL")
		}
		time.Sleep(10 * time.Millisecond)
	}

	select {
	case err := <-waitErr:
		if !errors.Is(err, contract.ErrPluginExited) {
			t.Errorf("in-flight WaitTask: err = %v, want ErrPluginExited", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight WaitTask still blocked 5s after the plugin died")
	}
	callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
	defer callCancel()
	start := time.Now()
	_, err := d.Capabilities(callCtx)
	t.Logf("after kill: %v", err)
	if !errors.Is(err, contract.ErrPluginExited) {
		t.Errorf("Capabilities after kill: err = %v, want ErrPluginExited", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Capabilities after kill took %v, want a fast failure", el)
	}
}
