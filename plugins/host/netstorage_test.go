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

// hostPort is a host-mode request for container id with one port the net
// driver picks.
func hostPort(id string) contract.NetworkRequest {
	return contract.NetworkRequest{ContainerID: id, Mode: contract.NetworkModeHost, Ports: []contract.PortMapping{{Name: "http"}}}
}

// netPID returns the pid of the process that set up st (the fake net
// driver puts it in the status's Env).
func netPID(t *testing.T, st *contract.NetworkStatus) int {
	t.Helper()
	pid, err := strconv.Atoi(st.Env[fake.AttrPID])
	if err != nil {
		t.Fatalf("net status %+v: no pid: %v", st, err)
	}
	return pid
}

func TestHost_NetAndStorage(t *testing.T) {
	e := newEnv(t)
	netPath := e.install("dcos-net-x", true)
	storagePath := e.install("dcos-storage-y", true)
	e.install("dcos-storage-uncatalogued", false)
	e.install("dcos-driver-d", true)
	h := e.start(e.config())
	ctx := context.Background()

	// The net driver answers through its proxy; its errors cross the wire.
	n, err := h.Net("x")
	if err != nil {
		t.Fatal(err)
	}
	if n2, _ := h.Net("x"); n2 != n {
		t.Error("Net returned a different proxy for the same plugin")
	}
	if _, err := n.Status(ctx, "c1"); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("Status of an unknown container: err = %v, want ErrTaskNotFound through the proxy", err)
	}
	st, err := n.Setup(ctx, hostPort("c1"))
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if got, want := st.Env[fake.AttrStateDir], filepath.Join(e.stateDir, "net-x"); got != want {
		t.Errorf("net plugin's state dir = %q, want %q", got, want)
	}
	if len(st.Ports) != 1 || st.Ports[0].HostPort == 0 || st.Env[contract.PortEnv("http")] != strconv.Itoa(int(st.Ports[0].HostPort)) {
		t.Errorf("Setup = %+v, want a picked host port in Ports and Env", st)
	}
	if got, err := n.Status(ctx, "c1"); err != nil || got.Ports[0] != st.Ports[0] {
		t.Errorf("Status = %+v, %v; want the status Setup returned", got, err)
	}
	if _, err := n.Setup(ctx, hostPort("c1")); !errors.Is(err, contract.ErrConflict) {
		t.Errorf("Setup twice: err = %v, want ErrConflict", err)
	}
	if _, err := n.Setup(ctx, contract.NetworkRequest{ContainerID: "c2", Mode: contract.NetworkModeBridge}); !errors.Is(err, contract.ErrNotSupported) {
		t.Errorf("Setup in bridge mode: err = %v, want ErrNotSupported", err)
	}
	if err := n.RemoveNode(ctx); !errors.Is(err, contract.ErrConflict) {
		t.Errorf("RemoveNode while c1 is set up: err = %v, want ErrConflict", err)
	}
	if err := n.Teardown(ctx, "c1"); err != nil {
		t.Errorf("Teardown: %v", err)
	}
	if err := n.RemoveNode(ctx); err != nil {
		t.Errorf("RemoveNode with no container: %v", err)
	}

	// So does the storage driver.
	s, err := h.Storage("y")
	if err != nil {
		t.Fatal(err)
	}
	if s2, _ := h.Storage("y"); s2 != s {
		t.Error("Storage returned a different proxy for the same plugin")
	}
	if _, err := s.Mount(ctx, contract.MountRequest{ContainerID: "c1", HostPath: "/tmp", Target: "tmp"}); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("Mount into an unknown sandbox: err = %v, want ErrTaskNotFound through the proxy", err)
	}
	sb, err := s.PrepareSandbox(ctx, "c1", 1<<20)
	if err != nil {
		t.Fatalf("PrepareSandbox: %v", err)
	}
	if want := filepath.Join(e.stateDir, "storage-y", "sandboxes", "c1"); sb.Path != want || sb.SizeBytes != 1<<20 {
		t.Errorf("PrepareSandbox = %+v, want path %q (in the plugin's state dir) and 1MiB", sb, want)
	}
	if _, err := s.CreateVolume(ctx, contract.VolumeRequest{ID: "v1", Role: "db", SizeBytes: 1 << 30}); err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	if vols, err := s.ListVolumes(ctx); err != nil || len(vols) != 1 || vols[0].ID != "v1" {
		t.Errorf("ListVolumes = %+v, %v; want v1", vols, err)
	}

	// One Status row each, sorted by kind.
	pid := func(kind, name string) int { return status(t, h, kind, name).PID }
	sumNet, _ := sha256File(netPath)
	sumStorage, _ := sha256File(storagePath)
	var got []Status
	for _, st := range h.Status() {
		if st.Kind == contract.KindNet || st.Kind == contract.KindStorage {
			got = append(got, st)
		}
	}
	want := []Status{
		{Kind: "net", Name: "x", Path: netPath, Protocol: 1, SHA256: hexSum(sumNet), Health: HealthHealthy, PID: netPID(t, st)},
		{Kind: "storage", Name: "uncatalogued", Path: filepath.Join(e.dir, "dcos-storage-uncatalogued"), Health: HealthRefused},
		{Kind: "storage", Name: "y", Path: storagePath, Protocol: 1, SHA256: hexSum(sumStorage), Health: HealthHealthy, PID: pid("storage", "y")},
	}
	if len(got) != len(want) {
		t.Fatalf("Status = %+v, want %d net and storage rows", got, len(want))
	}
	for i := range want {
		got[i].LastError = ""
		if got[i] != want[i] {
			t.Errorf("Status[%d] = %+v\nwant        %+v", i, got[i], want[i])
		}
	}
	if p := pid("storage", "y"); p == 0 || p == pid("net", "x") || p == pid("driver", "d") {
		t.Errorf("storage plugin's pid %d, want a process of its own", p)
	}

	// Unknown names list the plugins of the kind asked for; refused ones
	// say why.
	tests := []struct {
		name    string
		lookup  func() error
		wantErr error
		want    string
	}{
		{"Net(nope)", func() error { _, err := h.Net("nope"); return err }, ErrUnknownPlugin, `no net plugin "nope" (there are: x)`},
		{"Net(d)", func() error { _, err := h.Net("d"); return err }, ErrUnknownPlugin, "there are: x"},
		{"Storage(x)", func() error { _, err := h.Storage("x"); return err }, ErrUnknownPlugin, `no storage plugin "x" (there are: y)`},
		{"Driver(x)", func() error { _, err := h.Driver("x"); return err }, ErrUnknownPlugin, "there are: d"},
		{"Isolator(x)", func() error { _, err := h.Isolator("x"); return err }, ErrUnknownPlugin, "there are: none"},
		{"Storage(uncatalogued)", func() error { _, err := h.Storage("uncatalogued"); return err }, ErrRefused, "not in the catalog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.lookup(); !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %v containing %q", err, tt.wantErr, tt.want)
			}
		})
	}

	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Status(ctx, "c1"); !errors.Is(err, contract.ErrPluginExited) {
		t.Errorf("net Status after Close: err = %v, want ErrPluginExited", err)
	}
	if _, err := s.ListVolumes(ctx); !errors.Is(err, contract.ErrPluginExited) {
		t.Errorf("storage ListVolumes after Close: err = %v, want ErrPluginExited", err)
	}
}

func TestHost_NetRestartAfterKill(t *testing.T) {
	e := newEnv(t)
	e.install("dcos-net-x", true)
	h := e.start(e.config())
	ctx := context.Background()
	n, err := h.Net("x")
	if err != nil {
		t.Fatal(err)
	}
	st, err := n.Setup(ctx, hostPort("c1"))
	if err != nil {
		t.Fatal(err)
	}
	before := status(t, h, "net", "x")
	if before.PID == 0 || before.PID != netPID(t, st) {
		t.Fatalf("status = %+v, want the pid of the process that set up c1 (%d)", before, netPID(t, st))
	}
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-e.restarted:
		if got != "net/x" {
			t.Errorf("OnRestart(%s), want net/x", got)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("OnRestart not called")
	}

	// The same proxy reaches the new process, which knows nothing of c1
	// until the agent recovers it.
	if _, err := n.Status(ctx, "c1"); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("Status after restart: err = %v, want ErrTaskNotFound from the new process", err)
	}
	if err := n.Recover(ctx, []contract.NetworkStatus{*st}); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if got, err := n.Status(ctx, "c1"); err != nil || got.Ports[0] != st.Ports[0] {
		t.Errorf("Status after Recover = %+v, %v; want c1 as set up", got, err)
	}
	st2, err := n.Setup(ctx, hostPort("c2"))
	if err != nil {
		t.Fatalf("Setup after restart: %v", err)
	}
	after := status(t, h, "net", "x")
	if after.Restarts != 1 || after.Health != HealthHealthy || after.PID == before.PID || after.PID != netPID(t, st2) ||
		!strings.Contains(after.LastError, "exited unexpectedly: signal: killed") {
		t.Errorf("status after restart = %+v, want healthy, 1 restart, the new pid %d, LastError saying it was killed", after, netPID(t, st2))
	}
}

// TestHost_BuiltinGroupAllKinds checks that a built-in group may hold one
// plugin of each kind, served from one process.
func TestHost_BuiltinGroupAllKinds(t *testing.T) {
	e := newEnv(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.Dir = "" // built-ins only
	group := []string{exe, "plugin", "group"}
	for _, kind := range []string{contract.KindDriver, contract.KindNet, contract.KindStorage, contract.KindIsolator} {
		cfg.Builtins = append(cfg.Builtins, Builtin{Name: groupMembers[kind], Kind: kind, Cmd: group, Group: "builtin"})
	}
	h := e.start(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	// pids returns the pid of the process each member answers from, and
	// the pid of their Status rows; it fails t if the rows differ.
	pids := func(id string) (map[string]int, int) {
		t.Helper()
		got := map[string]int{}
		d, err := h.Driver("exec")
		if err != nil {
			t.Fatal(err)
		}
		fp, err := d.Fingerprint(ctx)
		if err != nil {
			t.Fatalf("driver: Fingerprint: %v", err)
		}
		got["driver"], _ = strconv.Atoi(fp.Attributes[fake.AttrPID])
		n, err := h.Net("bridge")
		if err != nil {
			t.Fatal(err)
		}
		st, err := n.Setup(ctx, hostPort(id))
		if err != nil {
			t.Fatalf("net: Setup: %v", err)
		}
		got["net"] = netPID(t, st)
		if want := filepath.Join(e.stateDir, "net-bridge"); st.Env[fake.AttrStateDir] != want {
			t.Errorf("net's state dir = %q, want %q", st.Env[fake.AttrStateDir], want)
		}
		iso, err := h.Isolator("cgroups")
		if err != nil {
			t.Fatal(err)
		}
		u, err := iso.Usage(ctx, id)
		if err != nil {
			t.Fatalf("isolator: Usage: %v", err)
		}
		got["isolator"] = int(u.PIDs)
		s, err := h.Storage("local")
		if err != nil {
			t.Fatal(err)
		}
		sb, err := s.PrepareSandbox(ctx, id, 0)
		if err != nil {
			t.Fatalf("storage: PrepareSandbox: %v", err)
		}
		if want := filepath.Join(e.stateDir, "storage-local", "sandboxes", id); sb.Path != want {
			t.Errorf("storage's sandbox = %q, want %q (in its state dir)", sb.Path, want)
		}
		rows := h.Status()
		if len(rows) != 4 {
			t.Fatalf("Status = %+v, want 4 rows", rows)
		}
		for _, r := range rows[1:] {
			if r.PID != rows[0].PID || r.Health != rows[0].Health || r.Restarts != rows[0].Restarts || r.Path != rows[0].Path {
				t.Errorf("group members' status differ:\n%+v\n%+v", rows[0], r)
			}
		}
		return got, rows[0].PID
	}

	got, pid := pids("c1")
	for kind, p := range got {
		if pid == 0 || p != pid {
			t.Errorf("%s answers from pid %d, status pid %d: want one process", kind, p, pid)
		}
	}
	members := []string{"driver/exec", "isolator/cgroups", "net/bridge", "storage/local"}
	var rows []string
	for _, s := range h.Status() {
		rows = append(rows, s.Kind+"/"+s.Name)
	}
	if !slices.Equal(rows, members) {
		t.Errorf("Status rows %q, want %q", rows, members)
	}

	// A SIGKILL restarts the process once; OnRestart is called for each
	// member and every proxy, the net driver's included, works again.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var restarted []string
	for len(restarted) < 4 {
		select {
		case r := <-e.restarted:
			restarted = append(restarted, r)
		case <-time.After(15 * time.Second):
			t.Fatalf("OnRestart calls: %q, want one per member", restarted)
		}
	}
	slices.Sort(restarted)
	if !slices.Equal(restarted, members) {
		t.Errorf("OnRestart calls: %q, want %q", restarted, members)
	}
	got, after := pids("c1") // the new process knows no c1: Setup succeeds
	for kind, p := range got {
		if after == 0 || after == pid || p != after {
			t.Errorf("after the kill: %s answers from pid %d, status pid %d (was %d): want one new process", kind, p, after, pid)
		}
	}
	if s := status(t, h, "net", "bridge"); s.Restarts != 1 || s.Health != HealthHealthy {
		t.Errorf("net status after the kill = %+v, want healthy, 1 restart", s)
	}
}
