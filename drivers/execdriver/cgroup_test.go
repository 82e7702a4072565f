package execdriver

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

func execCommand(dir string) *exec.Cmd {
	return exec.Command(os.Args[0], "supervisor", "--state-dir", dir)
}

// ownCgroup returns this process's cgroup path in the hierarchy whose
// controller list in /proc/self/cgroup is controllers ("" for v2).
func ownCgroup(t testing.TB, pid int, controllers string) string {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.SplitN(sc.Text(), ":", 3)
		if len(p) == 3 && p[1] == controllers {
			return p[2]
		}
	}
	return ""
}

// testCgroup creates a cgroup under this process's own cgroup of the
// hierarchy mounted at mount, removed at cleanup (after the tasks are
// killed). It skips when the hierarchy is absent.
func testCgroup(t testing.TB, mount, controllers string) (dir, rel string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(mount, "cgroup.procs")); err != nil {
		t.Skipf("cgroup hierarchy %s (%q) is absent: %v", mount, controllers, err)
	}
	own := ownCgroup(t, os.Getpid(), controllers)
	rel = filepath.Join(own, "execdriver-test-"+strconv.Itoa(os.Getpid())+"-"+strings.ReplaceAll(t.Name(), "/", "-"))
	dir = filepath.Join(mount, rel)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || os.IsNotExist(err) {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("cannot remove test cgroup: %v", err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir, rel
}

func TestDriver_Cgroups(t *testing.T) {
	// Not parallel with itself: the cases share nothing but are cheap.
	t.Parallel()
	const (
		v1Mount = "/sys/fs/cgroup/memory"
		v2Mount = "/sys/fs/cgroup/unified"
	)
	tests := []struct {
		name string
		v1   bool
		v2   bool
	}{
		{name: "v1 memory", v1: true},
		{name: "v2 unified", v2: true},
		{name: "v1 memory and v2", v1: true, v2: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := newDriver(t)
			var dirs []string
			want := map[string]string{} // controllers → cgroup path
			if tt.v1 {
				dir, rel := testCgroup(t, v1Mount, "memory")
				dirs = append(dirs, dir)
				want["memory"] = rel
			}
			if tt.v2 {
				if st, err := os.Stat(v2Mount); err != nil || !st.IsDir() {
					t.Skipf("no cgroup v2 hierarchy at %s", v2Mount)
				}
				dir, rel := testCgroup(t, v2Mount, "")
				dirs = append(dirs, dir)
				want[""] = rel
			}
			id := "cg-" + strconv.Itoa(i)
			// The child the task forks must be inside as well.
			h := start(t, d, &contract.TaskConfig{ID: id, Command: "sh", Args: []string{"-c", "sleep 30 & wait"}, Cgroups: dirs})
			pid := pidOf(t, h)
			for c, rel := range want {
				if got := ownCgroup(t, pid, c); got != rel {
					t.Errorf("task %d in %q cgroup %q, want %q", pid, c, got, rel)
				}
			}
			// One supervisor: on a loaded machine the executor may have
			// started a second while the first was slow to listen; that
			// one finds the lock taken and exits, so wait for it to go.
			sup := supervisorPids(d.cfg.StateDir)
			for wait := time.Now().Add(5 * time.Second); len(sup) > 1 && time.Now().Before(wait); sup = supervisorPids(d.cfg.StateDir) {
				time.Sleep(20 * time.Millisecond)
			}
			if len(sup) != 1 {
				t.Fatalf("supervisors: %v", sup)
			}
			for c := range want {
				checkThreadsHome(t, sup[0], c)
			}
			// Every process of the group, forked later, is inside.
			deadline := time.Now().Add(5 * time.Second)
			for {
				procs, _ := os.ReadFile(filepath.Join(dirs[0], "cgroup.procs"))
				if len(strings.Fields(string(procs))) == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("cgroup.procs = %q, want sh and sleep", procs)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := d.StopTask(context.Background(), id, 5*time.Second, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDriver_CgroupJoinFails: a cgroup the supervisor cannot join (a
// cpuset without CPUs) fails the start with an error naming the file, and
// undoes the joins before it: the supervisor is back in its own memory
// cgroup and no process is left.
func TestDriver_CgroupJoinFails(t *testing.T) {
	t.Parallel()
	d, dir := newDriver(t)
	mem, _ := testCgroup(t, "/sys/fs/cgroup/memory", "memory")
	cpuset, _ := testCgroup(t, "/sys/fs/cgroup/cpuset", "cpuset")
	_, err := d.StartTask(context.Background(), &contract.TaskConfig{ID: "cgfail", Command: "sleep", Args: []string{"30"},
		Env: map[string]string{"PATH": testPath}, Cgroups: []string{mem, cpuset}})
	if want := "cgroup: write " + cpuset + "/tasks"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("StartTask = %v, want an error containing %q", err, want)
	}
	for _, cg := range []string{mem, cpuset} {
		if procs, _ := os.ReadFile(filepath.Join(cg, "cgroup.procs")); len(procs) != 0 {
			t.Errorf("%s/cgroup.procs = %q after a failed start, want empty", cg, procs)
		}
	}
	sup := supervisorPids(dir)
	if len(sup) != 1 {
		t.Fatalf("supervisors: %v", sup)
	}
	checkThreadsHome(t, sup[0], "memory")
	if _, err := os.Stat(filepath.Join(dir, "exits", "cgfail.json")); !os.IsNotExist(err) {
		t.Errorf("exit record after a failed start: %v", err)
	}
}

// checkThreadsHome checks that every thread of the supervisor pid is in
// the test process's own cgroup of the hierarchy of controllers.
func checkThreadsHome(t *testing.T, pid int, controllers string) {
	t.Helper()
	own := ownCgroup(t, os.Getpid(), controllers)
	tids, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tids {
		tid, _ := strconv.Atoi(e.Name())
		if got := ownCgroup(t, tid, controllers); got != own {
			t.Errorf("supervisor thread %d left in %q cgroup %q, want %q", tid, controllers, got, own)
		}
	}
}

// TestDriver_CgroupPidsLimit: only the forking thread joins the task's
// cgroups, so a pids limit of 2 (that thread and the task) suffices, not
// one above the supervisor's thread count.
func TestDriver_CgroupPidsLimit(t *testing.T) {
	t.Parallel()
	d, _ := newDriver(t)
	dir, rel := testCgroup(t, "/sys/fs/cgroup/pids", "pids")
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	h := start(t, d, &contract.TaskConfig{ID: "pids", Command: "sleep", Args: []string{"30"}, Cgroups: []string{dir}})
	if got := ownCgroup(t, pidOf(t, h), "pids"); got != rel {
		t.Errorf("task in pids cgroup %q, want %q", got, rel)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "pids.current")); strings.TrimSpace(string(b)) != "1" {
		t.Errorf("pids.current = %q, want 1 (the task alone)", b)
	}
	if err := d.StopTask(context.Background(), "pids", 5*time.Second, ""); err != nil {
		t.Fatal(err)
	}
}
