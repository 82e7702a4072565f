package imagetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Debian root filesystems for tests: a directory holding Debian packages
// and their Depends/Pre-Depends closure, unpacked from this machine's apt
// sources (dpkg-deb -x, no maintainer scripts, no chroot), with what those
// scripts would have made added by hand. Two caches keep it fast:
//
//   - The .deb files are kept in DebCacheDir (default
//     /var/cache/dcos-test/debs, or $DCOS_TEST_CACHE/debs), named as apt
//     names them (name_version_arch.deb), so a new Debian version of a
//     package is a new file and a stale one is never used. It is bounded:
//     every build touches the files it uses and deletes those unused for
//     debCacheMaxAge. Remove the directory to reclaim it at once. A .deb
//     already in /var/cache/apt/archives is used from there.
//   - The unpacked tree is built once per test process and package list,
//     in a directory under os.TempDir() named dcos-rootfs-PID-*, shared by
//     the process's tests. Cleanup removes it (call it from TestMain); a
//     later build also removes those of processes that have exited, so at
//     most one tree per live test process is ever left.
//
// Unpacking again per test would cost seconds (about 7 s for nginx's 53
// packages on a loaded 2-core machine), and a tar of the tree kept across
// processes would cost about as much to unpack; the .debs are what is slow
// to get (the network), so they are what persists.

// debCacheMaxAge is how long an unused .deb stays in DebCacheDir.
const debCacheMaxAge = 30 * 24 * time.Hour

// aptArchives is apt's own cache of downloaded packages, used when it has
// the file.
const aptArchives = "/var/cache/apt/archives"

// DebCacheDir is where downloaded .deb files are kept across test
// processes: $DCOS_TEST_CACHE/debs, else /var/cache/dcos-test/debs. It is
// bounded (files unused for 30 days are removed by the next build) and safe
// to delete at any time.
func DebCacheDir() string {
	if d := os.Getenv("DCOS_TEST_CACHE"); d != "" {
		return filepath.Join(d, "debs")
	}
	return "/var/cache/dcos-test/debs"
}

// NginxEntrypoint is the entrypoint of the nginx image made from
// NginxRootFS: nginx in the foreground, with Debian's configuration.
var NginxEntrypoint = []string{"/usr/sbin/nginx", "-g", "daemon off;"}

// NginxEnv is the environment of the nginx image: Debian's PATH.
var NginxEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// NginxStopSignal stops nginx gracefully (it finishes the requests in
// flight); SIGTERM is its fast shutdown.
const NginxStopSignal = "SIGQUIT"

// NginxPort is the port Debian's default site listens on.
const NginxPort = 80

// NginxWelcome is in the page NginxRootFS's nginx serves at "/" (Debian's
// /var/www/html/index.nginx-debian.html).
const NginxWelcome = "Welcome to nginx!"

// NginxRootFS returns a root filesystem with Debian's nginx, as
// DebianRootFS(t, "nginx") makes it: run NginxEntrypoint in it and nginx
// serves Debian's default page on NginxPort (as user www-data, logging to
// /var/log/nginx, its pid in /run/nginx.pid). The tree is shared by the
// process's tests: see DebianRootFS.
func NginxRootFS(t testing.TB) string {
	t.Helper()
	return DebianRootFS(t, "nginx")
}

// DebianRootFS returns a root filesystem directory holding the Debian
// packages pkgs (names as apt knows them; this machine's architecture)
// with their whole Depends and Pre-Depends closure, plus base-files and
// base-passwd, unpacked with dpkg-deb -x. What maintainer scripts would
// have made is added: /etc/passwd and /etc/group (base-passwd's masters),
// /proc, /sys, /dev, /tmp and /run, and for nginx its log and state
// directories, owners and default site. Packages come from this machine's
// apt sources (apt-get update must have been run), downloaded once into
// DebCacheDir.
//
// The tree is built once per process and package list and shared by every
// caller: treat it as read-only (copy it, or mount an overlay or tmpfs
// over what a test writes). It is removed by Cleanup. A build failure fails
// t, and every later call for the same list.
func DebianRootFS(t testing.TB, pkgs ...string) string {
	t.Helper()
	if len(pkgs) == 0 {
		t.Fatal("imagetest: DebianRootFS: no packages")
	}
	key := append([]string(nil), pkgs...)
	sort.Strings(key)
	b := rootfsBuilds.get(strings.Join(key, " "))
	b.once.Do(func() {
		start := time.Now()
		b.dir, b.err = buildProcessRootFS(key, t.Logf)
		if b.err == nil {
			t.Logf("imagetest: built the Debian root filesystem of %s in %s: %s", strings.Join(key, ", "), time.Since(start).Round(time.Millisecond), b.dir)
		}
	})
	if b.err != nil {
		t.Fatalf("imagetest: DebianRootFS %s: %v", strings.Join(key, " "), b.err)
	}
	return b.dir
}

// Cleanup removes the root filesystems this process built. Call it from
// TestMain after m.Run; later DebianRootFS calls build afresh.
func Cleanup() {
	rootfsBuilds.mu.Lock()
	defer rootfsBuilds.mu.Unlock()
	for _, b := range rootfsBuilds.m {
		if b.dir != "" {
			os.RemoveAll(filepath.Dir(b.dir))
		}
	}
	rootfsBuilds.m = nil
}

// rootfsBuilds are the trees of this process, by sorted package list.
var rootfsBuilds buildSet

type buildSet struct {
	mu sync.Mutex
	m  map[string]*build
}

type build struct {
	once sync.Once
	dir  string
	err  error
}

func (s *buildSet) get(key string) *build {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*build{}
	}
	b := s.m[key]
	if b == nil {
		b = &build{}
		s.m[key] = b
	}
	return b
}

// rootfsPrefix names the per-process directories under os.TempDir().
const rootfsPrefix = "dcos-rootfs-"

// buildProcessRootFS builds pkgs into a new directory of this process and
// returns the root filesystem's path (the directory's "rootfs").
func buildProcessRootFS(pkgs []string, logf func(string, ...any)) (string, error) {
	sweepDeadRootFS()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", rootfsPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	root := filepath.Join(dir, "rootfs")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := BuildDebianRootFS(ctx, root, pkgs, logf); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return root, nil
}

// sweepDeadRootFS removes the trees of test processes that have exited
// without calling Cleanup.
func sweepDeadRootFS() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), rootfsPrefix+"*"))
	for _, m := range matches {
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(m), rootfsPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(m)
		}
	}
}

// BuildDebianRootFS unpacks pkgs, their Depends/Pre-Depends closure,
// base-files and base-passwd into root (created; it must not exist or be
// empty) and adds what their maintainer scripts would have made (see
// DebianRootFS). logf, if not nil, is told what is downloaded. It needs
// apt-cache, apt-get and dpkg-deb, and root to set file owners.
func BuildDebianRootFS(ctx context.Context, root string, pkgs []string, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	all := append([]string{"base-files", "base-passwd"}, pkgs...)
	names, err := resolveClosure(ctx, all)
	if err != nil {
		return err
	}
	debs, err := fetchDebs(ctx, names, logf)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	// In name order, so a file two packages ship (debconf and cdebconf,
	// both in the closure as alternatives) always comes from the same one.
	for _, d := range debs {
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", d.path, root).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg-deb -x %s: %w: %s", filepath.Base(d.path), err, bytes.TrimSpace(out))
		}
	}
	if err := fixBase(root); err != nil {
		return fmt.Errorf("base fix-ups: %w", err)
	}
	for _, d := range debs {
		if fix := packageFixups[d.name]; fix != nil {
			if err := fix(root); err != nil {
				return fmt.Errorf("%s fix-ups: %w", d.name, err)
			}
		}
	}
	return nil
}

// resolveClosure lists pkgs and every package they depend on (Depends and
// Pre-Depends, recursively, every alternative), real packages of this
// machine's architecture only, sorted.
func resolveClosure(ctx context.Context, pkgs []string) ([]string, error) {
	arch, err := output(ctx, "dpkg", "--print-architecture")
	if err != nil {
		return nil, err
	}
	arch = strings.TrimSpace(arch)
	args := append([]string{"depends", "--recurse", "--no-recommends", "--no-suggests",
		"--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"}, pkgs...)
	out, err := output(ctx, "apt-cache", args...)
	if err != nil {
		return nil, fmt.Errorf("%w (has apt-get update been run?)", err)
	}
	seen := map[string]bool{}
	var names []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		// Package names start a line; their dependencies are indented;
		// <virtual> packages are provided by real ones, listed too.
		if line == "" || line[0] == ' ' || line[0] == '<' {
			continue
		}
		name, a, hasArch := strings.Cut(line, ":")
		if hasArch && a != arch {
			continue
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for _, p := range pkgs {
		if !seen[p] {
			return nil, fmt.Errorf("apt-cache depends: package %q not found", p)
		}
	}
	sort.Strings(names)
	return names, nil
}

// deb is a package file to unpack.
type deb struct {
	name string
	path string
}

// fetchDebs finds the candidate version of each package in apt's cache or
// DebCacheDir, downloads those missing into DebCacheDir, and prunes it.
func fetchDebs(ctx context.Context, names []string, logf func(string, ...any)) ([]deb, error) {
	files, err := candidateFiles(ctx, names)
	if err != nil {
		return nil, err
	}
	cache := DebCacheDir()
	if err := os.MkdirAll(cache, 0o755); err != nil {
		// No place to keep them: download for this build only.
		tmp, terr := os.MkdirTemp("", "dcos-debs-")
		if terr != nil {
			return nil, fmt.Errorf("deb cache %s: %w", cache, err)
		}
		defer os.RemoveAll(tmp)
		cache = tmp
	}
	debs := make([]deb, 0, len(names))
	var missing []string // name=version
	now := time.Now()
	for _, n := range names {
		f := files[n]
		if p := filepath.Join(aptArchives, f.file); exists(p) {
			debs = append(debs, deb{n, p})
			continue
		}
		p := filepath.Join(cache, f.file)
		if exists(p) {
			os.Chtimes(p, now, now) // used: keep it
		} else {
			missing = append(missing, n+"="+f.version)
		}
		debs = append(debs, deb{n, p})
	}
	if len(missing) > 0 {
		start := time.Now()
		if err := download(ctx, cache, missing); err != nil {
			return nil, err
		}
		logf("imagetest: downloaded %d Debian packages into %s in %s", len(missing), cache, time.Since(start).Round(time.Millisecond))
	}
	for _, d := range debs {
		if !exists(d.path) {
			return nil, fmt.Errorf("apt-get download %s: no %s afterwards", d.name, d.path)
		}
	}
	pruneDebCache(cache, now)
	return debs, nil
}

type candidate struct{ version, file string }

// candidateFiles maps each package to its candidate version and the file
// name apt-get download gives it (NAME_VERSION_ARCH.deb, ":" as "%3a").
func candidateFiles(ctx context.Context, names []string) (map[string]candidate, error) {
	out, err := output(ctx, "apt-cache", append([]string{"show", "--no-all-versions"}, names...)...)
	if err != nil {
		return nil, err
	}
	files := map[string]candidate{}
	for _, stanza := range strings.Split(out, "\n\n") {
		f := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			if k, v, ok := strings.Cut(line, ": "); ok && line[0] != ' ' {
				f[k] = v
			}
		}
		if f["Package"] == "" || f["Version"] == "" || f["Architecture"] == "" {
			continue
		}
		if _, dup := files[f["Package"]]; dup {
			continue
		}
		files[f["Package"]] = candidate{
			version: f["Version"],
			file:    fmt.Sprintf("%s_%s_%s.deb", f["Package"], strings.ReplaceAll(f["Version"], ":", "%3a"), f["Architecture"]),
		}
	}
	for _, n := range names {
		if _, ok := files[n]; !ok {
			return nil, fmt.Errorf("apt-cache show: no candidate version of %s", n)
		}
	}
	return files, nil
}

// download runs apt-get download for pkgs (name=version) in a temporary
// directory of cache and moves the files into cache, so that a concurrent
// build never sees a partial file.
func download(ctx context.Context, cache string, pkgs []string) error {
	tmp, err := os.MkdirTemp(cache, ".download-")
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer os.RemoveAll(tmp)
	// apt fetches as user _apt when it can write the directory, else as
	// root with a warning.
	os.Chmod(tmp, 0o777)
	cmd := exec.CommandContext(ctx, "apt-get", append([]string{"download", "-q"}, pkgs...)...)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download: %w: %s", err, tailLines(out, 5))
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".deb") {
			if err := os.Rename(filepath.Join(tmp, e.Name()), filepath.Join(cache, e.Name())); err != nil {
				return fmt.Errorf("download: %w", err)
			}
		}
	}
	return nil
}

// pruneDebCache deletes .deb files unused for debCacheMaxAge, and partial
// downloads of builds that died, from cache.
func pruneDebCache(cache string, now time.Time) {
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < debCacheMaxAge {
			continue
		}
		if strings.HasSuffix(e.Name(), ".deb") || strings.HasPrefix(e.Name(), ".download-") {
			os.RemoveAll(filepath.Join(cache, e.Name()))
		}
	}
}

// fixBase adds what every root filesystem needs and no package ships in a
// form dpkg-deb -x leaves: the user and group databases (base-passwd's
// postinst copies its masters) and the mount points and scratch
// directories a container runtime expects.
func fixBase(root string) error {
	for _, f := range []struct{ master, file string }{
		{"usr/share/base-passwd/passwd.master", "etc/passwd"},
		{"usr/share/base-passwd/group.master", "etc/group"},
	} {
		dst := filepath.Join(root, f.file)
		if exists(dst) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, f.master))
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{"proc", 0o555}, {"sys", 0o555}, {"dev", 0o755}, {"run", 0o755},
		{"tmp", os.ModeSticky | 0o777}, {"var/tmp", os.ModeSticky | 0o777}, {"root", 0o700},
	} {
		if err := mkdirMode(filepath.Join(root, d.path), d.mode, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// packageFixups do what a package's maintainer scripts would have done,
// by package name; they run after fixBase, in package-name order.
var packageFixups = map[string]func(root string) error{
	"nginx-common": fixNginx,
}

// fixNginx does what nginx-common's postinst does on a fresh install, and
// what nginx makes on its first start, so that it also starts on a
// read-only root: logs owned by www-data:adm, the default site enabled,
// the default page in /var/www/html, its temp directories, and /run.
func fixNginx(root string) error {
	wwwUID, err := lookupID(filepath.Join(root, "etc/passwd"), "www-data")
	if err != nil {
		return err
	}
	wwwGID, err := lookupID(filepath.Join(root, "etc/group"), "www-data")
	if err != nil {
		return err
	}
	admGID, err := lookupID(filepath.Join(root, "etc/group"), "adm")
	if err != nil {
		return err
	}
	logs := filepath.Join(root, "var/log/nginx")
	if err := mkdirMode(logs, 0o755, 0, admGID); err != nil {
		return err
	}
	for _, f := range []string{"access.log", "error.log"} {
		p := filepath.Join(logs, f)
		if err := os.WriteFile(p, nil, 0o640); err != nil {
			return err
		}
		if err := os.Lchown(p, wwwUID, admGID); err != nil {
			return err
		}
	}
	for _, d := range []string{"body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := mkdirMode(filepath.Join(root, "var/lib/nginx", d), 0o700, wwwUID, wwwGID); err != nil {
			return err
		}
	}
	if err := mkdirMode(filepath.Join(root, "run"), 0o755, 0, 0); err != nil {
		return err
	}
	site := filepath.Join(root, "etc/nginx/sites-enabled/default")
	if _, err := os.Lstat(site); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink("../sites-available/default", site); err != nil {
			return err
		}
	}
	page := filepath.Join(root, "var/www/html/index.nginx-debian.html")
	if !exists(page) {
		if err := mkdirMode(filepath.Dir(page), 0o755, 0, 0); err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(root, "usr/share/nginx/html/index.html"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(page, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// lookupID finds name's id (the third field) in a passwd or group file.
func lookupID(file, name string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 3 && f[0] == name {
			id, err := strconv.Atoi(f[2])
			if err != nil {
				return 0, fmt.Errorf("%s: %s: id %q: %w", file, name, f[2], err)
			}
			return id, nil
		}
	}
	return 0, fmt.Errorf("%s: no %s", file, name)
}

// mkdirMode makes dir (and its parents) and sets its mode and owner,
// whether or not it existed.
func mkdirMode(dir string, mode os.FileMode, uid, gid int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// output runs a command and returns its stdout, or an error with the end
// of its stderr.
func output(ctx context.Context, name string, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, args[0], err, tailLines(stderr.Bytes(), 5))
	}
	return string(out), nil
}

// tailLines is the last n lines of out, for error messages.
func tailLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
