package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	plugin "github.com/hashicorp/go-plugin"

	"github.com/dcos-kernel/dcos/agent"
	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// cacheDriver is a task driver that runs no tasks but holds an image
// cache, as the oci driver will: served over the real contract gRPC glue,
// it is what the agent's image reporting talks to.
type cacheDriver struct {
	mu      sync.Mutex
	images  map[string]*contract.Image
	removes []string // RemoveImage calls, in order
}

var (
	_ contract.Driver      = (*cacheDriver)(nil)
	_ contract.ImageDriver = (*cacheDriver)(nil)
)

func (d *cacheDriver) ListImages(context.Context) ([]*contract.Image, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*contract.Image
	for _, im := range d.images {
		cp := *im
		out = append(out, &cp)
	}
	return out, nil
}

func (d *cacheDriver) RemoveImage(_ context.Context, ref string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removes = append(d.removes, ref)
	im, ok := d.images[ref]
	switch {
	case !ok:
		return fmt.Errorf("remove image %s: %w", ref, contract.ErrImageNotFound)
	case im.Tasks > 0:
		return fmt.Errorf("remove image %s: %d tasks use it: %w", ref, im.Tasks, contract.ErrConflict)
	}
	delete(d.images, ref)
	return nil
}

func (d *cacheDriver) removeCalls() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.removes)
}

func (d *cacheDriver) Capabilities(context.Context) (*contract.Capabilities, error) {
	return &contract.Capabilities{FSIsolation: contract.FSIsolationImage}, nil
}
func (d *cacheDriver) Fingerprint(context.Context) (*contract.Fingerprint, error) {
	return &contract.Fingerprint{Health: contract.HealthHealthy}, nil
}
func (d *cacheDriver) StartTask(context.Context, *contract.TaskConfig) (*contract.TaskHandle, error) {
	return nil, fmt.Errorf("start task: %w", contract.ErrNotSupported)
}
func (d *cacheDriver) WaitTask(_ context.Context, id string) (*contract.ExitResult, error) {
	return nil, fmt.Errorf("task %s: %w", id, contract.ErrTaskNotFound)
}
func (d *cacheDriver) StopTask(_ context.Context, id string, _ time.Duration, _ string) error {
	return fmt.Errorf("task %s: %w", id, contract.ErrTaskNotFound)
}
func (d *cacheDriver) DestroyTask(context.Context, string, bool) error { return nil }
func (d *cacheDriver) InspectTask(_ context.Context, id string) (*contract.TaskStatus, error) {
	return nil, fmt.Errorf("task %s: %w", id, contract.ErrTaskNotFound)
}
func (d *cacheDriver) TaskStats(_ context.Context, id string) (*contract.TaskUsage, error) {
	return nil, fmt.Errorf("task %s: %w", id, contract.ErrTaskNotFound)
}
func (d *cacheDriver) SignalTask(_ context.Context, id string, _ string) error {
	return fmt.Errorf("task %s: %w", id, contract.ErrTaskNotFound)
}
func (d *cacheDriver) RecoverTask(context.Context, *contract.TaskHandle) error {
	return fmt.Errorf("recover task: %w", contract.ErrNotSupported)
}

// plainDriver is cacheDriver's Driver part only: no images.
type plainDriver struct{ contract.Driver }

// imagePlugins serves the agent two drivers over real gRPC connections
// (go-plugin's in-process test connection): "oci" with an image cache and
// "exec" without.
type imagePlugins struct {
	drivers map[string]contract.Driver
}

func newImagePlugins(t *testing.T, cache *cacheDriver) *imagePlugins {
	t.Helper()
	p := &imagePlugins{drivers: map[string]contract.Driver{}}
	for name, impl := range map[string]contract.Driver{"oci": cache, "exec": plainDriver{cache}} {
		client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{contract.KindDriver: &contract.DriverPlugin{Impl: impl}})
		t.Cleanup(func() { client.Close() })
		raw, err := client.Dispense(contract.KindDriver)
		if err != nil {
			t.Fatal(err)
		}
		p.drivers[name] = raw.(contract.Driver)
	}
	return p
}

func (p *imagePlugins) Driver(name string) (contract.Driver, error) {
	if d, ok := p.drivers[name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("no driver %q", name)
}
func (p *imagePlugins) Isolator(name string) (contract.Isolator, error) {
	return nil, fmt.Errorf("no isolator %q", name)
}
func (p *imagePlugins) Net(name string) (contract.NetDriver, error) {
	return nil, fmt.Errorf("no net driver %q", name)
}
func (p *imagePlugins) Info() []*syscallsv1.PluginInfo {
	return []*syscallsv1.PluginInfo{
		{Name: "exec", Kind: "driver", Protocol: 1, Health: "healthy"},
		{Name: "oci", Kind: "driver", Protocol: 1, Health: "healthy"},
	}
}

// TestAgent_Images runs an agent against a real kernel: it reports its
// image driver's images (ListAgents shows them with their driver), an
// operator's RemoveImage removes an unused image from the driver and the
// list, and an image in use is refused by the driver, kept and still
// listed while the agent carries on.
func TestAgent_Images(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := kerneltest.Start(t, kerneltest.Options{Listener: ln, Kernel: func(c *kernel.Config) { c.HeartbeatInterval = 100 * time.Millisecond }})
	ops := kclient.New(srv.URL, kerneltest.OperatorToken)

	pulled := time.Unix(1_700_000_000, 0).UTC()
	const (
		busy, busyDigest = "127.0.0.1:5000/busy:1", "sha256:0000000000000000000000000000000000000000000000000000000000000001"
		idle, idleDigest = "127.0.0.1:5000/idle:1", "sha256:0000000000000000000000000000000000000000000000000000000000000002"
	)
	cache := &cacheDriver{images: map[string]*contract.Image{
		busy: {Ref: busy, Digest: busyDigest, SizeBytes: 5 << 20, Tasks: 1, Pulled: pulled, LastUsed: pulled.Add(time.Hour)},
		idle: {Ref: idle, Digest: idleDigest, SizeBytes: 1 << 20, Pulled: pulled},
	}}
	a, err := agent.New(agent.Config{
		KernelURL: srv.URL, Token: kerneltest.AgentToken, DataDir: t.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Plugins: newImagePlugins(t, cache),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// listed waits until the kernel lists exactly want for the agent and
	// returns its images.
	listed := func(want ...string) []*syscallsv1.ImageInfo {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var last []string
		for time.Now().Before(deadline) {
			resp, err := ops.ListAgents(context.Background(), connect.NewRequest(&syscallsv1.ListAgentsRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range resp.Msg.GetAgents() {
				last = nil
				for _, im := range g.GetImages() {
					last = append(last, im.GetRef())
				}
				if slices.Equal(last, want) {
					return g.GetImages()
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("kernel lists images %v, want %v", last, want)
		return nil
	}

	ims := listed(busy, idle)
	if b := ims[0]; b.GetDriver() != "oci" || b.GetDigest() != busyDigest || b.GetSizeBytes() != 5<<20 || b.GetTasks() != 1 ||
		!b.GetPulled().AsTime().Equal(pulled) || !b.GetLastUsed().AsTime().Equal(pulled.Add(time.Hour)) {
		t.Errorf("busy image = %v, want the driver's fields and driver oci", b)
	}
	if ims[1].GetLastUsed() != nil {
		t.Errorf("idle image last_used = %v, want unset (never used)", ims[1].GetLastUsed())
	}

	// An unused image, named by digest: removed by its reference.
	resp, err := ops.RemoveImage(context.Background(), connect.NewRequest(&syscallsv1.RemoveImageRequest{Ref: idleDigest}))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.Msg.GetAgentIds(), []string{a.ID()}) {
		t.Errorf("RemoveImage agent_ids = %v, want [%s]", resp.Msg.GetAgentIds(), a.ID())
	}
	listed(busy)
	if got := cache.removeCalls(); !slices.Equal(got, []string{idle}) {
		t.Errorf("driver RemoveImage calls = %v, want [%s]", got, idle)
	}

	// An image in use: the driver refuses, the agent keeps going and the
	// image stays listed.
	if _, err := ops.RemoveImage(context.Background(), connect.NewRequest(&syscallsv1.RemoveImageRequest{AgentId: a.ID(), Ref: busy})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(cache.removeCalls()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("driver RemoveImage calls = %v, want the busy image's too", cache.removeCalls())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := cache.removeCalls(); got[1] != busy {
		t.Errorf("driver RemoveImage calls = %v, want %s second", got, busy)
	}
	// A new pull shows up: the agent still reports after the refusal.
	cache.mu.Lock()
	cache.images[idle] = &contract.Image{Ref: idle, Digest: idleDigest, Pulled: pulled}
	cache.mu.Unlock()
	listed(busy, idle)
}
