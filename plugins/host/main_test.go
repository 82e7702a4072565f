package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
	"github.com/dcos-kernel/dcos/plugins/host/internal/testplugins/fake"
)

// groupMembers names, by kind, the members a built-in group of the test
// binary may have (see TestMain).
var groupMembers = map[string]string{
	contract.KindDriver:   "exec",
	contract.KindIsolator: "cgroups",
	contract.KindNet:      "bridge",
	contract.KindStorage:  "local",
}

// pluginBin is the test plugin, built in TestMain; tests install copies of
// it under plugin file names.
var pluginBin string

func TestMain(m *testing.M) {
	// Re-executed as a built-in: serve the fake plugin of the kind named.
	if len(os.Args) == 4 && os.Args[1] == "plugin" && os.Args[2] == "exec" {
		fake.Serve(os.Args[3])
		return
	}
	// Re-executed as the process of a built-in group: serve a fake plugin
	// of each kind, named as groupMembers names them; a group that has
	// fewer members leaves the others undispensed.
	if len(os.Args) == 3 && os.Args[1] == "plugin" && os.Args[2] == "group" {
		dirs := map[string]string{}
		for kind, name := range groupMembers {
			dirs[kind] = os.Getenv(MemberStateDirEnv(kind, name))
		}
		fake.ServeGroup(dirs)
		return
	}
	dir, err := os.MkdirTemp("", "plugins-host-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginBin = filepath.Join(dir, "testplugin")
	cmd := exec.Command("go", "build", "-o", pluginBin, "github.com/dcos-kernel/dcos/plugins/host/internal/testplugins/testplugin")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build test plugin: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is a plugin directory, catalog and state directory for one test.
type env struct {
	t                      testing.TB
	dir, catalog, stateDir string
	logs                   *logBuffer
	restarted              chan string // "<kind>/<name>" per OnRestart call
}

func newEnv(t testing.TB) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{
		t: t, dir: filepath.Join(root, "plugins"), stateDir: filepath.Join(root, "state"),
		logs: &logBuffer{}, restarted: make(chan string, 100),
	}
	e.catalog = filepath.Join(e.dir, CatalogFile)
	if err := os.Mkdir(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host log:\n%s", e.logs.String())
		}
	})
	return e
}

// install copies the test plugin into the plugin directory as file, and
// catalogues it unless catalogue is false.
func (e *env) install(file string, catalogue bool) string {
	e.t.Helper()
	path := filepath.Join(e.dir, file)
	b, err := os.ReadFile(pluginBin)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if catalogue {
		sum, err := sha256File(path)
		if err != nil {
			e.t.Fatal(err)
		}
		f, err := os.OpenFile(e.catalog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			e.t.Fatal(err)
		}
		fmt.Fprintf(f, "%s  %s\n", hex.EncodeToString(sum), file)
		f.Close()
	}
	return path
}

// setMode sets the fake plugin's mode (see package fake).
func (e *env) setMode(kind, name, mode string) {
	e.t.Helper()
	dir := filepath.Join(e.stateDir, kind+"-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mode"), []byte(mode), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// config returns the test's Config: short backoffs, logs into e.logs.
func (e *env) config() Config {
	return Config{
		Dir: e.dir, StateDir: e.stateDir,
		Logger:     slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: levelTrace})),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		OnRestart: func(kind, name string) { e.restarted <- kind + "/" + name },
	}
}

// start makes and starts a host of cfg, closed at the end of the test, and
// checks then that none of its processes is left.
func (e *env) start(cfg Config) *Host {
	e.t.Helper()
	h, err := New(cfg)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() {
		if err := h.Close(); err != nil {
			e.t.Errorf("Close: %v", err)
		}
		for _, s := range h.Status() {
			if s.Health != HealthStopped && s.Health != HealthRefused || s.PID != 0 {
				e.t.Errorf("after Close: %s/%s health %s pid %d", s.Kind, s.Name, s.Health, s.PID)
			}
		}
		assertNoProcesses(e.t, e.dir)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		e.t.Fatalf("Start: %v", err)
	}
	return h
}

// assertNoProcesses fails t if a process runs an executable under dir.
func assertNoProcesses(t testing.TB, dir string) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", ent.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, dir+string(filepath.Separator)) {
			t.Errorf("process %d (%s) is still running", pid, exe)
		}
	}
}

// status returns the status of kind/name (of the built-in if a discovered
// plugin has the same name).
func status(t *testing.T, h *Host, kind, name string) Status {
	t.Helper()
	for _, s := range h.Status() {
		if s.Kind == kind && s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for %s/%s in %+v", kind, name, h.Status())
	return Status{}
}

// waitFor polls cond until it holds or 15s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logBuffer collects JSON log records; it is safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

var _ io.Writer = (*logBuffer)(nil)

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records returns the records logged so far.
func (b *logBuffer) records() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r map[string]any
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// find returns the first record with message msg and the attributes of
// attrs (compared as strings), or nil.
func (b *logBuffer) find(msg string, attrs map[string]string) map[string]any {
	for _, r := range b.records() {
		if r["msg"] != msg {
			continue
		}
		ok := true
		for k, v := range attrs {
			if fmt.Sprint(r[k]) != v {
				ok = false
			}
		}
		if ok {
			return r
		}
	}
	return nil
}
