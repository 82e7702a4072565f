//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/internal/executor/wire"
	"github.com/dcos-kernel/dcos/internal/taskinit"
)

// execProc is a running exec: the task init in enter mode, which the
// reaper reaps (it is not a task: no record, not listed) and whose status
// it leaves here before closing exited.
type execProc struct {
	exited    chan struct{}
	code, sig int
}

// veof is the terminal's end-of-file character (^D), what a TTY exec's
// stdin EOF sends.
const veof = 4

// exec runs req.Exec inside task req.TaskID and serves the exec over cl's
// connection, which it closes: a reply, then frames both ways until the
// exit frame. The client sends no frame before the reply. When the
// connection breaks first, the exec's process group is killed.
func (s *server) exec(cl *client, req *wire.Request) {
	defer cl.c.Close()
	// The init sets PDEATHSIG: it dies when the thread that forked it
	// ends, and a Go thread ends when a goroutine exits locked to it. So
	// fork from this goroutine's thread and keep it locked (unusable by
	// others) until the exec has ended.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	x, ios, code, err := s.startExec(req.TaskID, req.Exec)
	if err != nil {
		cl.send(&wire.Reply{ID: req.ID, Code: code, Err: err.Error()})
		return
	}
	if err := cl.send(&wire.Reply{ID: req.ID}); err != nil {
		ios.kill()
	}
	cl.c.SetWriteDeadline(time.Time{}) // frames wait for a slow reader: back-pressure
	var wmu sync.Mutex
	send := func(k wire.FrameKind, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return wire.WriteFrame(cl.c, k, p)
	}
	// Output: one copier per stream, each with one fixed buffer.
	var outs sync.WaitGroup
	for i, r := range ios.out {
		if r == nil {
			continue
		}
		kind := [2]wire.FrameKind{wire.FrameStdout, wire.FrameStderr}[i]
		outs.Go(func() {
			defer r.Close()
			buf := make([]byte, wire.MaxFrame)
			for {
				n, err := r.Read(buf)
				if n > 0 {
					if send(kind, buf[:n]) != nil {
						ios.kill()
						io.Copy(io.Discard, r) // drain, so that nothing blocks
						return
					}
				}
				if err != nil {
					return // EOF; EIO from a pty master once the terminal is gone
				}
			}
		})
	}
	// Input, until the connection ends: stdin, EOF, resizes. The end of
	// the connection before the exit means the client went away.
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		fr := wire.NewFrameReader(cl.c)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				select {
				case <-x.exited:
				default:
					ios.kill()
				}
				ios.closeStdin()
				return
			}
			switch f.Kind {
			case wire.FrameStdin:
				if ios.stdin != nil {
					if _, err := ios.stdin.Write(f.Data); err != nil {
						ios.closeStdin()
					}
				}
			case wire.FrameStdinEOF:
				if ios.tty != nil {
					if ios.stdin != nil {
						ios.stdin.Write([]byte{veof})
					}
				} else {
					ios.closeStdin()
				}
			case wire.FrameResize:
				if ios.tty != nil {
					r, c := wire.ParseResize(f.Data)
					pty.Setsize(ios.tty, &pty.Winsize{Rows: r, Cols: c})
				}
			default:
				ios.kill() // a client that sends output frames is broken
			}
		}
	}()
	<-x.exited
	// The reaper killed the exec's group before reaping it: the output
	// ends but for processes that escaped the group; do not wait for those
	// longer than a task's exit does.
	drained := make(chan struct{})
	go func() { outs.Wait(); close(drained) }()
	timer := time.NewTimer(drainTimeout)
	select {
	case <-drained:
	case <-timer.C:
	}
	timer.Stop()
	if ios.tty != nil {
		ios.tty.Close() // ends a copier still waiting (escaped holders of the terminal)
	}
	send(wire.FrameExit, wire.ExitPayload(x.code, x.sig))
	cl.c.Close()
	<-inDone
}

// execIO are the supervisor's ends of an exec's streams.
type execIO struct {
	pid   int
	tty   *os.File    // the pty master with a TTY, else nil
	stdin io.Writer   // where stdin frames go; nil without ExecSpec.Stdin
	out   [2]*os.File // stdout and stderr read ends (a TTY: the master, once)
	once  sync.Once
	sin   io.Closer // the stdin pipe's write end, closed at stdin EOF
}

// kill kills the exec: the init's process group (the command's, without
// a TTY) and, with a TTY, the process group of the init's child, which
// leads its own session (it would die of PDEATHSIG with the init anyway,
// but its own children would not).
func (e *execIO) kill() {
	if e.tty != nil {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", e.pid, e.pid))
		for _, f := range strings.Fields(string(b)) {
			if child, err := strconv.Atoi(f); err == nil && child > 1 {
				_ = syscall.Kill(-child, syscall.SIGKILL)
			}
		}
	}
	_ = proc.SignalGroup(e.pid, syscall.SIGKILL)
}

func (e *execIO) closeStdin() {
	e.once.Do(func() {
		if e.sin != nil {
			e.sin.Close()
		}
	})
}

// startExec forks the task init in enter mode for spec inside task id
// (under s.mu, so that the reaper finds it registered) and registers it
// with the reaper. On error nothing is left running; the code is the
// reply's.
func (s *server) startExec(id string, spec *wire.ExecSpec) (_ *execProc, _ *execIO, code string, err error) {
	s.mu.Lock()
	t := s.tasks[id]
	var pid int
	var ts *wire.StartSpec
	switch {
	case t == nil:
		s.mu.Unlock()
		return nil, nil, wire.CodeNotFound, fmt.Errorf("exec: task %q: not found", id)
	case t.info.Exit != nil || t.reaped:
		s.mu.Unlock()
		return nil, nil, wire.CodeExited, fmt.Errorf("exec: task %q: not running (it has exited)", id)
	case t.spec == nil:
		s.mu.Unlock()
		return nil, nil, "", fmt.Errorf("exec: task %q: still starting", id)
	}
	pid, ts = t.info.Pid, t.spec
	s.mu.Unlock()

	e := enterSpec(ts, pid)
	cmd := &exec.Cmd{Path: spec.Command, Args: append([]string{spec.Command}, spec.Args...), Env: mergeEnv(ts.Env, spec.Env),
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	ios := &execIO{}
	var theirs []*os.File // the command's ends, closed once it started
	defer func() {
		for _, f := range theirs {
			f.Close()
		}
		if err != nil {
			for _, f := range ios.out {
				if f != nil {
					f.Close()
				}
			}
			if ios.sin != nil {
				ios.sin.Close()
			}
		}
	}()
	if spec.TTY {
		master, slave, err := pty.Open()
		if err != nil {
			return nil, nil, "", fmt.Errorf("exec: pty: %w", err)
		}
		theirs = append(theirs, slave)
		ios.tty, ios.out[0], ios.sin = master, master, nil
		if spec.Rows > 0 && spec.Cols > 0 {
			if err := pty.Setsize(master, &pty.Winsize{Rows: spec.Rows, Cols: spec.Cols}); err != nil {
				master.Close()
				return nil, nil, "", fmt.Errorf("exec: pty size: %w", err)
			}
		}
		ios.stdin = master // without Stdin nothing is written to it
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
		// The command (not the init) leads the terminal's session, so
		// that its process group is one of the task's pid namespace.
		e.TTY = true
	} else {
		for i := range 2 {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, nil, "", fmt.Errorf("exec: pipe: %w", err)
			}
			ios.out[i] = r
			theirs = append(theirs, w)
		}
		cmd.Stdout, cmd.Stderr = theirs[0], theirs[1]
		if spec.Stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, nil, "", fmt.Errorf("exec: pipe: %w", err)
			}
			theirs = append(theirs, r)
			cmd.Stdin, ios.stdin, ios.sin = r, w, w
		}
	}
	if err := taskinit.Enter(cmd, e); err != nil {
		return nil, nil, "", fmt.Errorf("exec: %w", err)
	}
	if !spec.Stdin {
		ios.stdin = nil
	}
	x := &execProc{exited: make(chan struct{})}
	s.mu.Lock()
	if s.exiting {
		s.mu.Unlock()
		return nil, nil, "", errors.New("exec: the supervisor is exiting")
	}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return nil, nil, "", fmt.Errorf("exec: %w", err)
	}
	ios.pid = cmd.Process.Pid
	cmd.Process.Release() // the reaper reaps it
	s.execs[ios.pid] = x
	s.lastBusy = time.Now()
	s.mu.Unlock()
	s.log.Info("exec started", "task", id, "pid", ios.pid, "command", spec.Command, "tty", spec.TTY)
	return x, ios, "", nil
}

// enterSpec is how an exec enters task ts, whose main process is pid: as
// the task runs (its user, capabilities, cgroups, working directory).
func enterSpec(ts *wire.StartSpec, pid int) *taskinit.EnterSpec {
	e := &taskinit.EnterSpec{PID: pid, Cgroups: ts.Cgroups, Dir: ts.WorkDir}
	switch c, iso := ts.Container, ts.Isolation; {
	case c != nil:
		e.Credentials = &taskinit.Spec{UID: c.UID, GID: c.GID, Groups: c.Groups}
		e.Dir = c.Dir
		if c.UID == 0 {
			e.Caps = c.Caps
			if e.Caps == nil {
				e.Caps = taskinit.DefaultContainerCaps
			}
		}
	case iso != nil:
		e.Credentials = &taskinit.Spec{UID: iso.UID, GID: iso.GID, Groups: iso.Groups}
		e.KeepCaps = iso.UID == 0
		if e.Dir == "" {
			e.Dir = iso.Sandbox
		}
	default:
		e.KeepCaps = true // the task has the supervisor's own
	}
	return e
}

// mergeEnv is base with extra's variables added, replacing those of the
// same name.
func mergeEnv(base, extra []string) []string {
	env := make([]string, 0, len(base)+len(extra))
	set := map[string]bool{}
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); !set[k] {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}
