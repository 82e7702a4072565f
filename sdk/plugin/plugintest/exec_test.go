package plugintest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdkplugin "github.com/dcos-kernel/dcos/sdk/plugin"
	"github.com/dcos-kernel/dcos/sdk/plugin/plugintest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDriver_ExecTask: exec through a real plugin process and its gRPC
// client: streams, exit code, stdin, a pty, and a cancel that kills the
// command.
func TestDriver_ExecTask(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	t.Cleanup(func() { waitSupervisorGone(t, dir) })
	d := plugintest.StartDriver(t, envDriver, plugintest.Options{StateDir: dir})
	caps, err := d.Capabilities(ctx)
	if err != nil || !caps.Exec {
		t.Fatalf("capabilities %+v, %v: want Exec", caps, err)
	}
	ed, ok := d.Driver.(sdkplugin.ExecDriver)
	if !ok {
		t.Fatalf("the client %T is not an ExecDriver", d.Driver)
	}
	if _, err := d.StartTask(ctx, &sdkplugin.TaskConfig{ID: "ex", Command: "sleep", Args: []string{"1000"},
		Env: map[string]string{"PATH": "/usr/bin:/bin"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.DestroyTask(context.Background(), "ex", true) })

	t.Run("streams", func(t *testing.T) {
		var out, errb bytes.Buffer
		big := strings.Repeat("x", 100<<10) // several 32 KiB messages
		r, err := ed.ExecTask(ctx, &sdkplugin.ExecOptions{TaskID: "ex", Command: "sh",
			Args: []string{"-c", `printf %s "$BIG"; echo err >&2; exit 3`}, Env: map[string]string{"BIG": big}},
			sdkplugin.ExecIO{Stdout: &out, Stderr: &errb})
		if err != nil || r.ExitCode != 3 {
			t.Fatalf("exec: %+v %v", r, err)
		}
		if out.String() != big || errb.String() != "err\n" {
			t.Errorf("stdout %d bytes, stderr %q", out.Len(), errb.String())
		}
	})
	t.Run("stdin", func(t *testing.T) {
		var out bytes.Buffer
		r, err := ed.ExecTask(ctx, &sdkplugin.ExecOptions{TaskID: "ex", Command: "cat", Stdin: true},
			sdkplugin.ExecIO{Stdin: strings.NewReader("hello\n"), Stdout: &out, Stderr: io.Discard})
		if err != nil || r.ExitCode != 0 || out.String() != "hello\n" {
			t.Fatalf("exec: %+v %v, stdout %q", r, err, out.String())
		}
	})
	t.Run("tty", func(t *testing.T) {
		var out bytes.Buffer
		r, err := ed.ExecTask(ctx, &sdkplugin.ExecOptions{TaskID: "ex", Command: "sh", Args: []string{"-c", "stty size; exit 4"},
			TTY: true, Size: sdkplugin.TermSize{Rows: 33, Cols: 91}}, sdkplugin.ExecIO{Stdout: &out})
		if err != nil || r.ExitCode != 4 || !strings.Contains(out.String(), "33 91") {
			t.Fatalf("exec: %+v %v, output %q", r, err, out.String())
		}
	})
	t.Run("cancel", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		var out lockedBuffer
		res := make(chan error, 1)
		go func() {
			_, err := ed.ExecTask(cctx, &sdkplugin.ExecOptions{TaskID: "ex", Command: "sh", Args: []string{"-c", "echo $$; exec sleep 1000"}},
				sdkplugin.ExecIO{Stdout: &out, Stderr: io.Discard})
			res <- err
		}()
		for !strings.HasSuffix(out.String(), "\n") {
			time.Sleep(10 * time.Millisecond)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(out.String()))
		if err != nil {
			t.Fatal(err)
		}
		ccancel()
		if err := <-res; !errors.Is(err, context.Canceled) {
			t.Fatalf("exec: %v, want context.Canceled", err)
		}
		for processAlive(pid) {
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("unknown task", func(t *testing.T) {
		_, err := ed.ExecTask(ctx, &sdkplugin.ExecOptions{TaskID: "nope", Command: "true"}, sdkplugin.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
		if !errors.Is(err, sdkplugin.ErrTaskNotFound) {
			t.Fatalf("exec: %v, want ErrTaskNotFound", err)
		}
	})
}

// TestDriver_ExecTaskNotSupported: a driver that is no ExecDriver says
// so through the client.
func TestDriver_ExecTaskNotSupported(t *testing.T) {
	d := plugintest.StartDriver(t, testDriver, plugintest.Options{StateDir: t.TempDir()})
	ed := d.Driver.(sdkplugin.ExecDriver)
	_, err := ed.ExecTask(context.Background(), &sdkplugin.ExecOptions{TaskID: "x", Command: "true"}, sdkplugin.ExecIO{Stdout: io.Discard, Stderr: io.Discard})
	if !errors.Is(err, sdkplugin.ErrNotSupported) {
		t.Fatalf("exec: %v, want ErrNotSupported", err)
	}
}

// processAlive reports whether pid names a process that is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err == nil && !strings.Contains(string(b), ") Z ")
}
