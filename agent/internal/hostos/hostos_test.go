package hostos

import (
	"errors"
	"os"
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

// startChild starts sleep in its own process group and kills the group at
// cleanup.
func startChild(t *testing.T) int {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("hostos is Linux-only")
	}
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = GroupAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	t.Cleanup(func() {
		SignalGroup(pid, syscall.SIGKILL)
		syscall.Wait4(pid, nil, 0, nil)
	})
	return pid
}

func TestProcess_Reap(t *testing.T) {
	t.Parallel()
	pid := startChild(t)
	start, err := ProcStartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenProcess(pid, start+1); !errors.Is(err, ErrGone) {
		t.Errorf("OpenProcess with another start time: %v, want ErrGone", err)
	}
	p, err := OpenProcess(pid, start)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	stop := make(chan struct{})
	close(stop)
	if err := p.WaitExited(stop); !errors.Is(err, ErrStopped) {
		t.Errorf("WaitExited(closed stop) = %v, want ErrStopped", err)
	}
	if err := SignalGroup(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitExited(make(chan struct{})); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Reap(true), (Exit{Known: true, Code: -1, Signal: int(syscall.SIGTERM)}); got != want {
		t.Errorf("Reap = %+v, want %+v", got, want)
	}
	if _, err := ProcStartTime(pid); !errors.Is(err, ErrGone) {
		t.Errorf("ProcStartTime after reap: %v, want ErrGone", err)
	}
	if _, err := OpenProcess(pid, start); !errors.Is(err, ErrGone) {
		t.Errorf("OpenProcess after reap: %v, want ErrGone", err)
	}
}

func TestProcess_ReapNotAChild(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("hostos is Linux-only")
	}
	// Our parent is alive and not our child: its status is unknown.
	start, err := ProcStartTime(os.Getppid())
	if err != nil {
		t.Fatal(err)
	}
	p, err := OpenProcess(os.Getppid(), start)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := p.Reap(false); got.Known || got.Code != -1 {
		t.Errorf("Reap of a non-child = %+v, want unknown", got)
	}
}

func TestLock(t *testing.T) {
	t.Parallel()
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
