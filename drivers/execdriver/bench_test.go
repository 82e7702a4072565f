package execdriver

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// BenchmarkStartTask starts `true` through the supervisor, waits for its
// exit and destroys it: the round trip a task start costs, fork and exec
// included.
func BenchmarkStartTask(b *testing.B) {
	for _, bc := range []struct {
		name        string
		mount, ctrl string // cgroup hierarchy, if any
		isolated    bool
	}{
		{name: "plain"},
		{name: "v1 memory cgroup", mount: "/sys/fs/cgroup/memory", ctrl: "memory"},
		{name: "v2 cgroup", mount: "/sys/fs/cgroup/unified", ctrl: ""},
		{name: "isolated", isolated: true},
		{name: "isolated v1 memory cgroup", mount: "/sys/fs/cgroup/memory", ctrl: "memory", isolated: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.isolated && os.Geteuid() != 0 {
				b.Skip("task isolation needs root")
			}
			d, dir := newDriver(b)
			var iso *contract.TaskIsolation
			if bc.isolated {
				iso = &contract.TaskIsolation{UID: testUID, GID: testUID, Sandbox: dir, HiddenPaths: []string{"/root"}}
			}
			var dirs []string
			if bc.mount != "" {
				dir, _ := testCgroup(b, bc.mount, bc.ctrl)
				dirs = []string{dir}
			}
			ctx := context.Background()
			env := map[string]string{"PATH": testPath}
			start(b, d, &contract.TaskConfig{ID: "warm", Command: "true", Env: env}) // starts the supervisor
			wait(b, d, "warm")
			var starting time.Duration
			b.ResetTimer()
			for i := range b.N {
				id := "b" + strconv.Itoa(i)
				begin := time.Now()
				_, err := d.StartTask(ctx, &contract.TaskConfig{ID: id, Command: "true", Env: env, Cgroups: dirs, Isolation: iso})
				starting += time.Since(begin)
				if err != nil {
					b.Fatal(err)
				}
				if r, err := d.WaitTask(ctx, id); err != nil || !r.Successful() {
					b.Fatalf("WaitTask: %+v, %v", r, err)
				}
				if err := d.DestroyTask(ctx, id, false); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(starting.Nanoseconds())/float64(b.N), "start-ns/op")
		})
	}
}

// TestSupervisor_Memory starts 100 tasks and checks the one supervisor
// that holds them stays small (the reason for one supervisor per agent,
// not one per task: the budget is 60 MB for 100 tasks).
func TestSupervisor_Memory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 100 processes")
	}
	t.Parallel()
	d, dir := newDriver(t)
	env := map[string]string{"PATH": testPath}
	for i := range 100 {
		start(t, d, &contract.TaskConfig{ID: "m" + strconv.Itoa(i), Command: "sleep", Args: []string{"60"}, Env: env})
	}
	sup := supervisorPids(dir)
	if len(sup) != 1 {
		t.Fatalf("supervisors: %v", sup)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(sup[0]) + "/smaps_rollup")
	if err != nil {
		t.Skipf("no smaps_rollup: %v", err)
	}
	var private uint64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && (f[0] == "Private_Clean:" || f[0] == "Private_Dirty:") {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			private += n << 10
		}
	}
	t.Logf("supervisor private memory with 100 tasks: %.1f MiB", float64(private)/(1<<20))
	if private > 10<<20 && !raceEnabled {
		t.Errorf("supervisor private memory %d bytes, want under 10 MiB", private)
	}
	for i := range 100 {
		if err := d.StopTask(context.Background(), "m"+strconv.Itoa(i), time.Second, "SIGKILL"); err != nil {
			t.Fatal(err)
		}
	}
}
