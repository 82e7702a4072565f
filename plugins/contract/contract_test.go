package contract

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	plugin "github.com/hashicorp/go-plugin"
)

// fakeDriver is an in-memory Driver for testing the glue.
type fakeDriver struct {
	mu    sync.Mutex
	tasks map[string]*TaskConfig
}

var _ Driver = (*fakeDriver)(nil)

func (d *fakeDriver) Capabilities(context.Context) (*Capabilities, error) {
	return &Capabilities{SendSignals: true, FSIsolation: FSIsolationNone, RecoverTasks: true}, nil
}
func (d *fakeDriver) Fingerprint(context.Context) (*Fingerprint, error) {
	return &Fingerprint{Health: HealthHealthy, HealthDescription: "ok", Attributes: map[string]string{"driver.fake": "1"}}, nil
}
func (d *fakeDriver) StartTask(_ context.Context, cfg *TaskConfig) (*TaskHandle, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tasks[cfg.ID] = cfg
	return &TaskHandle{Version: HandleVersion, Config: cfg, State: TaskStateRunning, DriverState: []byte("pid=1")}, nil
}
func (d *fakeDriver) get(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tasks[id]; !ok {
		return fmt.Errorf("task %q: %w", id, ErrTaskNotFound)
	}
	return nil
}
func (d *fakeDriver) WaitTask(_ context.Context, id string) (*ExitResult, error) {
	if err := d.get(id); err != nil {
		return nil, err
	}
	return &ExitResult{ExitCode: 3, Signal: 15}, nil
}
func (d *fakeDriver) StopTask(_ context.Context, id string, _ time.Duration, _ string) error {
	return d.get(id)
}
func (d *fakeDriver) DestroyTask(_ context.Context, id string, _ bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.tasks, id)
	return nil
}
func (d *fakeDriver) InspectTask(_ context.Context, id string) (*TaskStatus, error) {
	if err := d.get(id); err != nil {
		return nil, err
	}
	return &TaskStatus{ID: id, State: TaskStateRunning, StartedAt: time.Unix(100, 0).UTC()}, nil
}
func (d *fakeDriver) TaskStats(_ context.Context, id string) (*TaskUsage, error) {
	return &TaskUsage{Timestamp: time.Unix(200, 0).UTC(), CPUUserNanos: 7, MemoryRSSBytes: 4096}, d.get(id)
}
func (d *fakeDriver) SignalTask(context.Context, string, string) error {
	return fmt.Errorf("signal: %w", ErrNotSupported)
}
func (d *fakeDriver) RecoverTask(_ context.Context, h *TaskHandle) error {
	if h.Version != HandleVersion {
		return fmt.Errorf("handle v%d: %w", h.Version, ErrHandleVersion)
	}
	return nil
}

// fakeIsolator is an in-memory Isolator for testing the glue.
type fakeIsolator struct {
	mu        sync.Mutex
	prepared  map[string]Resources
	recovered []ContainerState
}

var _ Isolator = (*fakeIsolator)(nil)

func (i *fakeIsolator) Prepare(_ context.Context, id string, l Resources) (*LaunchInfo, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.prepared[id] = l
	return &LaunchInfo{Cgroups: []string{"/sys/fs/cgroup/memory/" + id}, Env: map[string]string{"ISO": id}}, nil
}
func (i *fakeIsolator) Isolate(_ context.Context, id string, pid int) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if _, ok := i.prepared[id]; !ok {
		return fmt.Errorf("container %q: %w", id, ErrTaskNotFound)
	}
	return nil
}
func (i *fakeIsolator) Update(ctx context.Context, id string, l Resources) error {
	_, err := i.Prepare(ctx, id, l)
	return err
}
func (i *fakeIsolator) Usage(context.Context, string) (*TaskUsage, error) {
	return &TaskUsage{MemoryRSSBytes: 1 << 20, PIDs: 2}, nil
}
func (i *fakeIsolator) Watch(ctx context.Context, id string) (<-chan Limitation, error) {
	ch := make(chan Limitation, 1)
	ch <- Limitation{ContainerID: id, Reason: LimitationOOM, Message: "memory limit 64Mi exceeded", At: time.Unix(300, 0).UTC()}
	close(ch)
	return ch, nil
}
func (i *fakeIsolator) Cleanup(context.Context, string) error { return nil }
func (i *fakeIsolator) Recover(_ context.Context, cs []ContainerState) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.recovered = cs
	return nil
}

// dispense serves impls in-process over a real gRPC connection.
func dispense(t *testing.T, kind string, p plugin.Plugin) any {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{kind: p})
	_ = server // client.Close stops it through the controller
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(kind)
	if err != nil {
		t.Fatalf("dispense: %v", err)
	}
	return raw
}

func TestDriverClient_RoundTrip(t *testing.T) {
	ctx := context.Background()
	d := dispense(t, KindDriver, &DriverPlugin{Impl: &fakeDriver{tasks: map[string]*TaskConfig{}}}).(Driver)

	caps, err := d.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&Capabilities{SendSignals: true, FSIsolation: FSIsolationNone, RecoverTasks: true}, caps); diff != "" {
		t.Errorf("Capabilities (-want +got):\n%s", diff)
	}
	fp, err := d.Fingerprint(ctx)
	if err != nil || fp.Health != HealthHealthy || fp.Attributes["driver.fake"] != "1" {
		t.Errorf("Fingerprint = %+v, %v", fp, err)
	}
	cfg := &TaskConfig{ID: "t1", Name: "web", Command: "sleep", Args: []string{"30"}, Env: map[string]string{"A": "b"},
		Resources: Resources{CPUs: 0.5, MemBytes: 64 << 20, PIDs: 10}, DriverConfig: []byte(`{"nice":5}`),
		User: "alice", Isolation: &TaskIsolation{UID: 1000, GID: 1001, Groups: []uint32{27}, HiddenPaths: []string{"/var/lib/dcos"},
			Sandbox: "/var/lib/dcos/agent/sandboxes/t1", SharePID: true}}
	h, err := d.StartTask(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := &TaskHandle{Version: HandleVersion, Config: cfg, State: TaskStateRunning, DriverState: []byte("pid=1")}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("StartTask handle (-want +got):\n%s", diff)
	}
	if r, err := d.WaitTask(ctx, "t1"); err != nil || r.ExitCode != 3 || r.Signal != 15 || r.Successful() {
		t.Errorf("WaitTask = %+v, %v", r, err)
	}
	if st, err := d.InspectTask(ctx, "t1"); err != nil || st.State != TaskStateRunning || !st.StartedAt.Equal(time.Unix(100, 0)) || !st.CompletedAt.IsZero() {
		t.Errorf("InspectTask = %+v, %v", st, err)
	}
	if u, err := d.TaskStats(ctx, "t1"); err != nil || u.CPUUserNanos != 7 || u.MemoryRSSBytes != 4096 {
		t.Errorf("TaskStats = %+v, %v", u, err)
	}
	if err := d.StopTask(ctx, "t1", time.Second, "SIGTERM"); err != nil {
		t.Errorf("StopTask: %v", err)
	}
	if err := d.RecoverTask(ctx, h); err != nil {
		t.Errorf("RecoverTask: %v", err)
	}
	for range 2 {
		if err := d.DestroyTask(ctx, "t1", true); err != nil {
			t.Errorf("DestroyTask: %v", err)
		}
	}
}

func TestDriverClient_Errors(t *testing.T) {
	ctx := context.Background()
	d := dispense(t, KindDriver, &DriverPlugin{Impl: &fakeDriver{tasks: map[string]*TaskConfig{}}}).(Driver)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"inspect unknown", func() error { _, err := d.InspectTask(ctx, "nope"); return err }, ErrTaskNotFound},
		{"wait unknown", func() error { _, err := d.WaitTask(ctx, "nope"); return err }, ErrTaskNotFound},
		{"signal unsupported", func() error { return d.SignalTask(ctx, "t", "SIGHUP") }, ErrNotSupported},
		{"recover future handle", func() error { return d.RecoverTask(ctx, &TaskHandle{Version: 99}) }, ErrHandleVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestIsolatorClient_RoundTrip(t *testing.T) {
	ctx := context.Background()
	impl := &fakeIsolator{prepared: map[string]Resources{}}
	iso := dispense(t, KindIsolator, &IsolatorPlugin{Impl: impl}).(Isolator)

	limits := Resources{CPUs: 0.5, MemBytes: 64 << 20, PIDs: 32, CPUIdle: true, CPUSet: "1-3,5"}
	li, err := iso.Prepare(ctx, "c1", limits)
	if err != nil {
		t.Fatal(err)
	}
	if want := (&LaunchInfo{Cgroups: []string{"/sys/fs/cgroup/memory/c1"}, Env: map[string]string{"ISO": "c1"}}); !reflect.DeepEqual(li, want) {
		t.Errorf("Prepare = %+v, want %+v", li, want)
	}
	if got := impl.prepared["c1"]; got != limits {
		t.Errorf("prepared limits = %+v, want %+v", got, limits)
	}
	if err := iso.Isolate(ctx, "c1", 1234); err != nil {
		t.Errorf("Isolate: %v", err)
	}
	if err := iso.Isolate(ctx, "c2", 1234); !errors.Is(err, ErrTaskNotFound) {
		t.Errorf("Isolate unknown: err = %v, want ErrTaskNotFound", err)
	}
	if err := iso.Update(ctx, "c1", Resources{CPUs: 1}); err != nil {
		t.Errorf("Update: %v", err)
	}
	if u, err := iso.Usage(ctx, "c1"); err != nil || u.MemoryRSSBytes != 1<<20 || u.PIDs != 2 {
		t.Errorf("Usage = %+v, %v", u, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := iso.Watch(wctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	var got []Limitation
	for l := range ch {
		got = append(got, l)
	}
	want := []Limitation{{ContainerID: "c1", Reason: LimitationOOM, Message: "memory limit 64Mi exceeded", At: time.Unix(300, 0).UTC()}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Watch (-want +got):\n%s", diff)
	}
	states := []ContainerState{{ContainerID: "c1", PID: 1234, Limits: limits}}
	if err := iso.Recover(ctx, states); err != nil {
		t.Errorf("Recover: %v", err)
	}
	if diff := cmp.Diff(states, impl.recovered); diff != "" {
		t.Errorf("recovered (-want +got):\n%s", diff)
	}
	for range 2 {
		if err := iso.Cleanup(ctx, "c1"); err != nil {
			t.Errorf("Cleanup: %v", err)
		}
	}
}

func TestClientError(t *testing.T) {
	err := ClientError("/p/drv", errors.New("incompatible API version with plugin. Plugin version: 2, Client versions: [1]"))
	if !errors.Is(err, ErrIncompatibleVersion) {
		t.Fatalf("err = %v, want ErrIncompatibleVersion", err)
	}
	const want = "plugin /p/drv speaks protocol version 2, this host speaks 1: use a plugin built for a version the host speaks, or upgrade the host: incompatible plugin protocol version"
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
	if err := ClientError("/p/drv", plugin.ErrChecksumsDoNotMatch); !errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		t.Errorf("checksum err = %v", err)
	}
}

func TestServeConfig(t *testing.T) {
	if _, err := ServeConfig(KindDriver, &fakeIsolator{}); err == nil {
		t.Error("ServeConfig(driver, isolator): want error")
	}
	if _, err := ServeConfig("gpu", &fakeDriver{}); err == nil {
		t.Error("ServeConfig(gpu): want error")
	}
	sc, err := ServeConfig(KindDriver, &fakeDriver{})
	if err != nil || sc.VersionedPlugins[ProtocolVersion][KindDriver] == nil {
		t.Errorf("ServeConfig = %+v, %v", sc, err)
	}
}
