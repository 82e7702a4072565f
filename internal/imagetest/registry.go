package imagetest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"
)

// RegistryBinary is Debian's docker-registry (package docker-registry).
const RegistryBinary = "/usr/bin/docker-registry"

// Registry is a running docker-registry on 127.0.0.1 started by
// StartRegistry or StartRegistryAuth. It is stopped, and its storage removed,
// when the test ends.
type Registry struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Root is the registry's filesystem storage directory.
	Root string
	// User and Pass are the basic-auth credentials, empty when anonymous.
	User, Pass string

	cmd *exec.Cmd
}

// Config is what PushDir and PushLayers put in an image's config. OS and
// Architecture default to linux and amd64.
type Config struct {
	Entrypoint, Cmd, Env []string
	User, WorkingDir     string
	ExposedPorts         []string // "80/tcp"
	StopSignal           string
	OS, Architecture     string
}

// StartRegistry starts an anonymous registry and waits until /v2/ answers.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	return start(t, "", "")
}

// StartRegistryAuth starts a registry that requires basic auth with user and
// pass (htpasswd, bcrypt) and waits until /v2/ answers 401.
func StartRegistryAuth(t testing.TB, user, pass string) *Registry {
	t.Helper()
	return start(t, user, pass)
}

func start(t testing.TB, user, pass string) *Registry {
	t.Helper()
	if _, err := os.Stat(RegistryBinary); err != nil {
		t.Fatalf("imagetest: %s missing (apt-get install docker-registry): %v", RegistryBinary, err)
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		r, err := startOnce(t, dir, user, pass)
		if err == nil {
			return r
		}
		lastErr = err
	}
	t.Fatalf("imagetest: start registry: %v", lastErr)
	return nil
}

func startOnce(t testing.TB, dir, user, pass string) (*Registry, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	root := filepath.Join(dir, "storage")
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: imagetest
`, root, addr)
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			return nil, err
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: imagetest\n    path: %s\n", htpasswd)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("registry-%d.log", port)))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(RegistryBinary, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(logf.Name())
			return nil, fmt.Errorf("registry on %s exited: %v: %s", addr, err, lastLines(log))
		default:
		}
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || (user != "" && resp.StatusCode == http.StatusUnauthorized) {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("registry on %s not ready: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(stop)
	return &Registry{Addr: addr, Root: root, User: user, Pass: pass, cmd: cmd}, nil
}

func lastLines(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return s
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Options returns remote options that reach r (with its credentials, if any).
func (r *Registry) Options() []remote.Option {
	auth := authn.Anonymous
	if r.User != "" {
		auth = &authn.Basic{Username: r.User, Password: r.Pass}
	}
	return []remote.Option{remote.WithAuth(auth)}
}

// Ref returns "ADDR/repoTag".
func (r *Registry) Ref(repoTag string) string { return r.Addr + "/" + repoTag }

// PushDir builds a one-layer image from the files under dir (owners, modes,
// symlinks and mtimes as on disk) with cfg and pushes it as ADDR/repoTag. It
// returns the full reference and the manifest digest ("sha256:…").
func (r *Registry) PushDir(t testing.TB, repoTag, dir string, cfg Config) (ref, digest string) {
	t.Helper()
	return r.PushLayers(t, repoTag, cfg, TarDir(t, dir))
}

// PushLayers builds an image from uncompressed tar streams (bottom first;
// each is gzip-compressed as a layer) with cfg and pushes it as ADDR/repoTag.
func (r *Registry) PushLayers(t testing.TB, repoTag string, cfg Config, layers ...[]byte) (ref, digest string) {
	t.Helper()
	img := Build(t, cfg, layers...)
	return r.PushImage(t, repoTag, img)
}

// PushImage pushes img as ADDR/repoTag and returns the reference and digest.
func (r *Registry) PushImage(t testing.TB, repoTag string, img v1.Image) (ref, digest string) {
	t.Helper()
	ref = r.Ref(repoTag)
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("imagetest: parse %s: %v", ref, err)
	}
	if err := remote.Write(tag, img, r.Options()...); err != nil {
		t.Fatalf("imagetest: push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatalf("imagetest: digest: %v", err)
	}
	return ref, d.String()
}

// PushIndex pushes an OCI image index of imgs (each entry's platform taken
// from its config) as ADDR/repoTag and returns the reference and the index
// digest.
func (r *Registry) PushIndex(t testing.TB, repoTag string, imgs ...v1.Image) (ref, digest string) {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatalf("imagetest: config: %v", err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	ref = r.Ref(repoTag)
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("imagetest: parse %s: %v", ref, err)
	}
	if err := remote.WriteIndex(tag, idx, r.Options()...); err != nil {
		t.Fatalf("imagetest: push index %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatalf("imagetest: digest: %v", err)
	}
	return ref, d.String()
}

// Build makes an image from uncompressed tar streams (bottom first) and cfg.
func Build(t testing.TB, cfg Config, layers ...[]byte) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, b := range layers {
		b := b
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		})
		if err != nil {
			t.Fatalf("imagetest: layer: %v", err)
		}
		ls = append(ls, l)
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		t.Fatalf("imagetest: append layers: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("imagetest: config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = cfg.OS, cfg.Architecture
	if cf.OS == "" {
		cf.OS = "linux"
	}
	if cf.Architecture == "" {
		cf.Architecture = "amd64"
	}
	cf.Config.Entrypoint = cfg.Entrypoint
	cf.Config.Cmd = cfg.Cmd
	cf.Config.Env = cfg.Env
	cf.Config.User = cfg.User
	cf.Config.WorkingDir = cfg.WorkingDir
	cf.Config.StopSignal = cfg.StopSignal
	if len(cfg.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range cfg.ExposedPorts {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatalf("imagetest: config file: %v", err)
	}
	return img
}

// Entry is one member of a crafted tar stream (see Tar).
type Entry struct {
	Name     string
	Type     byte // tar.TypeReg when 0
	Body     string
	Mode     int64 // 0644 (files) or 0755 (dirs) when 0
	Linkname string
	UID, GID int
	Devmajor int64
	Devminor int64
	ModTime  time.Time
}

// Tar returns an uncompressed tar stream of entries, in order, as given: it
// does not clean names, so tests can craft hostile paths.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Linkname: e.Linkname, Uid: e.UID, Gid: e.GID,
			Devmajor: e.Devmajor, Devminor: e.Devminor, ModTime: e.ModTime, Mode: e.Mode, Format: tar.FormatPAX}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("imagetest: tar %s: %v", e.Name, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, e.Body); err != nil {
				t.Fatalf("imagetest: tar %s: %v", e.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("imagetest: tar: %v", err)
	}
	return buf.Bytes()
}

// TarDir returns an uncompressed tar stream of the tree under dir, paths
// relative to it, with owners, modes, mtimes, symlinks and hard links.
func TarDir(t testing.TB, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteTarDir(&buf, dir); err != nil {
		t.Fatalf("imagetest: tar %s: %v", dir, err)
	}
	return buf.Bytes()
}

// WriteTarDir writes the tree under dir to w as an uncompressed tar stream.
func WriteTarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uname, h.Gname = "", ""
		h.Format = tar.FormatPAX
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			if first, ok := inodes[st.Ino]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			} else {
				inodes[st.Ino] = h.Name
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// BlobPath is where the registry stores the blob with digest "sha256:…".
func (r *Registry) BlobPath(digest string) string {
	hexd := strings.TrimPrefix(digest, "sha256:")
	return filepath.Join(r.Root, "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd, "data")
}

// CorruptBlob flips bytes in the middle of a stored blob, keeping its size, so
// that the registry serves content that does not match its digest.
func (r *Registry) CorruptBlob(t testing.TB, digest string) {
	t.Helper()
	p := r.BlobPath(digest)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("imagetest: corrupt %s: %v", digest, err)
	}
	for i := len(b) / 2; i < len(b)/2+16 && i < len(b); i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatalf("imagetest: corrupt %s: %v", digest, err)
	}
}

// LayerDigests returns the compressed layer digests of the image pushed as
// ref, bottom first, read back from the registry.
func (r *Registry) LayerDigests(t testing.TB, ref string) []string {
	t.Helper()
	pr, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("imagetest: %v", err)
	}
	img, err := remote.Image(pr, r.Options()...)
	if err != nil {
		t.Fatalf("imagetest: get %s: %v", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatalf("imagetest: manifest %s: %v", ref, err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// PushOtherArch pushes a small image whose config says linux/arch.
func (r *Registry) PushOtherArch(t testing.TB, repoTag, arch string) (ref, digest string) {
	t.Helper()
	return r.PushLayers(t, repoTag, Config{Architecture: arch, Cmd: []string{"/hello"}},
		Tar(t, Entry{Name: "hello", Body: "not really " + arch, Mode: 0o755}))
}

// PushBlob uploads b as a blob (monolithic upload) and returns its digest.
func (r *Registry) PushBlob(t testing.TB, repo string, b []byte) string {
	t.Helper()
	sum := sha256.Sum256(b)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	resp := r.do(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", "", nil)
	loc := resp.Header.Get("Location")
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("imagetest: start upload to %s: %s", repo, resp.Status)
	}
	if !strings.HasPrefix(loc, "http") {
		loc = "http://" + r.Addr + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp = r.do(t, http.MethodPut, loc+sep+"digest="+digest, "application/octet-stream", b)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("imagetest: upload blob to %s: %s", repo, resp.Status)
	}
	return digest
}

// PutManifest PUTs raw bytes as the manifest ADDR/repo:tag with mediaType and
// returns the full reference. It fails the test if the registry refuses it:
// use it for manifests the registry accepts but a client must not.
func (r *Registry) PutManifest(t testing.TB, repo, tag, mediaType string, body []byte) string {
	t.Helper()
	resp := r.do(t, http.MethodPut, "/v2/"+repo+"/manifests/"+tag, mediaType, body)
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("imagetest: put manifest %s:%s: %s: %s", repo, tag, resp.Status, msg)
	}
	return r.Ref(repo + ":" + tag)
}

// PushMalformed pushes ADDR/repo:tag whose manifest is a valid OCI manifest
// as far as the registry checks, but whose config blob is not JSON: a client
// that parses it must fail with a clear error.
func (r *Registry) PushMalformed(t testing.TB, repo, tag string) string {
	t.Helper()
	cfg := []byte("{this is not a config")
	cd := r.PushBlob(t, repo, cfg)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, cd, len(cfg))
	return r.PutManifest(t, repo, tag, "application/vnd.oci.image.manifest.v1+json", []byte(m))
}

func (r *Registry) do(t testing.TB, method, pathOrURL, contentType string, body []byte) *http.Response {
	t.Helper()
	u := pathOrURL
	if !strings.HasPrefix(u, "http") {
		u = "http://" + r.Addr + u
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("imagetest: %s %s: %v", method, u, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if r.User != "" {
		req.SetBasicAuth(r.User, r.Pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("imagetest: %s %s: %v", method, u, err)
	}
	return resp
}

// StaticBody is what the StaticServerImage server answers on every path.
const StaticBody = "dcos static server\n"

const staticServerSrc = `package main

import (
	"net/http"
	"os"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(` + "`" + StaticBody + "`" + `))
	})
	if err := http.ListenAndServe(":"+port, nil); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
`

// StaticServerImage builds (CGO_ENABLED=0 go build, at test time) a static Go
// HTTP server that answers 200 with StaticBody on :$PORT (default 8080) and
// pushes it as ADDR/static:test with Entrypoint ["/server"] and
// ExposedPorts 8080/tcp. It returns the reference and manifest digest.
func StaticServerImage(t testing.TB, r *Registry) (ref, digest string) {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(staticServerSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module staticserver\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootfs := t.TempDir()
	gobin := goBinary()
	cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(rootfs, "server"), ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("imagetest: build static server: %v: %s", err, out)
	}
	for _, d := range []string{"tmp", "etc"} {
		if err := os.Mkdir(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r.PushDir(t, "static:test", rootfs, Config{
		Entrypoint:   []string{"/server"},
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		ExposedPorts: []string{"8080/tcp"},
	})
}

func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}
