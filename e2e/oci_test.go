package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/imagetest"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// ociImages are the images of the oci tests, pushed to a registry of
// their own.
type ociImages struct {
	reg            *imagetest.Registry
	nginx, busybox string
}

// pushOCIImages starts a registry on 127.0.0.1 and pushes Debian's nginx
// (assembled from its packages) and busybox-static to it.
func pushOCIImages(t *testing.T) *ociImages {
	t.Helper()
	reg := imagetest.StartRegistry(t)
	nginx, _ := reg.PushDir(t, "nginx:test", imagetest.NginxRootFS(t), imagetest.Config{
		Entrypoint: imagetest.NginxEntrypoint, Env: imagetest.NginxEnv,
		ExposedPorts: []string{"80/tcp"}, StopSignal: imagetest.NginxStopSignal})
	bb, _ := reg.PushDir(t, "busybox:test", imagetest.DebianRootFS(t, "busybox-static"), imagetest.Config{
		Entrypoint: []string{"/bin/busybox"}, Cmd: []string{"sh"}, Env: imagetest.NginxEnv})
	return &ociImages{reg: reg, nginx: nginx, busybox: bb}
}

// startImageDev starts dcosd dev with bridge networking and the oci driver
// on a bridge of the test's own.
func startImageDev(e *env, extra ...string) *proc {
	tok := newToken()
	br := "dco" + tok[:8]
	vxport := strconv.Itoa(20000 + int(tok[8])%64*100 + int(tok[9])%100)
	_, rng := hostPortRange(tok, 10)
	e.t.Cleanup(func() { removeNode(e.t, br) })
	return e.startDev(append([]string{"--resources", "cpus=2,mem=2Gi", "--network-driver", "bridge", "--bridge", br,
		"--vxlan-port", vxport, "--cluster-cidr", "10.233.0.0/16", "--host-ports", rng, "--image-driver", "oci"}, extra...)...)
}

func httpGet(url string) (int, string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// overlayMounts returns the overlay mounts whose mount point is under dir,
// with their options (lowerdir=...).
func overlayMounts(t testing.TB, dir string) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || !strings.HasPrefix(f[4], dir) {
			continue
		}
		if i := slices.Index(f, "-"); i > 0 && i+3 < len(f) && f[i+1] == "overlay" {
			out[f[4]] = f[i+3]
		}
	}
	return out
}

// lowerdirs is the lowerdir option of overlay mount options.
func lowerdirs(opts string) string {
	for _, o := range strings.Split(opts, ",") {
		if v, ok := strings.CutPrefix(o, "lowerdir="); ok {
			return v
		}
	}
	return ""
}

// TestOCI_Nginx: Debian's nginx, assembled from its packages and pushed to
// a real registry, runs from `dcosctl run --image` with bridge networking
// and answers with its default page on its host port; a second task of
// the image shares its layers; inside a container pid 1 is the
// entrypoint, only the container's processes are seen, the host's files
// are not, the hostname is the task's; a corrupted layer is refused with
// a digest error and leaves nothing; SIGKILL of dcosd dev (kernel and
// agent) leaves nginx serving, and the restarted agent re-adopts it;
// removing the unused image removes its layers.
func TestOCI_Nginx(t *testing.T) {
	t.Parallel()
	needRoot(t)
	imgs := pushOCIImages(t)
	e := newEnv(t)
	dev := startImageDev(e)
	data := e.path("data")

	web := runTask(e, "--cpus", "0.2", "--mem", "64Mi", "--image", imgs.nginx, "--network", "bridge", "--port", "http:80")
	hp := web.GetPorts()[0].GetHostPort()
	url := "http://" + net.JoinHostPort(hostAddr(t), strconv.Itoa(int(hp))) + "/"
	e.eventually("nginx answering on "+url, func() (bool, string) {
		code, body, err := httpGet(url)
		return err == nil && code == 200 && strings.Contains(body, imagetest.NginxWelcome), fmt.Sprint(code, err, tail(body, 3))
	})

	// A second task of the image: one copy of each layer on disk, both
	// roots over the same lower dirs.
	web2 := runTask(e, "--cpus", "0.2", "--mem", "64Mi", "--image", imgs.nginx, "--network", "bridge", "--port", "http:80")
	mounts := overlayMounts(t, data)
	if len(mounts) != 2 {
		t.Fatalf("overlay mounts under the data dir: %v, want 2", mounts)
	}
	var lowers []string
	for _, o := range mounts {
		lowers = append(lowers, lowerdirs(o))
	}
	if lowers[0] == "" || lowers[0] != lowers[1] {
		t.Fatalf("the two tasks' roots have lower dirs %q: want the same shared layers", lowers)
	}
	layers, _ := filepath.Glob(filepath.Join(data, "agent", "plugins", "*", "images", "layers", "sha256", "*"))
	if len(layers) != 1 { // PushDir makes one layer
		t.Fatalf("layer dirs on the agent: %v, want the image's one layer once", layers)
	}

	// Inside a container.
	probe := runTask(e, "--cpus", "0.1", "--mem", "32Mi", "--image", imgs.busybox, "--",
		"sh", "-c", `echo "pid1=$(cat /proc/1/comm)"; echo "pids=$(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')"; `+
			`echo "host=$(hostname)"; test -e `+e.dir+` && echo "hostdir=visible" || echo "hostdir=hidden"; `+
			`test -e /etc/nginx && echo "other=visible" || echo "other=hidden"; echo "sandbox=$DCOS_SANDBOX"; echo done; exec sleep 600`)
	var out string
	e.eventually("the probe's output, by dcosctl logs", func() (bool, string) {
		out, _, _ = e.ctl("logs", probe.GetId())
		return strings.Contains(out, "done"), out
	})
	for _, want := range []string{"pid1=busybox", "host=" + probe.GetId(), "hostdir=hidden", "other=hidden", "sandbox=/dcos/sandbox"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("inside the container: want %q in\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if pids, ok := strings.CutPrefix(line, "pids="); ok {
			for _, p := range strings.Fields(pids) {
				if n, _ := strconv.Atoi(p); n > 10 {
					t.Errorf("the container sees pid %d (%s): want only its own few processes", n, line)
				}
			}
		}
	}
	// dcosctl exec enters the container: its root (the image's busybox,
	// no host dir), its pid namespace, its hostname.
	// (The image has /bin/busybox, no sh link: the task ran "sh" as its
	// entrypoint's argument.)
	xout, xerr, code := e.ctl("exec", probe.GetId(), "--", "busybox", "sh", "-c",
		`echo "comm=$(cat /proc/1/comm) host=$(hostname)"; test -e `+e.dir+` && echo hostdir=visible || echo hostdir=hidden; exit 5`)
	if code != 5 || !strings.Contains(xout, "comm=sleep host="+probe.GetId()+"\n") || !strings.Contains(xout, "hostdir=hidden\n") {
		t.Errorf("dcosctl exec into the container: exit %d, stdout %q, stderr %q; want 5, pid 1 the task's sleep, its hostname, no host dir", code, xout, xerr)
	}
	if _, xerr, code := e.ctl("exec", probe.GetId(), "--", "nginx", "-v"); code != 127 {
		t.Errorf("exec of a command the image lacks: exit %d (%q), want 127", code, xerr)
	}
	e.mustCtl("revoke", probe.GetId())

	// A corrupted layer: refused with a digest error, nothing cached.
	corrupt, _ := imgs.reg.PushDir(t, "corrupt:test", imagetest.NginxRootFS(t), imagetest.Config{Entrypoint: imagetest.NginxEntrypoint})
	for _, l := range imgs.reg.LayerDigests(t, corrupt) {
		imgs.reg.CorruptBlob(t, l)
	}
	layerGlob := filepath.Join(data, "agent", "plugins", "*", "images", "layers", "sha256", "*")
	before, _ := filepath.Glob(layerGlob)
	_, stderr, code := e.ctl("run", "--cpus", "0.1", "--mem", "32Mi", "--image", corrupt)
	if code == 0 || !strings.Contains(stderr, "digest mismatch") {
		t.Fatalf("dcosctl run of an image with a corrupted layer: exit %d, stderr %q; want a failure naming the digest mismatch", code, stderr)
	}
	if l, _ := filepath.Glob(layerGlob); !slices.Equal(l, before) {
		t.Fatalf("layer dirs after the corrupted pull: %v, want those before it: %v", l, before)
	}
	if tmp, _ := filepath.Glob(filepath.Join(data, "agent", "plugins", "*", "images", "tmp", "*")); len(tmp) != 0 {
		t.Fatalf("partial pulls left: %v", tmp)
	}

	// SIGKILL of dcosd dev (the agent, its kernel and plugins) with nginx
	// running: it keeps serving, and the restarted agent re-adopts it.
	dev.kill()
	if code, _, err := httpGet(url); err != nil || code != 200 {
		t.Fatalf("nginx while its agent is down: %d, %v", code, err)
	}
	startImageDev(e)
	e.eventually("nginx re-adopted", func() (bool, string) {
		k := taskByID(e, web.GetId())
		return k != nil && k.GetState() == pb.TaskState_TASK_STATE_RUNNING && k.GetPid() == web.GetPid(), sprint(k)
	})
	if code, _, err := httpGet(url); err != nil || code != 200 {
		t.Fatalf("nginx after its agent came back: %d, %v", code, err)
	}
	e.eventually("dcosctl image ls listing nginx in use by 2 tasks", func() (bool, string) {
		out := e.mustCtl("image", "ls", "-o", "json")
		return strings.Contains(out, imgs.nginx) && strings.Contains(out, `"tasks": 2`), out
	})

	// Image GC: once no task uses it, removing the image removes its layers
	// and nothing stays mounted.
	e.mustCtl("revoke", web.GetId())
	e.mustCtl("revoke", web2.GetId())
	e.eventually("the nginx tasks' roots unmounted", func() (bool, string) {
		m := overlayMounts(t, data)
		return len(m) == 0, sprint(m)
	})
	e.mustCtl("image", "rm", imgs.nginx)
	if _, err := os.Stat(layers[0]); !os.IsNotExist(err) {
		t.Fatalf("nginx's layer %s after dcosctl image rm: %v", layers[0], err)
	}
	if out := e.mustCtl("image", "ls"); strings.Contains(out, imgs.nginx) || !strings.Contains(out, imgs.busybox) {
		t.Errorf("dcosctl image ls after removing nginx: want busybox only:\n%s", out)
	}
}
