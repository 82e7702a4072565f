package hostos

import (
	"errors"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	tail := " 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 0 12345 1000 10 "
	tests := []struct {
		name    string
		in      string
		state   byte
		start   uint64
		wantErr bool
	}{
		{name: "plain", in: "42 (sleep) S" + tail, state: 'S', start: 12345},
		{name: "spaces and parens in name", in: "42 (a) b (c) Z" + tail, state: 'Z', start: 12345},
		{name: "no name", in: "42 sleep S" + tail, wantErr: true},
		{name: "short", in: "42 (sleep) S 1 1", wantErr: true},
		{name: "bad start", in: "42 (sleep) S 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 0 x 1000", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, start, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (state != tt.state || start != tt.start) {
				t.Errorf("parseStat = %c %d, want %c %d", state, start, tt.state, tt.start)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (a) b (c) Z 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 0 12345 1000"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) { parseStat(b) })
}

func TestParseMemTotal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{name: "kB", in: "MemTotal:       16318004 kB\nMemFree: 1 kB\n", want: 16318004 * 1024},
		{name: "not first", in: "Foo: 1 kB\nMemTotal: 2 kB\n", want: 2048},
		{name: "missing", in: "MemFree: 1 kB\n", wantErr: true},
		{name: "bad number", in: "MemTotal: lots kB\n", wantErr: true},
		{name: "bad unit", in: "MemTotal: 1 MB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMemTotal([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseMemTotal = %d, %v; want %d, err %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseMemTotal(f *testing.F) {
	f.Add([]byte("MemTotal:       16318004 kB\n"))
	f.Fuzz(func(t *testing.T, b []byte) { parseMemTotal(b) })
}

// TestSignalGroup_ProcStartTime: a child in its own process group has a
// start time; SignalGroup kills the group; once reaped its pid is gone.
func TestSignalGroup_ProcStartTime(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("hostos is Linux-only")
	}
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if start, err := ProcStartTime(pid); err != nil || start == 0 {
		t.Fatalf("ProcStartTime = %d, %v", start, err)
	}
	if err := SignalGroup(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Errorf("child ended with %v, want SIGTERM", err)
	}
	if _, err := ProcStartTime(pid); !errors.Is(err, ErrGone) {
		t.Errorf("ProcStartTime after reap: %v, want ErrGone", err)
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
		t.Skip("hostos is Linux-only")
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
