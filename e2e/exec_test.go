package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// ttySession is `dcosctl exec -it` run on a real pseudo-terminal: the
// test holds its master, dcosctl has the slave as its controlling terminal.
type ttySession struct {
	t      testing.TB
	master *os.File
	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan struct{} // closed once dcosctl has exited
	err    error
}

// execTTY starts `dcosctl exec -it args...` on a new pty of rows x cols.
func (e *env) execTTY(t testing.TB, rows, cols uint16, args ...string) *ttySession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := e.ctlCmd(ctx, append([]string{"exec", "-it"}, args...)...)
	master, err := pty.StartWithAttrs(cmd, &pty.Winsize{Rows: rows, Cols: cols}, &syscall.SysProcAttr{Setsid: true, Setctty: true})
	if err != nil {
		t.Fatal(err)
	}
	s := &ttySession{t: t, master: master, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			s.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	go func() { s.err = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.done
		master.Close()
	})
	return s
}

func (s *ttySession) send(line string) {
	s.t.Helper()
	if _, err := s.master.Write([]byte(line)); err != nil {
		s.t.Fatal(err)
	}
}

// expect waits for re in the output after from and returns its submatches
// and the end of the match.
func (s *ttySession) expect(re *regexp.Regexp, from int) ([]string, int) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	exited := false // dcosctl had exited at the last look
	for {
		all := s.out.String()
		if from > len(all) {
			from = len(all)
		}
		if loc := re.FindStringSubmatchIndex(all[from:]); loc != nil {
			m := make([]string, len(loc)/2)
			for i := range m {
				if loc[2*i] >= 0 {
					m[i] = all[from+loc[2*i] : from+loc[2*i+1]]
				}
			}
			return m, from + loc[1]
		}
		if exited {
			s.t.Fatalf("dcosctl exited (%v) before %v appeared:\n%q", s.err, re, all)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no %v in the terminal's output after byte %d:\n%q", re, from, all)
		}
		select {
		case <-s.done:
			exited = true
			time.Sleep(50 * time.Millisecond) // the reader's last bytes
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// TestExec_InteractiveTTY is issue 15's exec "Done when": `dcosctl exec
// -it TASK -- sh` driven through a real pseudo-terminal runs in the task's
// namespaces and cgroup, sees a resize, and `exit 3` makes dcosctl exit 3.
func TestExec_InteractiveTTY(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDev("--resources", "cpus=2,mem=1Gi")
	op := e.op()
	w := e.watch(op, listAgents(t, op).GetRevision())
	alloc := allocateOne(t, op, &pb.AllocateRequest{Resources: &pb.Resources{Cpus: 0.25, MemBytes: 64 * mi}})
	// The task says how it sees itself; the exec'd shell must see the same.
	task := launch(t, op, &pb.LaunchRequest{AllocationId: alloc.GetId(), Command: "sh",
		Args: []string{"-c", `echo "host=$(hostname)"; echo "cg=$(cat /proc/self/cgroup | tr '\n' ' ')"; exec sleep 300`}})
	running := w.waitFor(t, "RUNNING of "+task.GetId(), taskState(task.GetId(), pb.TaskState_TASK_STATE_RUNNING)).GetTask()
	e.notePID(running.GetPid())
	var taskHost, taskCg string
	e.eventually("the task's own view in its log", func() (bool, string) {
		out, _, _ := e.ctl("logs", task.GetId())
		for _, l := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(l, "host="); ok {
				taskHost = v
			}
			if v, ok := strings.CutPrefix(l, "cg="); ok {
				taskCg = strings.TrimSpace(v)
			}
		}
		return taskHost != "" && taskCg != "", out
	})
	hostNS := map[string]string{}
	for _, ns := range []string{"pid", "mnt", "uts", "ipc", "cgroup"} {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", running.GetPid(), ns))
		if err != nil {
			t.Fatal(err)
		}
		hostNS[ns] = l
		if self, _ := os.Readlink("/proc/self/ns/" + ns); self == l {
			t.Fatalf("the task shares the test's %s namespace: nothing to tell apart", ns)
		}
	}

	s := e.execTTY(t, 24, 80, task.GetId(), "--", "sh")
	pos := 0
	s.send("echo \"@pid\"\"=$$@\"\n") // typed, it echoes as @pid""=: only the output matches
	m, pos := s.expect(regexp.MustCompile(`@pid=(\d+)@`), pos)
	if m[1] == fmt.Sprint(running.GetPid()) || len(m[1]) > 4 {
		t.Errorf("$$ in the exec'd shell is %s: not a pid of the task's own pid namespace", m[1])
	}
	for ns, want := range hostNS {
		s.send(fmt.Sprintf("echo \"@%s\"\"=$(readlink /proc/self/ns/%s)@\"\n", ns, ns))
		var got []string
		got, pos = s.expect(regexp.MustCompile(`@`+ns+`=([a-z]+:\[\d+\])@`), pos)
		if got[1] != want {
			t.Errorf("the exec'd shell's %s namespace is %s, the task's %s", ns, got[1], want)
		}
	}
	s.send("echo \"@host\"\"=$(hostname)@\"\n")
	m, pos = s.expect(regexp.MustCompile(`@host=([^@\r\n]+)@`), pos)
	if m[1] != taskHost {
		t.Errorf("hostname in the exec'd shell %q, the task's %q", m[1], taskHost)
	}
	s.send("echo \"@cg\"\"=$(cat /proc/self/cgroup | tr '\\n' ' ')@\"\n")
	m, pos = s.expect(regexp.MustCompile(`@cg=([^@]+)@`), pos)
	if strings.TrimSpace(m[1]) != taskCg {
		t.Errorf("/proc/self/cgroup in the exec'd shell %q, the task's %q", m[1], taskCg)
	}
	s.send("echo \"@size\"\"=$(stty size)@\"\n")
	m, pos = s.expect(regexp.MustCompile(`@size=(\d+ \d+)@`), pos)
	if m[1] != "24 80" {
		t.Errorf("stty size %q, want the terminal's 24 80", m[1])
	}
	if err := pty.Setsize(s.master, &pty.Winsize{Rows: 33, Cols: 101}); err != nil {
		t.Fatal(err)
	}
	// The resize travels as dcosctl catches SIGWINCH: ask until it shows.
	sized := false
	for i := 0; i < 50 && !sized; i++ {
		s.send("echo \"@size\"\"=$(stty size)@\"\n")
		m, pos = s.expect(regexp.MustCompile(`@size=(\d+ \d+)@`), pos)
		sized = m[1] == "33 101"
		if !sized {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !sized {
		t.Errorf("stty size after the resize: %q, want 33 101", m[1])
	}
	s.send("exit 3\n")
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("dcosctl did not exit after `exit 3`:\n%q", s.out.String())
	}
	var ee *exec.ExitError
	if !errors.As(s.err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("dcosctl exec -it ended with %v, want exit status 3; terminal:\n%q", s.err, s.out.String())
	}
}
