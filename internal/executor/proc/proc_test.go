package proc

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

func TestSignalGroup_StartTime(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("proc is Linux-only")
	}
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	start, err := StartTime(pid)
	if err != nil || start == 0 {
		t.Fatalf("StartTime = %d, %v", start, err)
	}
	if !Alive(pid, start) || Alive(pid, start+1) {
		t.Errorf("Alive(%d, %d) = %v, Alive with another start time = %v; want true, false", pid, start, Alive(pid, start), Alive(pid, start+1))
	}
	if err := SignalGroup(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("child ended with %v, want SIGTERM", err)
	}
	if _, err := StartTime(pid); !errors.Is(err, ErrGone) {
		t.Errorf("StartTime after reap: %v, want ErrGone", err)
	}
	if err := SignalGroup(pid, syscall.SIGTERM); err != nil {
		t.Errorf("SignalGroup of an empty group = %v, want nil", err)
	}
}

// TestLock is not parallel: a flock belongs to the open file description,
// and a child forked by a parallel test holds a copy of every descriptor
// until it execs (O_CLOEXEC closes them only then), so "Lock after
// release" could see the lock still held for that moment.
func TestLock(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("proc is Linux-only")
	}
	path := t.TempDir() + "/lock"
	f, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(path); !errors.Is(err, ErrLocked) {
		t.Errorf("second Lock = %v, want ErrLocked", err)
	}
	f.Close()
	g, err := Lock(path)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	g.Close()
}

// TestStopped: a process is Stopped once SIGSTOP reached every thread, and
// no longer after SIGCONT; a gone one is ErrGone.
func TestStopped(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if ok, err := Stopped(pid); ok || err != nil {
		t.Fatalf("Stopped of a running process = %v, %v", ok, err)
	}
	syscall.Kill(pid, syscall.SIGSTOP)
	waitFor := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			ok, err := Stopped(pid)
			if err != nil {
				t.Fatal(err)
			}
			if ok == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Stopped stayed %v", ok)
			}
		}
	}
	waitFor(true)
	syscall.Kill(pid, syscall.SIGCONT)
	waitFor(false)
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := Stopped(pid); !errors.Is(err, ErrGone) {
		t.Fatalf("Stopped of a reaped process: %v, want ErrGone", err)
	}
}

func TestStatusField(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	name, err := StatusField(os.Getpid(), "Name")
	if err != nil || name == "" {
		t.Fatalf("Name: %q, %v", name, err)
	}
	if _, err := StatusField(os.Getpid(), "NoSuchField"); err == nil {
		t.Fatal("a missing field: no error")
	}
	if _, err := StatusField(-1, "Name"); err == nil {
		t.Fatal("pid -1: no error")
	}
}
