package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/dcos-kernel/dcos/plugins/contract"
	"github.com/dcos-kernel/dcos/plugins/host/internal/testplugins/fake"
)

func TestHost_Discovered(t *testing.T) {
	e := newEnv(t)
	drvPath := e.install("dcos-driver-good", true)
	isoPath := e.install("dcos-isolator-iso", true)
	if err := os.WriteFile(filepath.Join(e.dir, "README"), []byte("not a plugin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "dcos-driver-noexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := e.start(e.config())
	ctx := context.Background()

	d, err := h.Driver("good")
	if err != nil {
		t.Fatal(err)
	}
	caps, err := d.Capabilities(ctx)
	if err != nil || !caps.SendSignals {
		t.Fatalf("Capabilities = %+v, %v", caps, err)
	}
	fp, err := d.Fingerprint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantState := filepath.Join(e.stateDir, "driver-good")
	if got := fp.Attributes[fake.AttrStateDir]; got != wantState {
		t.Errorf("plugin's %s = %q, want %q", StateDirEnv, got, wantState)
	}
	if fi, err := os.Stat(wantState); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v, %v; want mode 0700", fi, err)
	}
	if _, err := d.InspectTask(ctx, "t1"); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("InspectTask: err = %v, want ErrTaskNotFound through the proxy", err)
	}
	if d2, _ := h.Driver("good"); d2 != d {
		t.Error("Driver returned a different proxy for the same plugin")
	}

	iso, err := h.Isolator("iso")
	if err != nil {
		t.Fatal(err)
	}
	u, err := iso.Usage(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}

	st := h.Status()
	if len(st) != 2 {
		t.Fatalf("Status = %+v, want 2 plugins (the others are ignored)", st)
	}
	sumDrv, _ := sha256File(drvPath)
	sumIso, _ := sha256File(isoPath)
	want := []Status{
		{Kind: "driver", Name: "good", Path: drvPath, Protocol: 1, SHA256: hexSum(sumDrv), Health: HealthHealthy},
		{Kind: "isolator", Name: "iso", Path: isoPath, Protocol: 1, SHA256: hexSum(sumIso), Health: HealthHealthy, PID: int(u.PIDs)},
	}
	want[0].PID, _ = strconv.Atoi(fp.Attributes[fake.AttrPID])
	for i := range want {
		if st[i] != want[i] {
			t.Errorf("Status[%d] = %+v\nwant        %+v", i, st[i], want[i])
		}
	}

	if _, err := h.Driver("nope"); !errors.Is(err, ErrUnknownPlugin) || !strings.Contains(err.Error(), "there are: good") {
		t.Errorf("Driver(nope): err = %v, want ErrUnknownPlugin listing good", err)
	}
	if _, err := h.Isolator("good"); !errors.Is(err, ErrUnknownPlugin) || !strings.Contains(err.Error(), "there are: iso") {
		t.Errorf("Isolator(good): err = %v, want ErrUnknownPlugin listing iso", err)
	}

	// The plugin's hclog lines and its os.Stderr arrive with its name.
	waitFor(t, "the plugin's log line", func() bool {
		return e.logs.find(fake.MsgCapabilities, map[string]string{"plugin": "driver/good", "level": "INFO"}) != nil
	})
	waitFor(t, "the plugin's stderr line", func() bool {
		return e.logs.find(fake.MsgStdio, map[string]string{"plugin": "driver/good", "stream": "stderr"}) != nil
	})

	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := d.Capabilities(ctx); !errors.Is(err, contract.ErrPluginExited) || time.Since(start) > time.Second {
		t.Errorf("Capabilities after Close: err = %v after %s, want ErrPluginExited at once", err, time.Since(start))
	}
	for _, s := range h.Status() {
		if s.Health != HealthStopped || s.PID != 0 {
			t.Errorf("after Close: %+v", s)
		}
	}
}

func TestHost_Refused(t *testing.T) {
	e := newEnv(t)
	e.install("dcos-driver-good", true)
	e.install("dcos-driver-uncatalogued", false)
	altered := e.install("dcos-driver-altered", true)
	f, err := os.OpenFile(altered, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	e.install("dcos-driver-future", true)
	e.setMode("driver", "future", fake.ModeFuture)
	e.install("dcos-driver-self", true)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Builtins = []Builtin{{Name: "self", Kind: "driver", Cmd: []string{exe, "plugin", "exec", "driver"}}}
	h := e.start(cfg)
	time.Sleep(5 * cfg.MaxBackoff) // time enough to restart what should not be

	tests := []struct {
		name    string
		want    string // in LastError
		wantErr error
	}{
		{"uncatalogued", "not in the catalog " + e.catalog + ": add its sha256 (sha256sum " + filepath.Join(e.dir, "dcos-driver-uncatalogued") + " >> " + e.catalog + ")", ErrRefused},
		{"altered", "its sha256 does not match the registered checksum", goplugin.ErrChecksumsDoNotMatch},
		{"future", "speaks protocol version 2, this host speaks 1", contract.ErrIncompatibleVersion},
		{"self", "a built-in driver named \"self\" exists", ErrRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Status
			for _, st := range h.Status() {
				if st.Name == tt.name && !st.Builtin {
					s = st
				}
			}
			if s.Health != HealthRefused || s.Restarts != 0 || s.PID != 0 || !strings.Contains(s.LastError, tt.want) {
				t.Errorf("Status = %+v\nwant refused, not restarted, LastError containing %q", s, tt.want)
			}
			if tt.name == "self" {
				return // the name is the built-in's
			}
			_, err := h.Driver(tt.name)
			if !errors.Is(err, ErrRefused) || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Driver(%s): err = %v, want ErrRefused and %v", tt.name, err, tt.wantErr)
			}
		})
	}

	// The others are unaffected; the built-in has the name "self".
	for _, name := range []string{"good", "self"} {
		d, err := h.Driver(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Capabilities(context.Background()); err != nil {
			t.Errorf("%s: Capabilities: %v", name, err)
		}
	}
	self := status(t, h, "driver", "self")
	sum, _ := sha256File(exe)
	if !self.Builtin || self.Path != exe || self.SHA256 != hexSum(sum) || self.Health != HealthHealthy {
		t.Errorf("built-in status = %+v", self)
	}
	if _, err := h.Driver("uncatalogued"); err == nil || strings.Contains(err.Error(), "there are") {
		t.Errorf("Driver(uncatalogued): err = %v, want the refusal, not unknown", err)
	}
}

func TestHost_RestartAfterKill(t *testing.T) {
	e := newEnv(t)
	e.install("dcos-driver-good", true)
	h := e.start(e.config())
	ctx := context.Background()
	d, err := h.Driver("good")
	if err != nil {
		t.Fatal(err)
	}
	before := status(t, h, "driver", "good")
	if before.PID == 0 {
		t.Fatalf("status = %+v, want a pid", before)
	}

	// A call in flight when the plugin dies fails at once.
	inFlight := make(chan error, 1)
	go func() {
		_, err := d.WaitTask(ctx, "blocks")
		inFlight <- err
	}()
	waitFor(t, "WaitTask to reach the plugin", func() bool {
		return e.logs.find(fake.MsgWaitTask, map[string]string{"plugin": "driver/good", "task": "blocks"}) != nil
	})
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-inFlight:
		if !errors.Is(err, contract.ErrPluginExited) {
			t.Errorf("in-flight WaitTask: err = %v, want ErrPluginExited", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight WaitTask did not return when the plugin died")
	}

	select {
	case got := <-e.restarted:
		if got != "driver/good" {
			t.Errorf("OnRestart(%s), want driver/good", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("OnRestart not called")
	}
	if _, err := d.Capabilities(ctx); err != nil {
		t.Fatalf("Capabilities after restart: %v", err)
	}
	after := status(t, h, "driver", "good")
	if after.Restarts != 1 || after.Health != HealthHealthy || after.PID == 0 || after.PID == before.PID ||
		!strings.Contains(after.LastError, "exited unexpectedly: signal: killed") {
		t.Errorf("status after restart = %+v, want healthy, 1 restart, a new pid, LastError saying it was killed", after)
	}
	if r := e.logs.find("plugin restarted", map[string]string{"plugin": "driver/good"}); r == nil {
		t.Error("no log of the restart")
	}
}

func TestHost_CrashLoop(t *testing.T) {
	e := newEnv(t)
	e.install("dcos-driver-good", true)
	e.install("dcos-driver-crashy", true)
	e.setMode("driver", "crashy", fake.ModeCrash)
	h := e.start(e.config())

	waitFor(t, "3 restarts of the crashing plugin", func() bool { return status(t, h, "driver", "crashy").Restarts >= 3 })
	s := status(t, h, "driver", "crashy")
	if s.Health != HealthRestarting || s.PID != 0 || !strings.Contains(s.LastError, "exit status 3") {
		t.Errorf("status = %+v, want restarting, LastError with the exit status", s)
	}
	// A plain line (logged at debug) is quoted in the start error: a plugin
	// that dies before its handshake says why where operators look.
	if !strings.Contains(s.LastError, fake.MsgCrashPlain) {
		t.Errorf("LastError = %q, want it to quote the plugin's stderr %q", s.LastError, fake.MsgCrashPlain)
	}
	if r := e.logs.find(fake.MsgCrash, map[string]string{"plugin": "driver/crashy", "level": "ERROR"}); r == nil {
		t.Error("the crashing plugin's last log line is not in the host's log")
	}

	// A call waits for the plugin until its ctx is done.
	crashy, err := h.Driver("crashy")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := crashy.Capabilities(ctx); !errors.Is(err, contract.ErrPluginExited) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Capabilities of a crashing plugin: err = %v, want ErrPluginExited and DeadlineExceeded", err)
	}

	// The healthy plugin is unaffected.
	good, err := h.Driver("good")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := good.Capabilities(context.Background()); err != nil {
		t.Errorf("healthy plugin: %v", err)
	}
	if s := status(t, h, "driver", "good"); s.Health != HealthHealthy || s.Restarts != 0 {
		t.Errorf("healthy plugin status = %+v", s)
	}
	select {
	case got := <-e.restarted:
		t.Errorf("OnRestart(%s) for a plugin that never came up again", got)
	default:
	}
}

func TestHost_CallWaitsForRestart(t *testing.T) {
	e := newEnv(t)
	e.install("dcos-driver-flaky", true)
	e.setMode("driver", "flaky", fake.ModeCrashAfter)
	cfg := e.config()
	cfg.MinBackoff, cfg.MaxBackoff = 300*time.Millisecond, time.Second
	h := e.start(cfg)
	d, err := h.Driver("flaky")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := d.Capabilities(ctx); err != nil { // answers, then exits
		t.Fatal(err)
	}
	waitFor(t, "the plugin to go down", func() bool { return status(t, h, "driver", "flaky").Health == HealthRestarting })
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := d.Capabilities(ctx); err != nil {
		t.Fatalf("Capabilities while restarting: %v, want it to wait for the restart", err)
	}
	if s := status(t, h, "driver", "flaky"); s.Restarts < 1 || !strings.Contains(s.LastError, "exit status 4") {
		t.Errorf("status = %+v, want a restart after exit status 4", s)
	}
}

func TestHost_CloseDuringStart(t *testing.T) {
	e := newEnv(t)
	e.install("dcos-driver-hang", true)
	e.setMode("driver", "hang", fake.ModeHang)
	h, err := New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := h.Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start: err = %v, want DeadlineExceeded (the plugin never answers)", err)
	}
	d, err := h.Driver("hang")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := d.Capabilities(context.Background()) // waits for the plugin
		done <- err
	}()
	start := time.Now()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("Close took %s with a plugin hanging in its handshake", time.Since(start))
	}
	if err := <-done; !errors.Is(err, contract.ErrPluginExited) {
		t.Errorf("call waiting at Close: err = %v, want ErrPluginExited", err)
	}
	if s := status(t, h, "driver", "hang"); s.Health != HealthStopped || s.PID != 0 {
		t.Errorf("status after Close = %+v", s)
	}
	assertNoProcesses(t, e.dir)
}

func TestHost_Builtin(t *testing.T) {
	e := newEnv(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Dir = "" // built-ins only
	cfg.Builtins = []Builtin{
		{Name: "exec", Kind: contract.KindDriver, Cmd: []string{exe, "plugin", "exec", "driver"}},
		{Name: "cgroups", Kind: contract.KindIsolator, Cmd: []string{exe, "plugin", "exec", "isolator"}},
	}
	h := e.start(cfg)
	d, err := h.Driver("exec")
	if err != nil {
		t.Fatal(err)
	}
	fp, err := d.Fingerprint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fp.Attributes[fake.AttrStateDir], filepath.Join(e.stateDir, "driver-exec"); got != want {
		t.Errorf("state dir = %q, want %q", got, want)
	}
	iso, err := h.Isolator("cgroups")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iso.Usage(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	for _, s := range h.Status() {
		if !s.Builtin || s.Health != HealthHealthy || s.Path != exe || s.Protocol != contract.ProtocolVersion {
			t.Errorf("status = %+v", s)
		}
	}
}

func TestHost_StartTwice(t *testing.T) {
	e := newEnv(t)
	h := e.start(e.config())
	if err := h.Start(context.Background()); err == nil {
		t.Error("second Start: want error")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNew_Errors(t *testing.T) {
	root := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	badCatalog := filepath.Join(root, "SHA256SUMS")
	if err := os.WriteFile(badCatalog, []byte(strings.Repeat("a", 64)+"  dcos-driver-a\nnot a line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(root, "state")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no state dir", Config{}, "no state directory"},
		{"missing dir", Config{StateDir: state, Dir: filepath.Join(root, "nope")}, "plugin dir"},
		{"malformed catalog", Config{StateDir: state, Dir: root}, "SHA256SUMS:2"},
		{"backoffs", Config{StateDir: state, MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "backoff"},
		{"builtin kind", Config{StateDir: state, Builtins: []Builtin{{Name: "x", Kind: "volume", Cmd: []string{exe}}}}, `kind "volume": want one of driver, isolator, net, storage`},
		{"builtin name", Config{StateDir: state, Builtins: []Builtin{{Name: "X!", Kind: "driver", Cmd: []string{exe}}}}, "want a name"},
		{"builtin relative cmd", Config{StateDir: state, Builtins: []Builtin{{Name: "x", Kind: "driver", Cmd: []string{"dcosd"}}}}, "absolute path"},
		{"builtin missing binary", Config{StateDir: state, Builtins: []Builtin{{Name: "x", Kind: "driver", Cmd: []string{"/nonexistent/dcosd"}}}}, "no such file"},
		{"builtin twice", Config{StateDir: state, Builtins: []Builtin{{Name: "x", Kind: "driver", Cmd: []string{exe}}, {Name: "x", Kind: "driver", Cmd: []string{exe}}}}, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
