package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/klauspost/compress/gzip"

	"github.com/dcos-kernel/dcos/internal/imagetest"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// The oci driver's benchmarks (issue 14, docs/benchmarks.md "Container
// images"). They run real binaries (dcosd dev with the oci driver), a real
// registry on 127.0.0.1 and Debian's nginx assembled from its packages.

// nginxOnDev starts a registry with the nginx image and dcosd dev with the
// oci driver; the returned client is the operator's.
func nginxOnDev(b *testing.B) (*env, syscallsv1connect.KernelClient, *imagetest.Registry, string) {
	reg := imagetest.StartRegistry(b)
	ref, _ := reg.PushDir(b, "nginx:test", imagetest.NginxRootFS(b), imagetest.Config{
		Entrypoint: imagetest.NginxEntrypoint, Env: imagetest.NginxEnv,
		ExposedPorts: []string{"80/tcp"}, StopSignal: imagetest.NginxStopSignal})
	e := newEnv(b)
	e.startDev("--resources", "cpus=64,mem=64Gi", "--image-driver", "oci")
	return e, e.op(), reg, ref
}

// untilHTTP200 polls url every millisecond until it answers 200.
func untilHTTP200(b *testing.B, url string) {
	deadline := time.Now().Add(waitTimeout)
	for {
		if code, _, err := httpGet(url); err == nil && code == 200 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s never answered 200", url)
		}
		time.Sleep(time.Millisecond)
	}
}

// untilRefused waits until nothing listens on url.
func untilRefused(b *testing.B, url string) {
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, _, err := httpGet(url); err != nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s still answers", url)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// launchNginx launches nginx (host network: it listens on port 80) in a
// new allocation and returns the allocation and the launch time.
func launchNginx(b *testing.B, c syscallsv1connect.KernelClient, ref string) (*pb.Allocation, time.Time) {
	alloc := allocateOne(b, c, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.5, MemBytes: 64 * mi}})
	start := time.Now()
	_, err := c.Launch(context.Background(), connect.NewRequest(&pb.LaunchRequest{AllocationId: alloc.GetId(),
		Driver: "oci", DriverConfig: fmt.Sprintf(`{"image":%q}`, ref)}))
	if err != nil {
		b.Fatal(err)
	}
	return alloc, start
}

// podman runs Debian's podman with its storage in dir (nothing of the
// machine's own container storage is touched). It runs runc (Debian's
// default, crun, refuses this machine's hybrid cgroups) with limits this
// machine's root may set (it lacks CAP_SYS_RESOURCE: podman's default
// nofile and nproc limits are refused).
func podman(b *testing.B, dir string, args ...string) {
	cmd := exec.Command("podman", append([]string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--cgroup-manager", "cgroupfs", "--events-backend", "file", "--log-level", "error"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// BenchmarkOCINginxCached: the nginx image is cached on the node; from the
// Launch syscall to nginx answering HTTP 200 on port 80 (host network),
// then, side by side in the same run, from `podman run -d` (Debian's
// podman, the same image pulled from the same registry beforehand, host
// network) to HTTP 200. Each start alternates with the other's, and each
// server is stopped (untimed) before the next starts.
//
//	go test ./e2e -run '^$' -bench OCINginxCached -benchtime 30x
func BenchmarkOCINginxCached(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the oci driver needs root")
	}
	_, c, _, ref := nginxOnDev(b)
	const url = "http://127.0.0.1:80/"
	pdir := b.TempDir()
	// podman keeps a blob cache and network configs outside --root: the
	// ones it creates are removed afterwards.
	for _, d := range []string{"/var/lib/containers", "/run/containers"} {
		if _, err := os.Stat(d); os.IsNotExist(err) {
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	b.Cleanup(func() {
		exec.Command("podman", "--root", filepath.Join(pdir, "root"), "--runroot", filepath.Join(pdir, "run"), "rm", "-af").Run()
		exec.Command("podman", "--root", filepath.Join(pdir, "root"), "--runroot", filepath.Join(pdir, "run"), "system", "reset", "-f").Run()
		unmountUnder(b, pdir)
	})
	podman(b, pdir, "pull", "--tls-verify=false", ref)
	// Warm-up (untimed): the image into dcos's cache.
	a, _ := launchNginx(b, c, ref)
	untilHTTP200(b, url)
	revoke(b, c, a.GetId())
	untilRefused(b, url)

	var dcos, pod []time.Duration
	b.ResetTimer()
	for i := range b.N {
		a, start := launchNginx(b, c, ref)
		untilHTTP200(b, url)
		dcos = append(dcos, time.Since(start))
		b.StopTimer()
		revoke(b, c, a.GetId())
		untilRefused(b, url)
		b.StartTimer()

		name := fmt.Sprintf("bench%d", i)
		start = time.Now()
		podman(b, pdir, "run", "-d", "--rm", "--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--runtime", "runc", "--name", name, ref)
		untilHTTP200(b, url)
		pod = append(pod, time.Since(start))
		b.StopTimer()
		podman(b, pdir, "rm", "-f", name)
		untilRefused(b, url)
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(dcos)
	slices.Sort(pod)
	b.ReportMetric(ms(percentile(dcos, 50)), "dcos-p50-ms")
	b.ReportMetric(ms(percentile(dcos, 99)), "dcos-p99-ms")
	b.ReportMetric(ms(percentile(pod, 50)), "podman-p50-ms")
	b.ReportMetric(ms(percentile(pod, 99)), "podman-p99-ms")
	b.ReportMetric(float64(percentile(pod, 50))/float64(percentile(dcos, 50)), "podman/dcos-p50")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkOCINginxCold: the nginx image is not on the node; from the
// Launch syscall to HTTP 200 (pull from the loopback registry, verify,
// unpack, mount, start), against, in the same run, just decompressing the
// image's layer blobs (read from the registry's storage, gunzip to
// io.Discard with the decompressor the driver uses). Between iterations
// the image is removed from the node (untimed).
//
//	go test ./e2e -run '^$' -bench OCINginxCold -benchtime 10x
func BenchmarkOCINginxCold(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the oci driver needs root")
	}
	e, c, reg, ref := nginxOnDev(b)
	const url = "http://127.0.0.1:80/"
	blobs := reg.LayerDigests(b, ref)
	var cold, unzip []time.Duration
	b.ResetTimer()
	for range b.N {
		a, start := launchNginx(b, c, ref)
		untilHTTP200(b, url)
		cold = append(cold, time.Since(start))
		b.StopTimer()
		revoke(b, c, a.GetId())
		untilRefused(b, url)
		e.eventually("the image unused", func() (bool, string) {
			out := e.mustCtl("image", "ls", "-o", "json")
			return strings.Contains(out, ref) && !strings.Contains(out, `"tasks"`), out
		})
		e.mustCtl("image", "rm", ref)
		b.StartTimer()

		start = time.Now()
		for _, d := range blobs {
			f, err := os.Open(reg.BlobPath(d))
			if err != nil {
				b.Fatal(err)
			}
			zr, err := gzip.NewReader(f)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, zr); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		unzip = append(unzip, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(cold)
	slices.Sort(unzip)
	b.ReportMetric(ms(percentile(cold, 50)), "cold-p50-ms")
	b.ReportMetric(ms(percentile(unzip, 50)), "gunzip-p50-ms")
	b.ReportMetric(float64(percentile(cold, 50))/float64(percentile(unzip, 50)), "cold/gunzip")
}

// BenchmarkOCIOverhead: per task, an oci task (busybox's sleep from an
// image) against an exec task (the node's sleep), launched alternately on
// one dcosd dev: Launch → RUNNING (on a Watch), and the proportional set
// size of the task's processes once running.
//
//	go test ./e2e -run '^$' -bench OCIOverhead -benchtime 30x
func BenchmarkOCIOverhead(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the oci driver needs root")
	}
	reg := imagetest.StartRegistry(b)
	ref, _ := reg.PushDir(b, "busybox:test", imagetest.DebianRootFS(b, "busybox-static"), imagetest.Config{
		Entrypoint: []string{"/bin/busybox"}, Env: imagetest.NginxEnv})
	e := newEnv(b)
	e.startDev("--resources", "cpus=64,mem=64Gi", "--image-driver", "oci")
	c := e.op()
	w := e.watch(c, listAgents(b, c).GetRevision())
	kinds := []struct {
		name string
		req  func(alloc string) *pb.LaunchRequest
	}{
		{"exec", func(a string) *pb.LaunchRequest {
			return &pb.LaunchRequest{AllocationId: a, Command: "sleep", Args: []string{"600"}}
		}},
		{"oci", func(a string) *pb.LaunchRequest {
			return &pb.LaunchRequest{AllocationId: a, Driver: "oci", DriverConfig: fmt.Sprintf(`{"image":%q}`, ref), Args: []string{"sleep", "600"}}
		}},
	}
	durs := map[string][]time.Duration{}
	psses := map[string][]int{}
	launch := func(k int) {
		b.StopTimer()
		alloc := allocateOne(b, c, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.1, MemBytes: 16 * mi}})
		b.StartTimer()
		start := time.Now()
		res, err := c.Launch(context.Background(), connect.NewRequest(kinds[k].req(alloc.GetId())))
		if err != nil {
			b.Fatal(err)
		}
		id := res.Msg.GetTask().GetId()
		ev := w.waitFor(b, "RUNNING of "+id, taskState(id, pb.TaskState_TASK_STATE_RUNNING))
		durs[kinds[k].name] = append(durs[kinds[k].name], time.Since(start))
		b.StopTimer()
		total := 0
		for _, pid := range groupMembers(int(ev.GetTask().GetPid())) {
			total += pss(pid)
		}
		psses[kinds[k].name] = append(psses[kinds[k].name], total)
		revoke(b, c, alloc.GetId())
		w.waitFor(b, "KILLED of "+id, taskState(id, pb.TaskState_TASK_STATE_KILLED))
		b.StartTimer()
	}
	launch(1) // warm-up: the image into the cache
	durs, psses = map[string][]time.Duration{}, map[string][]int{}
	b.ResetTimer()
	for i := range b.N {
		launch(i % 2)
		launch((i + 1) % 2)
	}
	b.StopTimer()
	for _, k := range kinds {
		d := durs[k.name]
		slices.Sort(d)
		p := psses[k.name]
		slices.Sort(p)
		b.ReportMetric(ms(percentile(d, 50)), k.name+"-start-p50-ms")
		b.ReportMetric(float64(p[len(p)/2]), k.name+"-pss-KiB")
	}
}
