package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
	"github.com/dcos-kernel/dcos/plugins/host/internal/testplugins/fake"
)

// groupConfig returns e's config with a driver and an isolator in one
// built-in group (the test binary serving both, see TestMain) and a
// built-in driver of its own.
func groupConfig(t *testing.T, e *env) Config {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Dir = "" // built-ins only
	group := []string{exe, "plugin", "group"}
	cfg.Builtins = []Builtin{
		{Name: "exec", Kind: contract.KindDriver, Cmd: group, Group: "builtin"},
		{Name: "cgroups", Kind: contract.KindIsolator, Cmd: group, Group: "builtin"},
		{Name: "solo", Kind: contract.KindDriver, Cmd: []string{exe, "plugin", "exec", "driver"}},
	}
	return cfg
}

// groupPIDs returns the pids the group's driver and isolator report, and
// the pid of their common Status row; it fails t if the rows differ.
func groupPIDs(t *testing.T, h *Host) (driverPID, isolatorPID, statusPID int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := h.Driver("exec")
	if err != nil {
		t.Fatal(err)
	}
	fp, err := d.Fingerprint(ctx)
	if err != nil {
		t.Fatalf("driver: Fingerprint: %v", err)
	}
	driverPID, _ = strconv.Atoi(fp.Attributes[fake.AttrPID])
	iso, err := h.Isolator("cgroups")
	if err != nil {
		t.Fatal(err)
	}
	u, err := iso.Usage(ctx, "c1")
	if err != nil {
		t.Fatalf("isolator: Usage: %v", err)
	}
	ds, is := status(t, h, "driver", "exec"), status(t, h, "isolator", "cgroups")
	if ds.PID != is.PID || ds.Health != is.Health || ds.Restarts != is.Restarts || ds.LastError != is.LastError || ds.Path != is.Path || ds.SHA256 != is.SHA256 {
		t.Errorf("group members' status differ:\n%+v\n%+v", ds, is)
	}
	return driverPID, int(u.PIDs), ds.PID
}

func TestHost_BuiltinGroup(t *testing.T) {
	e := newEnv(t)
	h := e.start(groupConfig(t, e))

	drv, iso, pid := groupPIDs(t, h)
	if pid == 0 || drv != pid || iso != pid {
		t.Fatalf("driver in pid %d, isolator in pid %d, status pid %d: want one process", drv, iso, pid)
	}
	if solo := status(t, h, "driver", "solo"); solo.PID == 0 || solo.PID == pid {
		t.Errorf("ungrouped built-in: pid %d, want a process of its own (group's is %d)", solo.PID, pid)
	}
	for _, s := range h.Status() {
		if !s.Builtin || s.Health != HealthHealthy || s.Restarts != 0 || s.Protocol != contract.ProtocolVersion {
			t.Errorf("status = %+v, want healthy built-ins", s)
		}
	}

	// Each member has its own state directory, given by MemberStateDirEnv.
	d, _ := h.Driver("exec")
	fp, err := d.Fingerprint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fp.Attributes[fake.AttrStateDir], filepath.Join(e.stateDir, "driver-exec"); got != want {
		t.Errorf("driver's state dir = %q, want %q", got, want)
	}
	if fi, err := os.Stat(filepath.Join(e.stateDir, "isolator-cgroups")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("isolator's state dir: %v, %v; want mode 0700", fi, err)
	}
	// The process logs once, for both members.
	waitFor(t, "the group's log line", func() bool {
		return e.logs.find(fake.MsgStdio, map[string]string{"plugin": "driver/exec,isolator/cgroups", "stream": "stderr"}) != nil
	})

	// A SIGKILL restarts the process once; both proxies work again and
	// OnRestart is called once for each member.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var restarted []string
	for len(restarted) < 2 {
		select {
		case got := <-e.restarted:
			restarted = append(restarted, got)
		case <-time.After(15 * time.Second):
			t.Fatalf("OnRestart calls: %q, want driver/exec and isolator/cgroups", restarted)
		}
	}
	time.Sleep(5 * e.config().MaxBackoff) // time enough for a restart too many
	select {
	case got := <-e.restarted:
		restarted = append(restarted, got)
	default:
	}
	slices.Sort(restarted)
	if want := []string{"driver/exec", "isolator/cgroups"}; !slices.Equal(restarted, want) {
		t.Errorf("OnRestart calls: %q, want %q", restarted, want)
	}
	drv, iso, after := groupPIDs(t, h)
	if after == 0 || after == pid || drv != after || iso != after {
		t.Errorf("after the kill: driver in pid %d, isolator in pid %d, status pid %d (was %d): want one new process", drv, iso, after, pid)
	}
	for _, name := range []string{"exec", "cgroups"} {
		kind := contract.KindDriver
		if name == "cgroups" {
			kind = contract.KindIsolator
		}
		if s := status(t, h, kind, name); s.Restarts != 1 || s.Health != HealthHealthy || !strings.Contains(s.LastError, "signal: killed") {
			t.Errorf("status after the kill = %+v, want healthy, 1 restart, LastError saying it was killed", s)
		}
	}
	if s := status(t, h, "driver", "solo"); s.Restarts != 0 {
		t.Errorf("ungrouped built-in restarted with the group: %+v", s)
	}
	n := 0
	for _, r := range e.logs.records() {
		if r["msg"] == "plugin restarted" {
			n++
			if r["plugin"] != "driver/exec,isolator/cgroups" {
				t.Errorf("restart logged for %v", r["plugin"])
			}
		}
	}
	if n != 1 {
		t.Errorf("%d restarts logged, want 1", n)
	}

	// Close kills the shared process.
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(after, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("group process %d after Close: kill 0: %v, want ESRCH", after, err)
	}
	for _, name := range []string{"exec", "solo"} {
		d, _ := h.Driver(name)
		if _, err := d.Capabilities(context.Background()); !errors.Is(err, contract.ErrPluginExited) {
			t.Errorf("%s: Capabilities after Close: err = %v, want ErrPluginExited", name, err)
		}
	}
}

// TestHost_BuiltinGroupRefused checks that a group's process refused at
// start (it speaks only a newer protocol) refuses every member.
func TestHost_BuiltinGroupRefused(t *testing.T) {
	e := newEnv(t)
	e.setMode("driver", "exec", fake.ModeFuture)
	cfg := groupConfig(t, e)
	h := e.start(cfg)
	time.Sleep(5 * cfg.MaxBackoff) // time enough to restart what should not be
	for _, s := range h.Status() {
		refused := s.Name != "solo"
		if got := s.Health == HealthRefused; got != refused || refused && (s.Restarts != 0 || !strings.Contains(s.LastError, "speaks protocol version 2")) {
			t.Errorf("status = %+v, want refused %t", s, refused)
		}
	}
	if _, err := h.Isolator("cgroups"); !errors.Is(err, ErrRefused) || !errors.Is(err, contract.ErrIncompatibleVersion) {
		t.Errorf("Isolator(cgroups): err = %v, want ErrRefused and ErrIncompatibleVersion", err)
	}
}

func TestNew_GroupErrors(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	cmd := []string{exe, "plugin", "group"}
	tests := []struct {
		name     string
		builtins []Builtin
		want     string
	}{
		{"cmd differs", []Builtin{
			{Name: "a", Kind: "driver", Cmd: cmd, Group: "g"},
			{Name: "b", Kind: "isolator", Cmd: []string{exe, "plugin", "other"}, Group: "g"},
		}, `differs from the Cmd`},
		{"kind twice", []Builtin{
			{Name: "a", Kind: "driver", Cmd: cmd, Group: "g"},
			{Name: "b", Kind: "driver", Cmd: cmd, Group: "g"},
		}, `group "g" already has a driver (driver/a)`},
		{"net twice", []Builtin{
			{Name: "a", Kind: "net", Cmd: cmd, Group: "g"},
			{Name: "b", Kind: "driver", Cmd: cmd, Group: "g"},
			{Name: "c", Kind: "net", Cmd: cmd, Group: "g"},
		}, `group "g" already has a net (net/a)`},
		{"storage twice", []Builtin{
			{Name: "a", Kind: "storage", Cmd: cmd, Group: "g"},
			{Name: "b", Kind: "storage", Cmd: cmd, Group: "g"},
		}, `group "g" already has a storage (storage/a)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{StateDir: state, Builtins: tt.builtins})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	// Different groups, and no group, may repeat a kind and a Cmd.
	h, err := New(Config{StateDir: state, Builtins: []Builtin{
		{Name: "a", Kind: "driver", Cmd: cmd, Group: "g"},
		{Name: "b", Kind: "driver", Cmd: cmd, Group: "h"},
		{Name: "c", Kind: "driver", Cmd: cmd},
		{Name: "d", Kind: "driver", Cmd: cmd},
	}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if len(h.procs) != 4 {
		t.Errorf("%d processes, want 4", len(h.procs))
	}
	// A group may have one member of each kind.
	h, err = New(Config{StateDir: state, Builtins: []Builtin{
		{Name: "a", Kind: "driver", Cmd: cmd, Group: "g"},
		{Name: "b", Kind: "isolator", Cmd: cmd, Group: "g"},
		{Name: "c", Kind: "net", Cmd: cmd, Group: "g"},
		{Name: "d", Kind: "storage", Cmd: cmd, Group: "g"},
	}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if len(h.procs) != 1 || len(h.procs[0].members) != 4 {
		t.Errorf("%d processes, want 1 of 4 members", len(h.procs))
	}
}

func TestMemberStateDirEnv(t *testing.T) {
	tests := []struct{ kind, name, want string }{
		{"driver", "exec", "DCOS_PLUGIN_STATE_DIR_DRIVER_EXEC"},
		{"isolator", "my-cg_2", "DCOS_PLUGIN_STATE_DIR_ISOLATOR_MY_CG_2"},
	}
	for _, tt := range tests {
		if got := MemberStateDirEnv(tt.kind, tt.name); got != tt.want {
			t.Errorf("MemberStateDirEnv(%q, %q) = %q, want %q", tt.kind, tt.name, got, tt.want)
		}
	}
}
