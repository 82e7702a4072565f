package host

import (
	"context"
	"log/slog"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// TestPlugin_CurrentAllocs checks that finding the process a proxy call goes
// to allocates nothing while the plugin is up.
func TestPlugin_CurrentAllocs(t *testing.T) {
	var d contract.Driver = &driverProxy{} // any Driver will do
	pr := &process{inst: &instance{impls: map[string]any{"driver": d}}, changed: make(chan struct{})}
	p := &plugin{id: "driver/x", kind: "driver", proc: pr}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := get[contract.Driver](ctx, p, "capabilities"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("get allocates %v times per call, want 0", allocs)
	}
}

// BenchmarkProxy_Capabilities measures a trivial call through a driver's
// proxy, over real gRPC to a plugin process.
func BenchmarkProxy_Capabilities(b *testing.B) {
	e := newEnv(b)
	e.install("dcos-driver-bench", true)
	cfg := e.config()
	cfg.Logger = slog.New(slog.DiscardHandler)
	h := e.start(cfg)
	ctx := context.Background()
	d, err := h.Driver("bench")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := d.Capabilities(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
