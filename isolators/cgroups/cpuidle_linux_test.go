//go:build linux

package cgroups

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cg "github.com/dcos-kernel/dcos/internal/cgroups"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// TestIsolator_CPUIdle checks that Resources.CPUIdle makes the container's
// cpu cgroup idle (cpu.idle = 1), that a container without it is normal,
// and that Update moves a container between the classes.
func TestIsolator_CPUIdle(t *testing.T) {
	i := newIsolator(t)
	ctx := context.Background()
	cpuDir := func(id string) string {
		t.Helper()
		c, err := i.lookup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		p := c.task.Paths()
		if d, ok := p[cg.KeyCPU]; ok {
			return d
		}
		return p[cg.KeyUnified]
	}
	idleOf := func(id string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(cpuDir(id), "cpu.idle"))
		if os.IsNotExist(err) {
			t.Skip("kernel lacks cgroup cpu.idle (Linux >= 5.15): the idle class is not enforced here")
		}
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	for _, tt := range []struct {
		id   string
		res  contract.Resources
		want string
	}{
		{"normal", contract.Resources{CPUs: 0.5}, "0"},
		{"idle", contract.Resources{CPUs: 0.5, CPUIdle: true}, "1"},
	} {
		if _, err := i.Prepare(ctx, tt.id, tt.res); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := i.Cleanup(ctx, tt.id); err != nil {
				t.Error(err)
			}
		}()
		if got := idleOf(tt.id); got != tt.want {
			t.Errorf("%s: cpu.idle = %q, want %q", tt.id, got, tt.want)
		}
	}
	if err := i.Update(ctx, "normal", contract.Resources{CPUs: 0.5, CPUIdle: true}); err != nil {
		t.Fatal(err)
	}
	if got := idleOf("normal"); got != "1" {
		t.Errorf("after Update to idle: cpu.idle = %q, want 1", got)
	}
	if err := i.Update(ctx, "idle", contract.Resources{CPUs: 0.5}); err != nil {
		t.Fatal(err)
	}
	if got := idleOf("idle"); got != "0" {
		t.Errorf("after Update to normal: cpu.idle = %q, want 0", got)
	}
}
