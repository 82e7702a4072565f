//go:build linux

package taskinit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// report is testdata/probe's output.
type report struct {
	Pid, Ppid, UID, GID int
	Hostname, Cwd       string
	Status              map[string]string
	ProcPids            []string
	Exists              map[string]bool
	Writes              map[string]string
	Reads               map[string]string
	Modes               map[string]string
}

var probe struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if probe.dir != "" {
		os.RemoveAll(probe.dir)
	}
	os.Exit(code)
}

// probePath builds testdata/probe (static, once per test binary).
func probePath(t *testing.T) string {
	t.Helper()
	probe.once.Do(func() {
		if probe.dir, probe.err = os.MkdirTemp("", "taskinit-probe-"); probe.err != nil {
			return
		}
		probe.path = filepath.Join(probe.dir, "probe")
		cmd := exec.Command("go", "build", "-o", probe.path, "./testdata/probe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probe.err = fmt.Errorf("go build probe: %v\n%s", err, out)
		}
	})
	if probe.err != nil {
		t.Fatal(probe.err)
	}
	return probe.path
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: the task init's namespaces and mounts need root")
	}
}

// newRootFS is a root filesystem holding /bin/probe (and /etc, /dev,
// /proc, /sys left to the init to make).
func newRootFS(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(probePath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "probe"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// hostMarker is a file in the node's temporary directory that no
// container may see.
func hostMarker(t *testing.T) string {
	t.Helper()
	f, err := os.CreateTemp("", "dcos-host-marker-")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() { os.Remove(f.Name()) })
	return f.Name()
}

// mountCounts counts the node's mounts at the paths a leak from the
// init would show at: under dir, and the node's own /, /proc, /sys,
// /dev, /dev/pts, /dev/shm.
func mountCounts(t *testing.T, dir string) map[string]int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := f[4]
		switch {
		case strings.HasPrefix(mp, dir), mp == "/", mp == "/proc", mp == "/sys", mp == "/dev", mp == "/dev/pts", mp == "/dev/shm":
			n[mp]++
		}
	}
	return n
}

// checkNoLeak fails t if the node's mounts at the paths mountCounts
// watches changed since before.
func checkNoLeak(t *testing.T, dir string, before map[string]int) {
	t.Helper()
	after := mountCounts(t, dir)
	for mp, n := range after {
		if before[mp] != n {
			t.Errorf("node mounts at %s: %d after the task, %d before", mp, n, before[mp])
		}
	}
	for mp, n := range before {
		if _, ok := after[mp]; !ok {
			t.Errorf("node mounts at %s: gone after the task (%d before)", mp, n)
		}
	}
}

type result struct {
	startErr  error
	code, sig int
	stdout    string
	stderr    string
	rep       report
}

// startInit starts path (args) under the init as the supervisor does.
func startInit(t *testing.T, s *Spec, path string, args ...string) (*exec.Cmd, *Start, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string{path}, args...),
		Env:         []string{"PATH=/usr/bin:/bin"},
		Stdout:      &out,
		Stderr:      &errb,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	st, err := Prepare(cmd, s)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if err := cmd.Start(); err != nil {
		st.Close()
		t.Fatalf("start: %v", err)
	}
	return cmd, st, &out, &errb
}

// wait reaps cmd and maps its exit as the supervisor does.
func wait(cmd *exec.Cmd, st *Start) (code, sig int) {
	cmd.Wait()
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	code, sig = ws.ExitStatus(), 0
	if ws.Signaled() {
		code, sig = -1, int(ws.Signal())
	}
	return st.Exit(code, sig)
}

// runInit runs path under the init to its end, checking that no mount is
// left on the node.
func runInit(t *testing.T, s *Spec, path string, args ...string) result {
	t.Helper()
	watch := filepath.Dir(s.RootFS)
	if s.RootFS == "" {
		watch = os.TempDir()
	}
	before := mountCounts(t, watch)
	cmd, st, out, errb := startInit(t, s, path, args...)
	var r result
	r.startErr = st.Started(30 * time.Second)
	r.code, r.sig = wait(cmd, st)
	r.stdout, r.stderr = out.String(), errb.String()
	if r.startErr == nil && r.code == 0 {
		if err := json.Unmarshal(out.Bytes(), &r.rep); err != nil {
			t.Fatalf("probe output %q (stderr %q): %v", out, errb, err)
		}
	}
	checkNoLeak(t, watch, before)
	return r
}

func mustRun(t *testing.T, s *Spec, path string, args ...string) report {
	t.Helper()
	r := runInit(t, s, path, args...)
	if r.startErr != nil || r.code != 0 || r.sig != 0 {
		t.Fatalf("run: start %v, exit %d, signal %d, stderr %q", r.startErr, r.code, r.sig, r.stderr)
	}
	return r.rep
}

// capMask is the /proc/self/status text of the capabilities names.
func capMask(names ...string) string {
	var m uint64
	for _, n := range names {
		i, ok := CapNumber(n)
		if !ok {
			panic(n)
		}
		m |= 1 << i
	}
	return fmt.Sprintf("%016x", m)
}

func TestContainer_Isolation(t *testing.T) {
	needRoot(t)
	root := newRootFS(t)
	marker := hostMarker(t)
	sandbox := filepath.Join(t.TempDir(), "sandbox")
	if err := os.Mkdir(sandbox, 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 box-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Spec{RootFS: root, PIDNamespace: true, Hostname: "box-1", Dir: "/dcos/sandbox",
		Binds: []Bind{{Source: sandbox, Target: "/dcos/sandbox"}, {Source: hosts, Target: "/etc/hosts", ReadOnly: true}}}
	rep := mustRun(t, s, "probe",
		"-exists", marker, "-exists", sandbox, "-exists", "/bin/probe",
		"-write", "/dcos/sandbox/out", "-write", "/etc/hosts", "-write", "/newfile", "-write", "/dev/shm/x",
		"-write", "/proc/sys/kernel/hostname", "-write", "/sys/kernel/x", "-write", "/dev/null",
		"-read", "/etc/hosts",
		"-stat", "/dev/null", "-stat", "/dev/fd", "-stat", "/dev/ptmx", "-stat", "/dev/pts/ptmx", "-stat", "/proc/keys", "-stat", "/proc/timer_list", "-stat", "/proc/kcore")
	if rep.Pid != 1 || rep.Ppid != 0 {
		t.Errorf("pid %d, ppid %d; want the entrypoint as pid 1", rep.Pid, rep.Ppid)
	}
	if !slices.Equal(rep.ProcPids, []string{"1"}) {
		t.Errorf("/proc pids %q; want only the container's own [1]", rep.ProcPids)
	}
	if rep.Hostname != "box-1" {
		t.Errorf("hostname %q, want box-1", rep.Hostname)
	}
	if rep.Cwd != "/dcos/sandbox" {
		t.Errorf("cwd %q, want /dcos/sandbox", rep.Cwd)
	}
	if rep.Exists[marker] || rep.Exists[sandbox] || !rep.Exists["/bin/probe"] {
		t.Errorf("exists %v: want the image's /bin/probe and none of the node's files", rep.Exists)
	}
	for _, p := range []string{"/dcos/sandbox/out", "/newfile", "/dev/shm/x", "/dev/null"} {
		if rep.Writes[p] != "" {
			t.Errorf("write %s: %s", p, rep.Writes[p])
		}
	}
	for _, p := range []string{"/etc/hosts", "/proc/sys/kernel/hostname", "/sys/kernel/x"} {
		if !strings.Contains(rep.Writes[p], "read-only file system") {
			t.Errorf("write %s: %q, want a read-only file system", p, rep.Writes[p])
		}
	}
	if b, err := os.ReadFile(filepath.Join(sandbox, "out")); err != nil || string(b) != "written\n" {
		t.Errorf("the sandbox on the node: out = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(root, "newfile")); err != nil {
		t.Errorf("the root on the node: %v", err)
	}
	if rep.Reads["/etc/hosts"] != "127.0.0.1 box-1\n" {
		t.Errorf("/etc/hosts = %q", rep.Reads["/etc/hosts"])
	}
	for p, want := range map[string]string{"/dev/null": "Dcrw-rw-rw-", "/dev/fd": "L", "/dev/ptmx": "L", "/dev/pts/ptmx": "Dc"} {
		if !strings.HasPrefix(rep.Modes[p], want) {
			t.Errorf("%s: mode %q, want %s…", p, rep.Modes[p], want)
		}
	}
	// The node's files in /proc that a task must not read are /dev/null
	// (kcore is not in every kernel).
	for _, p := range []string{"/proc/keys", "/proc/timer_list", "/proc/kcore"} {
		if _, err := os.Stat(p); err == nil && rep.Modes[p] != "Dcrw-rw-rw-" {
			t.Errorf("%s: mode %q, want /dev/null's", p, rep.Modes[p])
		}
	}
	def := capMask(DefaultContainerCaps...)
	if def != "00000000800405fb" {
		t.Errorf("DefaultContainerCaps = %s, want Docker's 00000000a80425fb without MKNOD, NET_RAW, AUDIT_WRITE", def)
	}
	for _, k := range []string{"CapBnd", "CapEff", "CapPrm"} {
		if rep.Status[k] != def {
			t.Errorf("%s = %s, want the default set %s", k, rep.Status[k], def)
		}
	}
	if rep.Status["CapInh"] != capMask() || rep.Status["CapAmb"] != capMask() || rep.Status["NoNewPrivs"] != "0" {
		t.Errorf("status %v: want no inheritable or ambient capabilities and no no_new_privs", rep.Status)
	}
}

// The driver's root is an overlayfs mount; read-only it stays unwritable
// but for the sandbox and /dev/shm.
func TestContainer_ReadOnlyRoot(t *testing.T) {
	needRoot(t)
	lower := newRootFS(t)
	base := filepath.Dir(lower)
	upper, work, merged := filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount("overlay", merged, "overlay", 0, "lowerdir="+lower+",upperdir="+upper+",workdir="+work); err != nil {
		t.Fatalf("overlayfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(merged, 0); err != nil {
			t.Errorf("unmount the overlay: %v", err)
		}
	})
	sandbox := filepath.Join(t.TempDir(), "sandbox")
	if err := os.Mkdir(sandbox, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Spec{RootFS: merged, PIDNamespace: true, ReadOnlyRoot: true, Binds: []Bind{{Source: sandbox, Target: "/dcos/sandbox"}}}
	rep := mustRun(t, s, "/bin/probe", "-write", "/newfile", "-write", "/bin/x", "-write", "/dcos/sandbox/out", "-write", "/dev/shm/x")
	for _, p := range []string{"/newfile", "/bin/x"} {
		if !strings.Contains(rep.Writes[p], "read-only file system") {
			t.Errorf("write %s: %q, want a read-only file system", p, rep.Writes[p])
		}
	}
	for _, p := range []string{"/dcos/sandbox/out", "/dev/shm/x"} {
		if rep.Writes[p] != "" {
			t.Errorf("write %s: %s", p, rep.Writes[p])
		}
	}
	if rep.Cwd != "/" {
		t.Errorf("cwd %q, want / by default", rep.Cwd)
	}
	// The node's overlay mount stays writable.
	if err := os.WriteFile(filepath.Join(merged, "fromnode"), nil, 0o644); err != nil {
		t.Errorf("the node's root mount: %v", err)
	}
}

func TestContainer_Credentials(t *testing.T) {
	needRoot(t)
	for _, tt := range []struct {
		name     string
		uid      uint32
		caps     []string
		bnd, eff string
		nnp      string
	}{
		{name: "root default", uid: 0, bnd: capMask(DefaultContainerCaps...), eff: capMask(DefaultContainerCaps...), nnp: "0"},
		{name: "root chosen", uid: 0, caps: []string{"CAP_KILL", "net_bind_service"}, bnd: capMask("CAP_KILL", "CAP_NET_BIND_SERVICE"), eff: capMask("CAP_KILL", "CAP_NET_BIND_SERVICE"), nnp: "0"},
		{name: "root none", uid: 0, caps: []string{}, bnd: capMask(), eff: capMask(), nnp: "0"},
		{name: "user", uid: 1000, caps: []string{"CAP_KILL"}, bnd: capMask(), eff: capMask(), nnp: "1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := newRootFS(t)
			sandbox := filepath.Join(t.TempDir(), "sandbox")
			if err := os.Mkdir(sandbox, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(sandbox, int(tt.uid), int(tt.uid)); err != nil {
				t.Fatal(err)
			}
			s := &Spec{UID: tt.uid, GID: tt.uid, Groups: []uint32{tt.uid + 1}, RootFS: root, PIDNamespace: true, Caps: tt.caps,
				Binds: []Bind{{Source: sandbox, Target: "/sandbox"}}}
			rep := mustRun(t, s, "probe", "-write", "/sandbox/out")
			if rep.UID != int(tt.uid) || rep.GID != int(tt.uid) {
				t.Errorf("uid %d gid %d, want %d", rep.UID, rep.GID, tt.uid)
			}
			if rep.Status["CapBnd"] != tt.bnd || rep.Status["CapEff"] != tt.eff || rep.Status["CapPrm"] != tt.eff || rep.Status["NoNewPrivs"] != tt.nnp {
				t.Errorf("status %v; want CapBnd %s, CapEff/CapPrm %s, NoNewPrivs %s", rep.Status, tt.bnd, tt.eff, tt.nnp)
			}
			if rep.Writes["/sandbox/out"] != "" {
				t.Errorf("write the sandbox: %s", rep.Writes["/sandbox/out"])
			}
		})
	}
}

func TestContainer_Failures(t *testing.T) {
	needRoot(t)
	for _, tt := range []struct {
		name, path string
		spec       func(root string) *Spec
		want       string
	}{
		{name: "not in PATH", path: "nope", want: "exec nope: no such file or directory in the image's PATH"},
		{name: "missing path", path: "/bin/nope", want: "exec /bin/nope: no such file or directory"},
		{name: "no rootfs", path: "probe", spec: func(root string) *Spec {
			return &Spec{RootFS: filepath.Join(root, "missing"), PIDNamespace: true}
		}, want: "bind rootfs "},
		{name: "no bind source", path: "probe", spec: func(root string) *Spec {
			return &Spec{RootFS: root, PIDNamespace: true, Binds: []Bind{{Source: filepath.Join(root, "..", "missing"), Target: "/x"}}}
		}, want: "missing: no such file or directory"},
		{name: "bad dir", path: "probe", spec: func(root string) *Spec {
			return &Spec{RootFS: root, PIDNamespace: true, Dir: "/nowhere"}
		}, want: "chdir /nowhere: no such file or directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := newRootFS(t)
			s := &Spec{RootFS: root, PIDNamespace: true}
			if tt.spec != nil {
				s = tt.spec(root)
			}
			r := runInit(t, s, tt.path)
			t.Logf("start error: %v", r.startErr)
			if r.startErr == nil || !strings.Contains(r.startErr.Error(), tt.want) {
				t.Errorf("start error %v, want one saying %q", r.startErr, tt.want)
			}
			if r.code != 127 || r.sig != 0 {
				t.Errorf("exit %d, signal %d; want 127", r.code, r.sig)
			}
		})
	}
}

// A symbolic link in the image cannot lead a bind out of the root: the
// target resolves inside it.
func TestContainer_BindSymlinkStaysInside(t *testing.T) {
	needRoot(t)
	root := newRootFS(t)
	outside := t.TempDir() // the node's
	if err := os.Symlink(outside, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../..", filepath.Join(root, "up")); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(hosts, []byte("h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sandbox := t.TempDir()
	s := &Spec{RootFS: root, PIDNamespace: true, Binds: []Bind{
		{Source: hosts, Target: "/etc/hosts", ReadOnly: true},
		{Source: sandbox, Target: "/up/sb"},
	}}
	rep := mustRun(t, s, "probe", "-read", "/etc/hosts", "-write", "/sb/x")
	if rep.Reads["/etc/hosts"] != "h\n" || rep.Writes["/sb/x"] != "" {
		t.Errorf("inside: /etc/hosts %q, write /sb/x %q", rep.Reads["/etc/hosts"], rep.Writes["/sb/x"])
	}
	if _, err := os.Lstat(filepath.Join(outside, "hosts")); err == nil {
		t.Errorf("the bind's target was made on the node, in %s", outside)
	}
	if _, err := os.Stat(filepath.Join(root, outside, "hosts")); err != nil {
		t.Errorf("the target inside the root: %v", err)
	}
	if _, err := os.Stat("/sb"); err == nil {
		t.Errorf("/sb made on the node")
	}
}

// The init is the entrypoint: its exit and the signal that kills it are
// the task's.
func TestContainer_ExitPassesThrough(t *testing.T) {
	needRoot(t)
	root := newRootFS(t)
	s := &Spec{RootFS: root, PIDNamespace: true}
	if r := runInit(t, s, "probe", "-exit", "3"); r.startErr != nil || r.code != 3 || r.sig != 0 {
		t.Errorf("exit 3: start %v, exit %d, signal %d", r.startErr, r.code, r.sig)
	}
	before := mountCounts(t, filepath.Dir(root))
	cmd, st, _, _ := startInit(t, s, "probe", "-sleep")
	if err := st.Started(30 * time.Second); err != nil {
		t.Fatalf("started: %v", err)
	}
	// SIGTERM from the node: pid 1 without a handler does not get it;
	// SIGKILL it does.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if code, sig := wait(cmd, st); code != -1 || sig != int(syscall.SIGKILL) {
		t.Errorf("killed: exit %d, signal %d; want -1, 9", code, sig)
	}
	checkNoLeak(t, filepath.Dir(root), before)
}

func TestContainer_Enter(t *testing.T) {
	needRoot(t)
	root := newRootFS(t)
	marker := hostMarker(t)
	sandbox := t.TempDir()
	if err := os.Chmod(sandbox, 0o777); err != nil {
		t.Fatal(err)
	}
	s := &Spec{RootFS: root, PIDNamespace: true, Hostname: "box-e", Binds: []Bind{{Source: sandbox, Target: "/sandbox"}}}
	cmd, st, _, _ := startInit(t, s, "probe", "-sleep")
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		wait(cmd, st)
	}()
	if err := st.Started(30 * time.Second); err != nil {
		t.Fatalf("started: %v", err)
	}
	for _, tt := range []struct {
		name string
		e    EnterSpec
		uid  int
		cwd  string
		bnd  string
		eff  string
		nnp  string
	}{
		{name: "root", e: EnterSpec{Credentials: &Spec{}, Caps: DefaultContainerCaps},
			cwd: "/", bnd: capMask(DefaultContainerCaps...), eff: capMask(DefaultContainerCaps...), nnp: "0"},
		{name: "user", e: EnterSpec{Credentials: &Spec{UID: 1000, GID: 1000}, Dir: "/sandbox"},
			uid: 1000, cwd: "/sandbox", bnd: capMask(), eff: capMask(), nnp: "1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			c := &exec.Cmd{Path: "probe", Args: []string{"probe", "-exists", marker, "-exists", "/bin/probe", "-write", "/sandbox/" + tt.name},
				Env: []string{"PATH=/bin"}, Stdout: &out, Stderr: &errb, SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
			e := tt.e
			e.PID = cmd.Process.Pid
			if err := Enter(c, &e); err != nil {
				t.Fatal(err)
			}
			if err := c.Run(); err != nil {
				t.Fatalf("enter: %v, stderr %q", err, errb.String())
			}
			var rep report
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("probe output %q: %v", out.String(), err)
			}
			if rep.Hostname != "box-e" || rep.Pid == 1 || !slices.Contains(rep.ProcPids, "1") {
				t.Errorf("hostname %q, pid %d, /proc pids %q; want the container's", rep.Hostname, rep.Pid, rep.ProcPids)
			}
			if rep.Exists[marker] || !rep.Exists["/bin/probe"] {
				t.Errorf("exists %v: want the container's root", rep.Exists)
			}
			if rep.Cwd != tt.cwd || rep.UID != tt.uid {
				t.Errorf("cwd %q uid %d, want %q %d", rep.Cwd, rep.UID, tt.cwd, tt.uid)
			}
			if rep.Status["CapBnd"] != tt.bnd || rep.Status["CapEff"] != tt.eff || rep.Status["NoNewPrivs"] != tt.nnp {
				t.Errorf("status %v; want CapBnd %s, CapEff %s, NoNewPrivs %s", rep.Status, tt.bnd, tt.eff, tt.nnp)
			}
			if rep.Writes["/sandbox/"+tt.name] != "" {
				t.Errorf("write the sandbox: %s", rep.Writes["/sandbox/"+tt.name])
			}
		})
	}
	var errb bytes.Buffer
	c := &exec.Cmd{Path: "nope", Args: []string{"nope"}, Env: []string{"PATH=/bin"}, Stderr: &errb}
	if err := Enter(c, &EnterSpec{PID: cmd.Process.Pid, Caps: []string{}}); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := c.Run(); !errors.As(err, &ee) || ee.ExitCode() != 127 || !strings.Contains(errb.String(), "exec nope: no such file or directory") {
		t.Errorf("enter a missing command: %v, stderr %q; want 127 and why", err, errb.String())
	}
}

// Hostname outside container mode: the task's uts namespace, with the
// init as its pid 1 and the task its pid 2.
func TestSpec_HostnameOutsideContainer(t *testing.T) {
	needRoot(t)
	rep := mustRun(t, &Spec{PIDNamespace: true, KeepCaps: true, Hostname: "plain-1"}, probePath(t))
	if rep.Hostname != "plain-1" || rep.Pid != 2 {
		t.Errorf("hostname %q, pid %d; want plain-1, 2", rep.Hostname, rep.Pid)
	}
	if h, _ := os.Hostname(); h == "plain-1" {
		t.Errorf("the node's hostname changed")
	}
}

func TestPrepare_Refuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		dir  string
		s    Spec
		want string
	}{
		{name: "no pidns", s: Spec{RootFS: "/r"}, want: "PIDNamespace"},
		{name: "relative rootfs", s: Spec{RootFS: "r", PIDNamespace: true}, want: "rootfs \"r\": not an absolute path"},
		{name: "binds outside", s: Spec{Binds: []Bind{{Source: "/a", Target: "/b"}}}, want: "binds: only in container mode"},
		{name: "caps outside", s: Spec{Caps: []string{}}, want: "caps: only in container mode"},
		{name: "read-only outside", s: Spec{ReadOnlyRoot: true}, want: "read-only root: only in container mode"},
		{name: "dir outside", s: Spec{Dir: "/x"}, want: "dir: only in container mode"},
		{name: "relative target", s: Spec{RootFS: "/r", PIDNamespace: true, Binds: []Bind{{Source: "/a", Target: "b"}}}, want: "binds[0]: target \"b\""},
		{name: "root target", s: Spec{RootFS: "/r", PIDNamespace: true, Binds: []Bind{{Source: "/a", Target: "/"}}}, want: "binds[0]: target \"/\""},
		{name: "relative source", s: Spec{RootFS: "/r", PIDNamespace: true, Binds: []Bind{{Source: "a", Target: "/b"}}}, want: "binds[0]: source \"a\""},
		{name: "unknown cap", s: Spec{RootFS: "/r", PIDNamespace: true, Caps: []string{"CAP_FLY"}}, want: "caps: unknown capability \"CAP_FLY\""},
		{name: "relative dir", s: Spec{RootFS: "/r", PIDNamespace: true, Dir: "x"}, want: "dir \"x\": not an absolute path"},
		{name: "long hostname", s: Spec{Hostname: strings.Repeat("h", 65)}, want: "hostname"},
		{name: "cmd dir", dir: "/srv", s: Spec{RootFS: "/r", PIDNamespace: true}, want: "dir \"/srv\": in container mode"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := &exec.Cmd{Path: "/bin/true", Dir: tt.dir}
			st, err := Prepare(cmd, &tt.s)
			if err == nil {
				st.Close()
				t.Fatalf("Prepare: no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Prepare: %v, want %q", err, tt.want)
			}
		})
	}
	if err := Enter(&exec.Cmd{Path: "x"}, &EnterSpec{PID: 1, Caps: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), "unknown capability \"nope\"") {
		t.Errorf("Enter with an unknown capability: %v", err)
	}
}

// The cgroups left to the init (the supervisor's cgroup v1 cpu
// directories) are joined before the node's files are gone, and the
// container sees itself at its cgroup namespace's root.
func TestContainer_Cgroups(t *testing.T) {
	needRoot(t)
	parent := "/sys/fs/cgroup/cpu"
	if _, err := os.Stat(filepath.Join(parent, "cgroup.procs")); err != nil {
		parent = "/sys/fs/cgroup"
		if _, err := os.Stat(filepath.Join(parent, "cgroup.procs")); err != nil {
			t.Skip("no cgroup v1 cpu or cgroup v2 hierarchy at /sys/fs/cgroup")
		}
	}
	dir, err := os.MkdirTemp(parent, "taskinit-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove the cgroup: %v", err)
		}
	})
	root := newRootFS(t)
	s := &Spec{RootFS: root, PIDNamespace: true, Cgroups: []string{dir}}
	rep := mustRun(t, s, "probe", "-read", "/proc/self/cgroup")
	if c := rep.Reads["/proc/self/cgroup"]; !strings.Contains(c, ":/\n") || strings.Contains(c, filepath.Base(dir)) {
		t.Errorf("/proc/self/cgroup inside:\n%s\nwant the namespace's roots", c)
	}
	cmd, st, _, _ := startInit(t, s, "probe", "-sleep")
	if err := st.Started(30 * time.Second); err != nil {
		t.Fatalf("started: %v", err)
	}
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	wait(cmd, st)
	if err != nil || strings.TrimSpace(string(procs)) != fmt.Sprint(cmd.Process.Pid) {
		t.Errorf("%s/cgroup.procs = %q, %v; want the task's pid %d", dir, procs, err, cmd.Process.Pid)
	}
}
