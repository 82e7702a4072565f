package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/imagetest"
	"golang.org/x/sys/unix"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root (mknod, chown, overlay mounts); run them as root")
	}
}

func openStore(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "images"), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mountedIn reports whether a mount point is listed in /proc/self/mountinfo.
func mountedIn(t testing.TB, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

func cleanupContainer(t testing.TB, s *Store, id string) {
	t.Cleanup(func() {
		if err := s.Unmount(id); err != nil {
			t.Errorf("cleanup unmount %s: %v", id, err)
		}
	})
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStore_PullMount(t *testing.T) {
	requireRoot(t)
	r := imagetest.StartRegistry(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.WriteFile(filepath.Join(src, "etc", "hello"), []byte("hello from the image\n"), 0o640)
	os.Symlink("etc/hello", filepath.Join(src, "link"))
	os.Chown(filepath.Join(src, "etc", "hello"), 1234, 4321)
	ref, digest := r.PushDir(t, "app:v1", src, imagetest.Config{
		Entrypoint: []string{"/bin/app"}, Cmd: []string{"--serve"}, Env: []string{"A=1"},
		User: "1000:1000", WorkingDir: "/srv", ExposedPorts: []string{"80/tcp"}, StopSignal: "SIGQUIT"})

	s := openStore(t, Options{})
	img, err := s.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != digest || img.Ref != ref || len(img.Layers) != 1 || img.Size == 0 {
		t.Fatalf("image = %+v, want digest %s, 1 layer", img, digest)
	}
	c := img.Config
	if strings.Join(c.Entrypoint, " ") != "/bin/app" || strings.Join(c.Cmd, " ") != "--serve" || c.User != "1000:1000" ||
		c.WorkingDir != "/srv" || strings.Join(c.ExposedPorts, ",") != "80/tcp" || c.StopSignal != "SIGQUIT" || c.Env[0] != "A=1" {
		t.Fatalf("config = %+v", c)
	}
	// A second pull by tag or by digest is served from the store.
	byDigest, err := s.Pull(context.Background(), r.Addr+"/app@"+digest)
	if err != nil || byDigest.Digest != digest || byDigest.Ref != ref {
		t.Fatalf("pull by digest = %+v, %v; want the stored image", byDigest, err)
	}
	// A layer damaged from outside is fetched again.
	if err := os.RemoveAll(filepath.Dir(img.Layers[0])); err != nil {
		t.Fatal(err)
	}
	if again, err := s.Pull(context.Background(), ref); err != nil || readFile(t, filepath.Join(again.Layers[0], "etc", "hello")) != "hello from the image\n" {
		t.Fatalf("pull after damage: %v", err)
	}

	rootfs, err := s.Mount(context.Background(), img, "c1", false)
	if err != nil {
		t.Fatal(err)
	}
	cleanupContainer(t, s, "c1")
	if again, err := s.Mount(context.Background(), img, "c1", false); err != nil || again != rootfs {
		t.Fatalf("second mount = %q, %v; want %q", again, err, rootfs)
	}
	if got := readFile(t, filepath.Join(rootfs, "link")); got != "hello from the image\n" {
		t.Fatalf("file through the overlay = %q", got)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(rootfs, "etc", "hello"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 1234 || st.Gid != 4321 || st.Mode&0o777 != 0o640 {
		t.Fatalf("owner/mode = %d:%d %o, want 1234:4321 640", st.Uid, st.Gid, st.Mode&0o777)
	}
	// Writes go to the container's upper dir, not to the shared layer.
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "hello"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(img.Layers[0], "etc", "hello")); got != "hello from the image\n" {
		t.Fatalf("layer changed under a container: %q", got)
	}
	infos, err := s.List()
	if err != nil || len(infos) != 1 || infos[0].Tasks != 1 || infos[0].Digest != digest || infos[0].LastUsed.IsZero() {
		t.Fatalf("List = %+v, %v", infos, err)
	}

	// Read-only root.
	ro, err := s.Mount(context.Background(), img, "c2", true)
	if err != nil {
		t.Fatal(err)
	}
	cleanupContainer(t, s, "c2")
	if err := os.WriteFile(filepath.Join(ro, "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write to read-only rootfs: %v, want EROFS", err)
	}

	if err := s.Unmount("c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unmount("c1"); err != nil {
		t.Fatalf("second unmount: %v", err)
	}
	if mountedIn(t, rootfs) {
		t.Fatalf("%s still in mountinfo after Unmount", rootfs)
	}
	if _, err := os.Stat(filepath.Dir(rootfs)); !os.IsNotExist(err) {
		t.Fatalf("container dir left: %v", err)
	}
}

func TestStore_Whiteouts(t *testing.T) {
	requireRoot(t)
	r := imagetest.StartRegistry(t)
	lower := imagetest.Tar(t,
		imagetest.Entry{Name: "keep", Body: "keep"},
		imagetest.Entry{Name: "gone", Body: "gone"},
		imagetest.Entry{Name: "opaque/", Type: '5'},
		imagetest.Entry{Name: "opaque/old", Body: "old"},
		imagetest.Entry{Name: "plain/", Type: '5'},
		imagetest.Entry{Name: "plain/old", Body: "old"},
	)
	upper := imagetest.Tar(t,
		imagetest.Entry{Name: ".wh.gone"},
		imagetest.Entry{Name: "opaque/", Type: '5'},
		imagetest.Entry{Name: "opaque/.wh..wh..opq"},
		imagetest.Entry{Name: "opaque/new", Body: "new"},
		imagetest.Entry{Name: "plain/new", Body: "new"},
	)
	ref, _ := r.PushLayers(t, "wh:1", imagetest.Config{}, lower, upper)
	s := openStore(t, Options{})
	img, err := s.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 2 {
		t.Fatalf("layers = %d, want 2", len(img.Layers))
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(img.Layers[1], "gone"), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("whiteout in layer: mode %o rdev %d err %v, want a 0:0 char device", st.Mode, st.Rdev, err)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(img.Layers[1], "opaque"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Fatalf("opaque xattr = %q, %v", buf[:n], err)
	}
	rootfs, err := s.Mount(context.Background(), img, "wh", false)
	if err != nil {
		t.Fatal(err)
	}
	cleanupContainer(t, s, "wh")
	for p, want := range map[string]bool{"keep": true, "gone": false, "opaque/old": false, "opaque/new": true, "plain/old": true, "plain/new": true} {
		_, err := os.Lstat(filepath.Join(rootfs, p))
		if (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", p, err == nil, want)
		}
	}
}

func TestStore_SharedLayers(t *testing.T) {
	requireRoot(t)
	r := imagetest.StartRegistry(t)
	ref, _ := r.PushLayers(t, "shared:1", imagetest.Config{}, imagetest.Tar(t, imagetest.Entry{Name: "bin/tool", Body: "tool", Mode: 0o755}))
	s := openStore(t, Options{})
	var wg sync.WaitGroup
	imgs := make([]*Image, 4)
	errs := make([]error, 4)
	for i := range imgs {
		wg.Add(1)
		go func() { defer wg.Done(); imgs[i], errs[i] = s.Pull(context.Background(), ref) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent pull %d: %v", i, err)
		}
	}
	a, err := s.Mount(context.Background(), imgs[0], "a", false)
	if err != nil {
		t.Fatal(err)
	}
	cleanupContainer(t, s, "a")
	b, err := s.Mount(context.Background(), imgs[1], "b", false)
	if err != nil {
		t.Fatal(err)
	}
	cleanupContainer(t, s, "b")
	var sa, sb, sl syscall.Stat_t
	syscall.Stat(filepath.Join(a, "bin/tool"), &sa)
	syscall.Stat(filepath.Join(b, "bin/tool"), &sb)
	syscall.Stat(filepath.Join(imgs[0].Layers[0], "bin/tool"), &sl)
	if sa.Ino == 0 || sa.Ino != sb.Ino || sa.Ino != sl.Ino {
		t.Fatalf("inodes: a %d, b %d, layer %d: want one copy", sa.Ino, sb.Ino, sl.Ino)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), "layers", "sha256"))
	if len(ents) != 1 {
		t.Fatalf("%d layer dirs, want 1", len(ents))
	}
}

func assertNoLeftovers(t *testing.T, s *Store) {
	t.Helper()
	for _, d := range []string{"layers/sha256", "tmp", "images"} {
		ents, err := os.ReadDir(filepath.Join(s.Dir(), d))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 0 {
			t.Errorf("%s has %d entries after a failed pull, want none", d, len(ents))
		}
	}
}

func TestStore_PullErrors(t *testing.T) {
	requireRoot(t)
	r := imagetest.StartRegistry(t)
	ctx := context.Background()

	t.Run("corrupted layer", func(t *testing.T) {
		ref, _ := r.PushLayers(t, "corrupt:1", imagetest.Config{},
			imagetest.Tar(t, imagetest.Entry{Name: "big", Body: strings.Repeat("0123456789abcdef", 4096)}))
		layer := r.LayerDigests(t, ref)[0]
		r.CorruptBlob(t, layer)
		s := openStore(t, Options{})
		_, err := s.Pull(ctx, ref)
		if !errors.Is(err, ErrDigest) || !strings.Contains(err.Error(), "layer "+layer+": digest mismatch: got sha256:") ||
			!strings.Contains(err.Error(), "want "+layer) {
			t.Fatalf("err = %v, want a digest mismatch naming layer %s", err, layer)
		}
		assertNoLeftovers(t, s)
	})
	t.Run("wrong arch", func(t *testing.T) {
		ref, _ := r.PushOtherArch(t, "arm:1", "arm64")
		s := openStore(t, Options{Platform: "linux/amd64"})
		_, err := s.Pull(ctx, ref)
		want := "image " + ref + " is for linux/arm64, this agent runs linux/amd64"
		if !errors.Is(err, ErrPlatform) || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want %q", err, want)
		}
		assertNoLeftovers(t, s)
	})
	t.Run("malformed config", func(t *testing.T) {
		ref := r.PushMalformed(t, "bad", "v1")
		s := openStore(t, Options{})
		_, err := s.Pull(ctx, ref)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "config") {
			t.Fatalf("err = %v, want a malformed config", err)
		}
		assertNoLeftovers(t, s)
	})
	t.Run("unknown image", func(t *testing.T) {
		s := openStore(t, Options{})
		_, err := s.Pull(ctx, r.Addr+"/nosuch:1")
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nosuch") {
			t.Fatalf("err = %v, want not found", err)
		}
	})
	t.Run("registry down", func(t *testing.T) {
		s := openStore(t, Options{})
		_, err := s.Pull(ctx, "127.0.0.1:1/app:1")
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Fatalf("err = %v, want unreachable", err)
		}
	})
	t.Run("bad reference", func(t *testing.T) {
		s := openStore(t, Options{})
		if _, err := s.Pull(ctx, "UPPER/Case::x"); err == nil || !strings.Contains(err.Error(), "bad image reference") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("plain http to a non-loopback registry", func(t *testing.T) {
		s := openStore(t, Options{})
		_, err := s.Pull(ctx, "10.255.255.1:5000/app:1")
		if !errors.Is(err, ErrInsecure) && !errors.Is(err, ErrUnreachable) {
			t.Fatalf("err = %v, want plain HTTP refused", err)
		}
		if s.plainHTTPAllowed("10.255.255.1:5000") || !s.plainHTTPAllowed("127.0.0.5:80") || !s.plainHTTPAllowed("[::1]:5000") || !s.plainHTTPAllowed("localhost:5000") {
			t.Fatal("plainHTTPAllowed disagrees with loopback rules")
		}
		s2 := openStore(t, Options{Insecure: []string{"10.255.255.1:5000"}})
		if !s2.plainHTTPAllowed("10.255.255.1:5000") {
			t.Fatal("Options.Insecure not honoured")
		}
	})
}

func TestStore_Auth(t *testing.T) {
	requireRoot(t)
	r := imagetest.StartRegistryAuth(t, "alice", "s3cret")
	ref, _ := r.PushLayers(t, "private:1", imagetest.Config{}, imagetest.Tar(t, imagetest.Entry{Name: "x", Body: "x"}))
	creds := func(user, pass string) func(string) (Credentials, bool) {
		return func(reg string) (Credentials, bool) {
			if reg != r.Addr {
				t.Errorf("Auth asked for %q, want %q", reg, r.Addr)
			}
			return Credentials{Username: user, Password: pass}, true
		}
	}
	for _, tc := range []struct {
		name string
		auth func(string) (Credentials, bool)
		ok   bool
	}{
		{"right", creds("alice", "s3cret"), true},
		{"wrong", creds("alice", "nope"), false},
		{"anonymous", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, Options{Auth: tc.auth})
			_, err := s.Pull(context.Background(), ref)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && (!errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "authentication")) {
				t.Fatalf("err = %v, want an authentication error", err)
			}
		})
	}
}

func TestStore_RemoveGC(t *testing.T) {
	requireRoot(t)
	r := imagetest.StartRegistry(t)
	base := imagetest.Tar(t, imagetest.Entry{Name: "base", Body: "base"})
	refA, _ := r.PushLayers(t, "a:1", imagetest.Config{}, base, imagetest.Tar(t, imagetest.Entry{Name: "a", Body: "a"}))
	refB, _ := r.PushLayers(t, "b:1", imagetest.Config{}, base, imagetest.Tar(t, imagetest.Entry{Name: "b", Body: "b"}))
	s := openStore(t, Options{})
	ctx := context.Background()
	a, err := s.Pull(ctx, refA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pull(ctx, refB); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(ctx, a, "task", false); err != nil {
		t.Fatal(err)
	}
	cleanupContainer(t, s, "task")
	if err := s.Remove(refA); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "task") {
		t.Fatalf("Remove in use = %v, want ErrInUse naming the container", err)
	}
	if err := s.Unmount("task"); err != nil {
		t.Fatal(err)
	}
	// A leftover of an interrupted pull and an orphan layer.
	os.MkdirAll(filepath.Join(s.Dir(), "tmp", "layer-123", "fs"), 0o755)
	if err := s.Remove(a.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.Layers[1]); !os.IsNotExist(err) {
		t.Fatalf("a's own layer still there: %v", err)
	}
	if _, err := os.Stat(a.Layers[0]); err != nil {
		t.Fatalf("shared base layer removed with a: %v", err)
	}
	if err := s.Remove(refA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove = %v, want ErrNotFound", err)
	}
	if err := s.Remove(refB); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(s.Dir(), "layers", "sha256", strings.Repeat("ab", 32))
	os.MkdirAll(filepath.Join(orphan, "fs"), 0o755)
	os.WriteFile(filepath.Join(orphan, "size"), []byte("42\n"), 0o600)
	removed, freed, err := s.GC(ctx)
	if err != nil || len(removed) != 1 || freed != 42 {
		t.Fatalf("GC = %v, %d, %v; want the orphan layer, 42 bytes", removed, freed, err)
	}
	assertNoLeftovers(t, s)
}

func TestStore_Recover(t *testing.T) {
	requireRoot(t)
	r := imagetest.StartRegistry(t)
	ref, _ := r.PushLayers(t, "rec:1", imagetest.Config{}, imagetest.Tar(t, imagetest.Entry{Name: "f", Body: "f"}))
	dir := filepath.Join(t.TempDir(), "images")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	rootfs, err := s.Mount(context.Background(), img, "r1", false)
	if err != nil {
		t.Fatal(err)
	}
	cleanupContainer(t, s, "r1")
	os.WriteFile(filepath.Join(rootfs, "written"), []byte("kept"), 0o644)
	// A new process: the mount is still there.
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s2.Recover("r1", false)
	if err != nil || got != rootfs {
		t.Fatalf("Recover = %q, %v; want %q", got, err, rootfs)
	}
	// After a reboot: the mount is gone, Recover mounts it again with its upper dir.
	if err := unix.Unmount(rootfs, 0); err != nil {
		t.Fatal(err)
	}
	if got, err = s2.Recover("r1", false); err != nil || got != rootfs {
		t.Fatalf("Recover after unmount = %q, %v", got, err)
	}
	if readFile(t, filepath.Join(rootfs, "written")) != "kept" || readFile(t, filepath.Join(rootfs, "f")) != "f" {
		t.Fatal("remounted rootfs lost content")
	}
	if _, err := s2.Recover("nosuch", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Recover unknown = %v, want ErrNotFound", err)
	}
	if err := s2.Unmount("r1"); err != nil {
		t.Fatal(err)
	}
	if mountedIn(t, rootfs) {
		t.Fatal("still mounted")
	}
}

func TestStore_BadInput(t *testing.T) {
	s := openStore(t, Options{})
	if _, err := Open("", Options{}); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
	if _, err := Open(t.TempDir(), Options{Platform: "linux"}); err == nil || !strings.Contains(err.Error(), "platform") {
		t.Fatalf("bad platform: %v", err)
	}
	if _, err := s.Pull(context.Background(), " "); err == nil {
		t.Fatal("empty ref accepted")
	}
	if _, err := s.Mount(context.Background(), &Image{Digest: "sha256:00"}, "../x", false); err == nil || !strings.Contains(err.Error(), "container id") {
		t.Fatalf("bad id: %v", err)
	}
	if _, err := s.Mount(context.Background(), &Image{Digest: "sha256:00"}, "x", false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown image: %v", err)
	}
}

func TestStore_ManyLayers(t *testing.T) {
	requireRoot(t)
	r := imagetest.StartRegistry(t)
	var layers [][]byte
	for i := 0; i < 40; i++ { // more lowerdirs than one page of mount(2) options holds
		layers = append(layers, imagetest.Tar(t, imagetest.Entry{Name: "layer", Body: strings.Repeat("x", i+1)},
			imagetest.Entry{Name: "f" + strings.Repeat("0", i%3) + string(rune('a'+i%26)) + string(rune('0'+i/26)), Body: "y"}))
	}
	ref, _ := r.PushLayers(t, "many:1", imagetest.Config{}, layers...)
	s := openStore(t, Options{})
	img, err := s.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		id := "many-rw"
		if ro {
			id = "many-ro"
		}
		rootfs, err := s.Mount(context.Background(), img, id, ro)
		if err != nil {
			t.Fatal(err)
		}
		cleanupContainer(t, s, id)
		if got := readFile(t, filepath.Join(rootfs, "layer")); len(got) != 40 {
			t.Fatalf("top layer's file has %d bytes, want 40", len(got))
		}
		err = os.WriteFile(filepath.Join(rootfs, "new"), nil, 0o644)
		if ro != errors.Is(err, syscall.EROFS) {
			t.Fatalf("read-only %v: write: %v", ro, err)
		}
		if err := s.Unmount(id); err != nil {
			t.Fatal(err)
		}
		if mountedIn(t, rootfs) {
			t.Fatalf("%s still mounted", rootfs)
		}
	}
}

func TestStore_Index(t *testing.T) {
	requireRoot(t)
	r := imagetest.StartRegistry(t)
	amd := imagetest.Build(t, imagetest.Config{Architecture: "amd64", Cmd: []string{"amd"}}, imagetest.Tar(t, imagetest.Entry{Name: "arch", Body: "amd64"}))
	arm := imagetest.Build(t, imagetest.Config{Architecture: "arm64", Cmd: []string{"arm"}}, imagetest.Tar(t, imagetest.Entry{Name: "arch", Body: "arm64"}))
	multi, _ := r.PushIndex(t, "multi:1", arm, amd)
	armOnly, _ := r.PushIndex(t, "armonly:1", arm)
	amdDigest, _ := amd.Digest()

	s := openStore(t, Options{Platform: "linux/amd64"})
	img, err := s.Pull(context.Background(), multi)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != amdDigest.String() || img.Config.Cmd[0] != "amd" || readFile(t, filepath.Join(img.Layers[0], "arch")) != "amd64" {
		t.Fatalf("picked %+v, want the amd64 manifest %s", img, amdDigest)
	}
	_, err = s.Pull(context.Background(), armOnly)
	if !errors.Is(err, ErrPlatform) || !strings.Contains(err.Error(), "has no manifest for linux/amd64 (it has linux/arm64)") {
		t.Fatalf("arm-only index: %v", err)
	}
}

// TestStore_BearerToken puts a real registry behind a proxy that admits only
// "Authorization: Bearer <token>" (as registries fronted by an auth gateway
// do) and pulls through it with Credentials.Token.
func TestStore_BearerToken(t *testing.T) {
	requireRoot(t)
	r := imagetest.StartRegistry(t)
	ref, _ := r.PushLayers(t, "tok:1", imagetest.Config{}, imagetest.Tar(t, imagetest.Entry{Name: "x", Body: "x"}))
	target, _ := url.Parse("http://" + r.Addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Authorization") != "Bearer t0ken" {
			w.Header().Set("WWW-Authenticate", `Basic realm="gateway"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}`, http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	viaProxy := strings.Replace(ref, r.Addr, srv.Listener.Addr().String(), 1)
	for _, tc := range []struct {
		token string
		ok    bool
	}{{"t0ken", true}, {"wrong", false}} {
		s := openStore(t, Options{Auth: func(string) (Credentials, bool) { return Credentials{Token: tc.token}, true }})
		_, err := s.Pull(context.Background(), viaProxy)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ErrUnauthorized)) {
			t.Fatalf("token %q: %v", tc.token, err)
		}
	}
}

// TestStore_RemoveListedUntilLayersGone: an image being removed stays in
// List until its layers are deleted, so whoever waits for it to leave the
// list (dcosctl image rm, through the agent's heartbeat) finds the disk
// freed. Its layer has many files, so the deletion takes a while.
func TestStore_RemoveListedUntilLayersGone(t *testing.T) {
	requireRoot(t)
	r := imagetest.StartRegistry(t)
	var files []imagetest.Entry
	for i := range 20000 {
		files = append(files, imagetest.Entry{Name: fmt.Sprintf("f%05d", i), Body: "x"})
	}
	ref, _ := r.PushLayers(t, "many:1", imagetest.Config{}, imagetest.Tar(t, files...))
	s := openStore(t, Options{})
	img, err := s.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Remove(ref) }()
	polls := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(img.Layers[0]); !os.IsNotExist(err) {
				t.Fatalf("layer after Remove: %v", err)
			}
			t.Logf("%d lists while the image was being removed", polls)
			assertNoLeftovers(t, s)
			return
		default:
		}
		l, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		polls++
		if len(l) == 0 {
			if _, err := os.Stat(filepath.Dir(img.Layers[0])); !os.IsNotExist(err) {
				t.Fatalf("List no longer has the image while its layer %s is still on disk (%v)", img.Layers[0], err)
			}
		}
		time.Sleep(time.Millisecond)
	}
}
