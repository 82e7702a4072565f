package execdriver

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// BenchmarkStartTask starts `true` through the supervisor, waits for its
// exit and destroys it: the round trip a task start costs, fork and exec
// included.
func BenchmarkStartTask(b *testing.B) {
	for _, bc := range []struct {
		name    string
		cgroups bool
	}{{name: "plain"}, {name: "v1 memory cgroup", cgroups: true}} {
		b.Run(bc.name, func(b *testing.B) {
			d, _ := newDriver(b)
			var dirs []string
			if bc.cgroups {
				dir, _ := testCgroup(b, "/sys/fs/cgroup/memory", "memory")
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
				_, err := d.StartTask(ctx, &contract.TaskConfig{ID: id, Command: "true", Env: env, Cgroups: dirs})
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
