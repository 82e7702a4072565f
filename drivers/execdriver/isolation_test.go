package execdriver

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

const testUID = 1900000123

// isolatedDriver returns a driver and a sandbox for isolated tasks of
// testUID. It skips unless the test runs as root (the supervisor must be
// root to switch users and make namespaces).
func isolatedDriver(t *testing.T) (*Driver, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("task isolation needs root")
	}
	d, dir := newDriver(t)
	caps, _ := d.Capabilities(context.Background())
	if !caps.Isolation {
		t.Fatal("Capabilities.Isolation = false as root")
	}
	sb := filepath.Join(dir, "sandboxes", "t") // under the driver's 0700 temp dir
	if err := os.MkdirAll(sb, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sb, testUID, testUID); err != nil {
		t.Fatal(err)
	}
	return d, sb
}

func isolatedTask(id, sb string, hidden []string, script string) *contract.TaskConfig {
	return &contract.TaskConfig{ID: id, Command: "sh", Args: []string{"-c", script}, WorkDir: sb,
		Env:        map[string]string{"PATH": testPath, "SECRET": "s3cret"},
		StdoutPath: filepath.Join(sb, "stdout-"+id), StderrPath: filepath.Join(sb, "stderr-"+id),
		Isolation: &contract.TaskIsolation{UID: testUID, GID: testUID, HiddenPaths: hidden, Sandbox: sb}}
}

// TestDriver_Isolation runs real tasks under the task init and checks
// from inside what they are and see.
func TestDriver_Isolation(t *testing.T) {
	t.Parallel()
	d, sb := isolatedDriver(t)
	secretDir := t.TempDir()
	os.Chmod(secretDir, 0o755) // readable by all: only the hiding protects it
	os.WriteFile(filepath.Join(secretDir, "token"), []byte("operator-token"), 0o644)
	secretFile := filepath.Join(t.TempDir(), "tokens.json")
	os.Chmod(filepath.Dir(secretFile), 0o755)
	os.WriteFile(secretFile, []byte("operator-token"), 0o644)
	sibling := filepath.Join(filepath.Dir(sb), "other")
	os.MkdirAll(sibling, 0o755)
	os.WriteFile(filepath.Join(sibling, "file"), []byte("other"), 0o644)
	hidden := []string{filepath.Dir(filepath.Dir(sb)), secretDir, secretFile}

	script := `set -e
cd "$PWD"
grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status
echo "pid=$$"
echo "procs=$(ls /proc | grep -E '^[0-9]+$' | tr '\n' ' ')"
echo "init=$(head -c 9 /proc/1/cmdline)"
echo "secretdir=$(ls -A ` + secretDir + ` | tr '\n' ' ')"
echo "secretfile=$(cat ` + secretFile + `)"
echo "sibling=$(ls ` + sibling + ` 2>/dev/null)"
echo hello >` + sb + `/written
echo "written=$(cat written)"
echo "cgroup=$(echo $$ >/sys/fs/cgroup/unified/cgroup.procs 2>&1 && echo escaped || echo refused)"
echo "cgroupns=$(cut -d: -f3 /proc/self/cgroup | sort -u | tr '\n' ' ')"
echo "kill1=$(kill -0 1 2>/dev/null && echo yes || echo no)"
`
	start(t, d, isolatedTask("iso", sb, hidden, script))
	if r := wait(t, d, "iso"); !r.Successful() {
		b, _ := os.ReadFile(filepath.Join(sb, "stderr-iso"))
		t.Fatalf("task: %+v: %s", r, b)
	}
	out, _ := os.ReadFile(filepath.Join(sb, "stdout-iso"))
	t.Logf("task output:\n%s", out)
	got := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(k, "=") {
			got[k] = strings.TrimSpace(v)
		} else if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = strings.TrimSpace(v)
		}
	}
	id := strconv.Itoa(testUID)
	zero := "0000000000000000"
	for k, want := range map[string]string{
		"Uid": id + "\t" + id + "\t" + id + "\t" + id, "Gid": id + "\t" + id + "\t" + id + "\t" + id, "Groups": "",
		"CapInh": zero, "CapPrm": zero, "CapEff": zero, "CapBnd": zero, "CapAmb": zero, "NoNewPrivs": "1",
		"init":      "dcos-init",
		"secretdir": "", "secretfile": "", "sibling": "", "written": "hello", "cgroup": "refused",
		"cgroupns": "/", "kill1": "no",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
	// Its own pid namespace: init is pid 1 (its threads take the next
	// pids), then the task and its children; nothing of the node.
	pid, _ := strconv.Atoi(got["pid"])
	if pid < 2 || pid > 64 {
		t.Errorf("pid = %q, want a small pid of its own namespace", got["pid"])
	}
	for _, p := range strings.Fields(got["procs"]) {
		if n, _ := strconv.Atoi(p); n != 1 && n < pid {
			t.Errorf("/proc shows pid %d besides init and the task (%s)", n, got["procs"])
		}
	}
	// The output files and what the task wrote are the task's.
	for _, f := range []string{"stdout-iso", "written"} {
		st, err := os.Stat(filepath.Join(sb, f))
		if err != nil || st.Sys().(*syscall.Stat_t).Uid != testUID {
			t.Errorf("%s: owner is not the task's uid: %v", f, err)
		}
	}
}

// TestDriver_IsolationExit: exit codes and signals come through the task
// init as they would without it, and SIGTERM ends a sleep at once (pid 1
// would ignore it: the task is not pid 1).
func TestDriver_IsolationExit(t *testing.T) {
	t.Parallel()
	d, sb := isolatedDriver(t)
	tests := []struct {
		name   string
		script string
		want   contract.ExitResult
	}{
		{name: "exit 0", script: "exit 0"},
		{name: "exit 3", script: "exit 3", want: contract.ExitResult{ExitCode: 3}},
		{name: "exit 143", script: "exit 143", want: contract.ExitResult{ExitCode: 143}},
		{name: "killed by SIGTERM", script: "kill -TERM $$", want: contract.ExitResult{ExitCode: -1, Signal: int(syscall.SIGTERM)}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "exit-" + strconv.Itoa(i)
			start(t, d, isolatedTask(id, sb, nil, tt.script))
			if got := wait(t, d, id); *got != tt.want {
				t.Errorf("exit = %+v, want %+v", *got, tt.want)
			}
		})
	}
	t.Run("StopTask", func(t *testing.T) {
		cfg := isolatedTask("stop", sb, nil, "")
		cfg.Command, cfg.Args = "sleep", []string{"100"}
		h := start(t, d, cfg)
		// The task init's memory, charged to the task's memory cgroup.
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(h.PID) + "/status"); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "RssAnon:") {
					t.Logf("task init %s", l)
				}
			}
		}
		t0 := time.Now()
		if err := d.StopTask(context.Background(), "stop", 5*time.Second, "SIGTERM"); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(t0); took > time.Second {
			t.Errorf("StopTask took %v: SIGTERM did not end sleep", took)
		}
		if got := wait(t, d, "stop"); got.Signal != int(syscall.SIGTERM) || got.ExitCode != -1 {
			t.Errorf("exit = %+v, want SIGTERM", *got)
		}
	})
	t.Run("missing binary", func(t *testing.T) {
		cfg := isolatedTask("hidden-bin", sb, []string{"/usr/bin"}, "")
		cfg.Command = "/usr/bin/true"
		_, err := d.StartTask(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "exec /usr/bin/true") {
			t.Fatalf("StartTask of a hidden binary: %v, want an exec error", err)
		}
	})
}

// TestDriver_IsolationCgroups: an isolated task ends up in all its
// cgroups, the cpu one included, which the task init joins itself just
// before it forks the task; the task sees them as the root of its cgroup
// namespace.
func TestDriver_IsolationCgroups(t *testing.T) {
	t.Parallel()
	d, sb := isolatedDriver(t)
	cpu, _ := testCgroup(t, "/sys/fs/cgroup/cpu", "cpu")
	mem, _ := testCgroup(t, "/sys/fs/cgroup/memory", "memory")
	cfg := isolatedTask("cg", sb, nil, `cut -d: -f3 /proc/self/cgroup | sort -u | tr '\n' ' '; exec sleep 30`)
	cfg.Cgroups = []string{cpu, mem}
	h := start(t, d, cfg)
	var child int
	deadline := time.Now().Add(10 * time.Second)
	for child == 0 && time.Now().Before(deadline) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(h.PID) + "/task/" + strconv.Itoa(h.PID) + "/children")
		if f := strings.Fields(string(b)); len(f) > 0 {
			child, _ = strconv.Atoi(f[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, dir := range []string{cpu, mem} {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		procs := strings.Fields(string(b))
		for _, pid := range []int{h.PID, child} {
			if !slicesContains(procs, strconv.Itoa(pid)) {
				t.Errorf("%s: cgroup.procs %v lacks %d (init %d, task %d)", dir, procs, pid, h.PID, child)
			}
		}
	}
	var out []byte
	for deadline := time.Now().Add(10 * time.Second); len(out) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		out, _ = os.ReadFile(filepath.Join(sb, "stdout-cg"))
	}
	if err := d.StopTask(context.Background(), "cg", time.Second, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "/" {
		t.Errorf("task's cgroups: %q, want the root of its namespace", out)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
