package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/imagetest"
	"github.com/dcos-kernel/dcos/sdk/plugin"
)

// BenchmarkContainerStart chooses the container runtime by measuring it
// (issue 14): one container that runs `busybox true` in a Debian
// busybox-static root, started and waited for, either by the SDK's
// executor in container mode (its supervisor forks the task init, which
// sets up the namespaces and mounts, pivot_roots and execs the entrypoint:
// what the oci driver does) or by `runc run` of an OCI bundle over the
// same root (runc's default spec, no network namespace, as the driver's
// host-network tasks; runc also makes and removes the container's
// cgroups, which the executor is not asked to join here). crun, the other
// candidate, refuses this machine's hybrid cgroup mode ("cgroups in hybrid
// mode not supported"). Starts alternate; it reports each median and
// their ratio.
//
//	go test ./drivers/oci -run '^$' -bench ContainerStart -benchtime 50x
func BenchmarkContainerStart(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("containers need root")
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		b.Fatal("runc (Debian's runc package) is needed for the comparison: scripts/test installs it")
	}
	root := imagetest.DebianRootFS(b, "busybox-static")
	ex, err := plugin.NewExecutor(plugin.ExecutorConfig{StateDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ex.Close() })

	bundle := b.TempDir()
	if out, err := exec.Command(runc, "spec", "-b", bundle).CombinedOutput(); err != nil {
		b.Fatalf("runc spec: %v\n%s", err, out)
	}
	var spec map[string]any
	raw, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err == nil {
		err = json.Unmarshal(raw, &spec)
	}
	if err != nil {
		b.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["args"], proc["terminal"] = []string{"/bin/busybox", "true"}, false
	spec["root"] = map[string]any{"path": root, "readonly": true}
	linux := spec["linux"].(map[string]any)
	linux["namespaces"] = slices.DeleteFunc(linux["namespaces"].([]any), func(n any) bool { return n.(map[string]any)["type"] == "network" })
	if raw, err = json.Marshal(spec); err == nil {
		err = os.WriteFile(filepath.Join(bundle, "config.json"), raw, 0o644)
	}
	if err != nil {
		b.Fatal(err)
	}

	ctx := context.Background()
	sandbox := b.TempDir()
	var own, rc []time.Duration
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("c%d", i)
		start := time.Now()
		if _, err := ex.StartContainer(ctx, &plugin.TaskConfig{ID: id, Command: "/bin/busybox", Args: []string{"true"},
			Env: map[string]string{"PATH": defaultPath}, Isolation: &plugin.TaskIsolation{Sandbox: sandbox}},
			&plugin.Container{RootFS: root, ReadOnlyRoot: true, Hostname: id}); err != nil {
			b.Fatal(err)
		}
		res, err := ex.WaitTask(ctx, id)
		if err != nil || !res.Successful() {
			b.Fatalf("executor: %+v, %v", res, err)
		}
		own = append(own, time.Since(start))
		b.StopTimer()
		if err := ex.DestroyTask(ctx, id, true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		start = time.Now()
		if out, err := exec.Command(runc, "--root", filepath.Join(bundle, "state"), "run", "-b", bundle, id).CombinedOutput(); err != nil {
			b.Fatalf("runc run: %v\n%s", err, out)
		}
		rc = append(rc, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(own)
	slices.Sort(rc)
	b.ReportMetric(float64(own[len(own)/2].Microseconds())/1000, "executor-p50-ms")
	b.ReportMetric(float64(rc[len(rc)/2].Microseconds())/1000, "runc-p50-ms")
	b.ReportMetric(float64(rc[len(rc)/2])/float64(own[len(own)/2]), "runc/executor")
}
