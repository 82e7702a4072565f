package executor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/internal/executor/wire"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// supervisorEnv, set in the test process and so in the supervisors its
// executors start, makes the test binary run SupervisorMain with the state
// dir as its last argument.
const supervisorEnv = "EXECUTOR_TEST_SUPERVISOR"

func TestMain(m *testing.M) {
	if os.Getenv(supervisorEnv) == "1" {
		os.Exit(SupervisorMain(os.Args[len(os.Args)-1], nil))
	}
	os.Setenv(supervisorEnv, "1")
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0") // see drivers/execdriver
	}
	os.Exit(m.Run())
}

// TestExecutor_DestroyDuringStart: DestroyTask(force) of a task whose
// start is in flight (the host gave up on it) waits for the start and
// destroys what it started: nothing is left running.
func TestExecutor_DestroyDuringStart(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the executor needs Linux")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	e, err := New(Config{StateDir: dir, SupervisorCmd: []string{os.Args[0], "supervisor", dir}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		waitNoSupervisor(t, dir)
	})

	e.connMu.Lock() // holds the start after it registered, before the supervisor
	type result struct {
		h   *contract.TaskHandle
		err error
	}
	started := make(chan result, 1)
	go func() {
		h, err := e.StartTask(ctx, &contract.TaskConfig{ID: "t", Command: "sleep", Args: []string{"30"},
			Env: map[string]string{"PATH": "/usr/bin:/bin"}})
		started <- result{h, err}
	}()
	for {
		e.mu.Lock()
		inFlight := e.starting["t"] != nil
		e.mu.Unlock()
		if inFlight {
			break
		}
		runtime.Gosched()
	}
	destroyed := make(chan error, 1)
	go func() { destroyed <- e.DestroyTask(ctx, "t", true) }()
	e.connMu.Unlock()

	r := <-started
	if r.err != nil {
		t.Fatalf("StartTask: %v", r.err)
	}
	var ds driverState
	if err := json.Unmarshal(r.h.DriverState, &ds); err != nil {
		t.Fatal(err)
	}
	defer proc.SignalGroup(ds.Pid, 9)
	if err := <-destroyed; err != nil {
		t.Fatalf("DestroyTask: %v", err)
	}
	if _, err := e.InspectTask(ctx, "t"); !errors.Is(err, contract.ErrTaskNotFound) {
		t.Errorf("InspectTask after DestroyTask: %v, want ErrTaskNotFound", err)
	}
	if proc.Alive(ds.Pid, ds.StartTime) {
		t.Errorf("task %d still runs after DestroyTask(force)", ds.Pid)
	}
}

// waitNoSupervisor waits until no supervisor holds dir's lock (it exits
// about 2 s after its last task and executor).
func waitNoSupervisor(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f, err := proc.Lock(filepath.Join(dir, wire.LockName))
		if err == nil {
			f.Close()
			return
		}
		if !errors.Is(err, proc.ErrLocked) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("the supervisor of %s did not exit once idle", dir)
}
