package execdriver

import (
	"bufio"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/internal/executor/wire"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// gatedTask runs until gate exists, then exits 7.
func gatedTask(id, gate string) *contract.TaskConfig {
	return &contract.TaskConfig{ID: id, Command: "sh",
		Args: []string{"-c", "while [ ! -e " + gate + " ]; do sleep 0.02; done; exit 7"}}
}

func inspect(t *testing.T, d *Driver, id string) *contract.TaskStatus {
	t.Helper()
	st, err := d.InspectTask(context.Background(), id)
	if err != nil {
		t.Fatalf("InspectTask(%s): %v", id, err)
	}
	return st
}

func TestDriver_RecoverTask(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// exitWhileDown: the task exits while no driver is connected.
		exitWhileDown bool
		// supervisorIdle: recover only once the supervisor has exited
		// (idle), so that the exit record is all that is left.
		supervisorIdle bool
	}{
		{name: "running task reattached"},
		{name: "exit while no driver, supervisor up", exitWhileDown: true},
		{name: "exit while no driver, supervisor gone idle", exitWhileDown: true, supervisorIdle: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d1, dir := newDriver(t)
			gate := filepath.Join(t.TempDir(), "gate")
			h := start(t, d1, gatedTask("rec", gate))
			d1.Close()
			if tt.exitWhileDown {
				os.WriteFile(gate, nil, 0o644)
				waitFile(t, wire.ExitRecordPath(dir, "rec"))
			}
			if tt.supervisorIdle {
				waitNoSupervisor(t, dir)
			}
			d2 := openDriver(t, dir)
			if err := d2.RecoverTask(context.Background(), h); err != nil {
				t.Fatalf("RecoverTask: %v", err)
			}
			if err := d2.RecoverTask(context.Background(), h); err != nil {
				t.Fatalf("RecoverTask again: %v", err)
			}
			if !tt.exitWhileDown {
				st := inspect(t, d2, "rec")
				if st.State != contract.TaskStateRunning || st.Attributes["supervised"] != "true" {
					t.Fatalf("recovered task = %+v, want running under the supervisor", st)
				}
				os.WriteFile(gate, nil, 0o644)
			}
			if r := wait(t, d2, "rec"); *r != (contract.ExitResult{ExitCode: 7}) {
				t.Errorf("exit = %+v, want the real code 7", *r)
			}
			if err := d2.DestroyTask(context.Background(), "rec", false); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(wire.ExitRecordPath(dir, "rec")); !os.IsNotExist(err) {
				t.Errorf("exit record after DestroyTask: %v", err)
			}
		})
	}
}

// TestDriver_SupervisorKilled kills the supervisor: the task keeps
// running; the driver that was connected and a new one that recovers the
// task both watch it without exit status, and StopTask still kills it.
func TestDriver_SupervisorKilled(t *testing.T) {
	t.Parallel()
	d1, dir := newDriver(t)
	h := start(t, d1, &contract.TaskConfig{ID: "orphan", Command: "sleep", Args: []string{"60"}})
	pids := supervisorPids(dir)
	if len(pids) != 1 {
		t.Fatalf("supervisors: %v, want one", pids)
	}
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The connected driver notices and keeps watching the task.
	deadline := time.Now().Add(5 * time.Second)
	for inspect(t, d1, "orphan").Attributes["supervised"] == "true" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := inspect(t, d1, "orphan"); st.State != contract.TaskStateRunning || st.Attributes["supervised"] != "false" {
		t.Fatalf("after supervisor death = %+v, want running, unsupervised", st)
	}
	pid := pidOf(t, h)
	start, err := proc.StartTime(pid)
	if err != nil || !proc.Alive(pid, start) {
		t.Fatalf("task process %d not alive after supervisor death: %v", pid, err)
	}
	d1.Close()

	d2 := openDriver(t, dir)
	if err := d2.RecoverTask(context.Background(), h); err != nil {
		t.Fatalf("RecoverTask: %v", err)
	}
	if st := inspect(t, d2, "orphan"); st.State != contract.TaskStateRunning || time.Since(st.StartedAt) > time.Minute {
		t.Fatalf("recovered = %+v, want running, started within a minute", st)
	}
	if err := d2.StopTask(context.Background(), "orphan", 5*time.Second, "SIGTERM"); err != nil {
		t.Fatalf("StopTask: %v", err)
	}
	r := wait(t, d2, "orphan")
	if r.ExitCode != -1 || !strings.Contains(r.Err, "exit status unknown") {
		t.Errorf("exit = %+v, want unknown status", *r)
	}
	if proc.Alive(pid, start) {
		t.Errorf("task %d alive after StopTask", pid)
	}
	// A handle whose process is gone and has no record: exited, unknown.
	if err := d2.DestroyTask(context.Background(), "orphan", false); err != nil {
		t.Fatal(err)
	}
	if err := d2.RecoverTask(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, d2, "orphan"); r.ExitCode != -1 || r.Err == "" {
		t.Errorf("recovered gone task: %+v, want unknown status", *r)
	}
}

func TestSupervisor_IdleExit(t *testing.T) {
	t.Parallel()
	d, dir := newDriver(t)
	start(t, d, &contract.TaskConfig{ID: "idle", Command: "true"})
	wait(t, d, "idle")
	pids := supervisorPids(dir)
	if len(pids) != 1 {
		t.Fatalf("supervisors: %v, want one", pids)
	}
	// It was started through a double fork: it is not our child.
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(pids[0]) + "/stat"); err != nil || strings.Contains(string(st), ") S "+strconv.Itoa(os.Getpid())+" ") {
		t.Errorf("supervisor %d is a child of the test process (or gone: %v)", pids[0], err)
	}
	// Connected: it stays.
	time.Sleep(wireIdle + 500*time.Millisecond)
	if len(supervisorPids(dir)) != 1 {
		t.Fatal("supervisor exited while a driver was connected")
	}
	d.Close()
	begin := time.Now()
	for len(supervisorPids(dir)) > 0 {
		if time.Since(begin) > wireIdle+3*time.Second {
			t.Fatalf("supervisor %v still running %v after the driver closed", pids, time.Since(begin))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("supervisor exited %v after the driver closed", time.Since(begin).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(dir, wire.SocketName)); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	// A new driver starts a new one.
	d2 := openDriver(t, dir)
	start(t, d2, &contract.TaskConfig{ID: "idle2", Command: "true"})
	if r := wait(t, d2, "idle2"); !r.Successful() {
		t.Errorf("task on a new supervisor: %+v", r)
	}
}

func TestSupervisor_SecondExitsAtOnce(t *testing.T) {
	t.Parallel()
	d, dir := newDriver(t)
	start(t, d, &contract.TaskConfig{ID: "first", Command: "true"})
	wait(t, d, "first")
	// A second supervisor (not detached) on the same dir exits 0 at once.
	begin := time.Now()
	out, err := execCommand(dir).CombinedOutput()
	if err != nil {
		t.Fatalf("second supervisor: %v\n%s", err, out)
	}
	if el := time.Since(begin); el >= wireIdle || !strings.Contains(string(out), "another supervisor runs") {
		t.Errorf("second supervisor exited after %v, saying %q; want at once, because of the lock", el, out)
	}
	if n := len(supervisorPids(dir)); n != 1 {
		t.Errorf("%d supervisors, want 1", n)
	}
}

// TestDriver_DriverKilled: the driver process is SIGKILLed; its task keeps
// running under the supervisor, and a new driver recovers it from the
// checkpointed handle and sees its real exit code.
func TestDriver_DriverKilled(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("the exec driver needs Linux")
	}
	dir := t.TempDir()
	t.Cleanup(func() { waitNoSupervisor(t, dir) })
	gate := filepath.Join(t.TempDir(), "gate")
	cmd := exec.Command(os.Args[0], dir)
	cmd.Env = append(os.Environ(), driverEnv+"="+gate)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Kill()
	cmd.Wait()
	if err != nil {
		t.Fatalf("driver process: %v", err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	h, err := contract.UnmarshalHandle(b)
	if err != nil {
		t.Fatal(err)
	}
	killAtCleanup(t, h)
	if !proc.Alive(pidOf(t, h), mustStartTime(t, pidOf(t, h))) {
		t.Fatal("task died with its driver")
	}
	d := openDriver(t, dir)
	if err := d.RecoverTask(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if st := inspect(t, d, "killed-driver"); st.State != contract.TaskStateRunning || st.Attributes["supervised"] != "true" {
		t.Fatalf("recovered = %+v, want running under the supervisor", st)
	}
	os.WriteFile(gate, nil, 0o644)
	if r := wait(t, d, "killed-driver"); *r != (contract.ExitResult{ExitCode: 7}) {
		t.Errorf("exit = %+v, want code 7", *r)
	}
}

func mustStartTime(t *testing.T, pid int) uint64 {
	t.Helper()
	st, err := proc.StartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
