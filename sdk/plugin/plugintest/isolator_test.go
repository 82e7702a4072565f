package plugintest_test

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	sdkplugin "github.com/dcos-kernel/dcos/sdk/plugin"
	"github.com/dcos-kernel/dcos/sdk/plugin/plugintest"
)

func TestIsolator_Lifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iso := plugintest.StartIsolator(t, testIsolator, plugintest.Options{})

	proc := exec.Command("sleep", "30")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Process.Kill(); _ = proc.Wait() })

	if err := iso.Isolate(ctx, "c1", proc.Process.Pid); !errors.Is(err, sdkplugin.ErrTaskNotFound) {
		t.Errorf("Isolate before Prepare: err = %v, want ErrTaskNotFound", err)
	}
	li, err := iso.Prepare(ctx, "c1", sdkplugin.Resources{CPUs: 0.5, MemBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if li.Env["TEST_ISOLATOR"] != "c1" {
		t.Errorf("Prepare launch info = %+v, want env TEST_ISOLATOR=c1", li)
	}
	if err := iso.Isolate(ctx, "c1", proc.Process.Pid); err != nil {
		t.Fatal(err)
	}
	u, err := iso.Usage(ctx, "c1")
	if err != nil || u.MemoryRSSBytes == 0 {
		t.Fatalf("Usage = %+v, %v", u, err)
	}

	if _, err := iso.Watch(ctx, "nope"); !errors.Is(err, sdkplugin.ErrTaskNotFound) {
		t.Errorf("Watch unknown: err = %v, want ErrTaskNotFound", err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	lims, err := iso.Watch(wctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if err := iso.Update(ctx, "c1", sdkplugin.Resources{CPUs: 0.5, MemBytes: 1}); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lims:
		if l.ContainerID != "c1" || l.Reason != sdkplugin.LimitationOOM || l.Message == "" || l.At.IsZero() {
			t.Errorf("limitation = %+v, want an OOM of c1", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no limitation 5s after Update below usage")
	}

	for i := range 2 {
		if err := iso.Cleanup(ctx, "c1"); err != nil {
			t.Errorf("Cleanup #%d: %v", i+1, err)
		}
	}
	select {
	case _, ok := <-lims:
		if ok {
			t.Error("Watch: got a limitation after Cleanup, want the channel closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch channel still open 5s after Cleanup")
	}

	if err := iso.Recover(ctx, []sdkplugin.ContainerState{{ContainerID: "c2", PID: proc.Process.Pid}}); err != nil {
		t.Fatal(err)
	}
	if u, err := iso.Usage(ctx, "c2"); err != nil || u.MemoryRSSBytes == 0 {
		t.Errorf("Usage after Recover = %+v, %v", u, err)
	}
}
