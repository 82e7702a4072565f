package oci

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/imagetest"
	"github.com/dcos-kernel/dcos/sdk/plugin"
)

func TestMain(m *testing.M) {
	// The driver's executor re-executes the test binary as its supervisor.
	plugin.RunSupervisorIfAsked()
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the oci driver needs root (overlay mounts, namespaces)")
	}
}

// newDriver returns a driver on a fresh state dir, closed at cleanup.
func newDriver(t *testing.T, dir string) *Driver {
	t.Helper()
	d, err := New(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// taskConfig is what the agent would give the driver for an image task.
func taskConfig(t *testing.T, id, ref string, env map[string]string) *plugin.TaskConfig {
	sandbox := filepath.Join(t.TempDir(), "sandbox")
	if err := os.MkdirAll(sandbox, 0o755); err != nil {
		t.Fatal(err)
	}
	return &plugin.TaskConfig{ID: id, Name: id, Env: env, WorkDir: sandbox,
		DriverConfig: []byte(fmt.Sprintf(`{"image":%q}`, ref)),
		StdoutPath:   filepath.Join(sandbox, "stdout"), StderrPath: filepath.Join(sandbox, "stderr"),
		Isolation: &plugin.TaskIsolation{UID: 1900000001, GID: 1900000001, Sandbox: sandbox}}
}

func get(url string) (int, string, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func eventually(t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var ok bool
		if ok, last = f(); ok {
			return
		}
	}
	t.Fatalf("%s: not within 20s; last: %s", what, last)
}

// overlays returns the overlay mount points under dir.
func overlays(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 4 && strings.HasPrefix(fs[4], dir) {
			out = append(out, fs[4])
		}
	}
	return out
}

// The whole life of an image task: pulled, served, listed as in use,
// recovered by a new driver, destroyed with nothing left mounted, and its
// image removed once unused.
func TestDriver_ImageTaskLifecycle(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	reg := imagetest.StartRegistry(t)
	ref, digest := imagetest.StaticServerImage(t, reg)
	dir := t.TempDir()
	d := newDriver(t, dir)

	port := freePort(t)
	cfg := taskConfig(t, "t-1", ref, map[string]string{"PORT": strconv.Itoa(port), "PATH": "/host/bin"})
	h, err := d.StartTask(ctx, cfg)
	if err != nil {
		t.Fatalf("StartTask: %v", err)
	}
	cur := d // the driver that knows the task (a new one after recovery)
	t.Cleanup(func() { cur.DestroyTask(context.Background(), "t-1", true) })
	if h.PID <= 0 || h.State != plugin.TaskStateRunning {
		t.Fatalf("handle: pid %d state %v", h.PID, h.State)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	eventually(t, "the image's server answers", func() (bool, string) {
		code, body, err := get(url)
		return err == nil && code == 200 && body == imagetest.StaticBody, fmt.Sprint(code, body, err)
	})
	if n := len(overlays(t, dir)); n != 1 {
		t.Fatalf("%d overlay mounts under the state dir, want 1", n)
	}
	imgs, err := d.ListImages(ctx)
	if err != nil || len(imgs) != 1 || imgs[0].Digest != digest || imgs[0].Tasks != 1 || imgs[0].Ref != ref {
		t.Fatalf("ListImages = %+v, %v; want %s (%s) used by 1 task", imgs, err, ref, digest)
	}
	if err := d.RemoveImage(ctx, ref); !errors.Is(err, plugin.ErrConflict) {
		t.Fatalf("RemoveImage of an image in use: %v, want ErrConflict", err)
	}

	// A new driver (a restarted plugin) reattaches; the task kept serving.
	d.Close()
	d2 := newDriver(t, dir)
	cur = d2
	if err := d2.RecoverTask(ctx, h); err != nil {
		t.Fatalf("RecoverTask: %v", err)
	}
	if code, _, err := get(url); err != nil || code != 200 {
		t.Fatalf("after recovery: %d, %v", code, err)
	}
	st, err := d2.InspectTask(ctx, "t-1")
	if err != nil || st.State != plugin.TaskStateRunning {
		t.Fatalf("InspectTask after recovery: %+v, %v", st, err)
	}
	if err := d2.StopTask(ctx, "t-1", 2*time.Second, "SIGTERM"); err != nil {
		t.Fatalf("StopTask: %v", err)
	}
	if err := d2.DestroyTask(ctx, "t-1", true); err != nil {
		t.Fatalf("DestroyTask: %v", err)
	}
	if m := overlays(t, dir); len(m) != 0 {
		t.Fatalf("mounted after DestroyTask: %v", m)
	}
	if _, err := os.Stat(filepath.Join(dir, "tasks", "t-1")); !os.IsNotExist(err) {
		t.Fatalf("the task's files stayed: %v", err)
	}
	if err := d2.RemoveImage(ctx, ref); err != nil {
		t.Fatalf("RemoveImage of an unused image: %v", err)
	}
	if imgs, err := d2.ListImages(ctx); err != nil || len(imgs) != 0 {
		t.Fatalf("ListImages after RemoveImage = %+v, %v", imgs, err)
	}
	layers, _ := filepath.Glob(filepath.Join(dir, "images", "layers", "sha256", "*"))
	if len(layers) != 0 {
		t.Fatalf("layers left after RemoveImage: %v", layers)
	}
	if err := d2.RemoveImage(ctx, ref); !errors.Is(err, plugin.ErrImageNotFound) {
		t.Fatalf("RemoveImage again: %v, want ErrImageNotFound", err)
	}
}

// Bad images fail the start with a reason naming the cause, and leave
// nothing in the cache or mounted.
func TestDriver_BadImages(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	reg := imagetest.StartRegistry(t)
	ref, _ := imagetest.StaticServerImage(t, reg)
	corrupt, _ := reg.PushLayers(t, "corrupt:test", imagetest.Config{Entrypoint: []string{"/server"}},
		imagetest.Tar(t, imagetest.Entry{Name: "server", Body: "not a server", Mode: 0o755}))
	for _, l := range reg.LayerDigests(t, corrupt) {
		reg.CorruptBlob(t, l)
	}
	arm, _ := reg.PushOtherArch(t, "arm:test", "arm64")
	malformed := reg.PushMalformed(t, "malformed", "test")
	dir := t.TempDir()
	d := newDriver(t, dir)
	for _, tc := range []struct{ name, ref, want string }{
		{"unknown image", reg.Ref("nosuch:test"), "nosuch"},
		{"registry down", "127.0.0.1:1/static:test", "127.0.0.1:1"},
		{"corrupted layer", corrupt, "digest mismatch"},
		{"other architecture", arm, "is for linux/arm64"},
		{"malformed", malformed, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.StartTask(ctx, taskConfig(t, "bad", tc.ref, nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("StartTask(%s) = %v, want an error naming %q", tc.ref, err, tc.want)
			}
		})
	}
	imgs, err := d.ListImages(ctx)
	if err != nil || len(imgs) != 0 {
		t.Fatalf("images cached after failed pulls: %+v, %v", imgs, err)
	}
	layers, _ := filepath.Glob(filepath.Join(dir, "images", "layers", "sha256", "*"))
	tmp, _ := filepath.Glob(filepath.Join(dir, "images", "tmp", "*"))
	if len(layers)+len(tmp) != 0 {
		t.Fatalf("left in the cache: layers %v, tmp %v", layers, tmp)
	}

	// A good image with an entrypoint missing from it: the start fails
	// with the init's reason and its mount is gone.
	cfg := taskConfig(t, "missing", ref, nil)
	cfg.Command = "/nope"
	if _, err := d.StartTask(ctx, cfg); err == nil || !strings.Contains(err.Error(), "/nope") {
		t.Fatalf("StartTask with a missing command = %v, want an error naming /nope", err)
	}
	if m := overlays(t, dir); len(m) != 0 {
		t.Fatalf("mounted after a failed start: %v", m)
	}
	if _, err := d.StartTask(ctx, &plugin.TaskConfig{ID: "x", DriverConfig: []byte(`{"image":"` + ref + `"}`)}); !errors.Is(err, plugin.ErrNotSupported) {
		t.Fatalf("StartTask without isolation = %v, want ErrNotSupported", err)
	}
}

// An image no task used for GCDelay is removed by the driver itself, with
// its layers; one a task uses is kept however old.
func TestDriver_ImageGC(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	reg := imagetest.StartRegistry(t)
	ref, _ := imagetest.StaticServerImage(t, reg)
	dir := t.TempDir()
	d, err := New(Options{StateDir: dir, GCDelay: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	cfg := taskConfig(t, "gc-1", ref, map[string]string{"PORT": strconv.Itoa(freePort(t))})
	if _, err := d.StartTask(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // three collections while the task runs
	if imgs, err := d.ListImages(ctx); err != nil || len(imgs) != 1 || imgs[0].Tasks != 1 {
		t.Fatalf("ListImages with a task running = %+v, %v; want the image kept", imgs, err)
	}
	if err := d.DestroyTask(ctx, "gc-1", true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the unused image collected", func() (bool, string) {
		imgs, err := d.ListImages(ctx)
		layers, _ := filepath.Glob(filepath.Join(dir, "images", "layers", "sha256", "*"))
		return err == nil && len(imgs) == 0 && len(layers) == 0, fmt.Sprint(imgs, err, layers)
	})
}
