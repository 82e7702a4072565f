//go:build linux

package supervisor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
	"github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/internal/executor/wire"
	"github.com/dcos-kernel/dcos/internal/taskinit"
)

// IdleExit is how long the supervisor waits with no live task and no
// client before it exits.
const IdleExit = 2 * time.Second

// writeTimeout bounds a write to a client; a client that does not read
// for that long is dropped.
const writeTimeout = 5 * time.Second

// task is a task the supervisor started.
type task struct {
	info wire.TaskInfo // Exit set once reaped
	// status is the task init's status pipe for an isolated task, else nil.
	status *taskinit.Start
	// spec is how it was started: what an exec enters.
	spec *wire.StartSpec
	// drained closes once its output has been copied to its logs.
	drained <-chan struct{}
	// reaped: its main process is gone, its exit not yet announced (it
	// waits for the output to drain).
	reaped bool
	// finished closes once its exit is announced (Exit set).
	finished chan struct{}
}

// server is the supervisor's state. mu guards everything below it; a
// task start holds it from its fork to its task's registration, so that
// the reaper cannot look up a pid before its task is registered, but not
// while it waits for the task's init to report the exec (see start).
type server struct {
	stateDir string
	log      *slog.Logger
	reapMu   sync.Mutex  // serialises reapAll
	homes    []hierarchy // nil if cgroups could not be read
	homesErr error

	mu    sync.Mutex
	tasks map[string]*task
	byPid map[int]*task     // live tasks by main pid
	execs map[int]*execProc // running execs by the pid of their init
	// finishing counts exits waiting for their task's output to drain;
	// execConns the connections serving an exec (until its exit frame).
	finishing, execConns int
	conns                map[*client]struct{}
	lastBusy             time.Time
	exiting              bool
}

// client is one connection. wmu serializes writes.
type client struct {
	c   *net.UnixConn
	wmu sync.Mutex
}

func (c *client) send(r *wire.Reply) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = c.c.Write(b)
	return err
}

// Main runs the supervisor of stateDir until it has been idle for IdleExit
// and returns the process exit code. With wire.DetachEnv set to "1" it
// only starts a copy of its own process (same argv, without that
// variable) in a new session and returns 0 at once: the copy, orphaned, is
// reparented to init (or the nearest subreaper), so whoever started this
// process never holds the supervisor as a child.
func Main(stateDir string, log *slog.Logger) int {
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if os.Getenv(wire.DetachEnv) == "1" {
		return detach(log)
	}
	log = log.With("supervisor", os.Getpid())
	if stateDir == "" || !filepath.IsAbs(stateDir) {
		log.Error("state dir must be an absolute path", "state_dir", stateDir)
		return 2
	}
	if err := os.MkdirAll(filepath.Join(stateDir, wire.ExitsDir), 0o700); err != nil {
		log.Error("cannot create state dir", "err", err)
		return 1
	}
	lock, err := proc.Lock(filepath.Join(stateDir, wire.LockName))
	if errors.Is(err, proc.ErrLocked) {
		log.Info("another supervisor runs for this state dir; exiting", "state_dir", stateDir)
		return 0
	}
	if err != nil {
		log.Error("cannot lock state dir", "err", err)
		return 1
	}
	defer lock.Close()
	if err := proc.SetChildSubreaper(); err != nil {
		log.Error("cannot become a subreaper", "err", err)
		return 1
	}
	// Catch (not ignore: tasks would inherit SIG_IGN) the signals a
	// terminal would send; there is none after setsid, but a stray one
	// must not kill the parent of every task.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP, syscall.SIGINT)

	s := &server{stateDir: stateDir, log: log, tasks: map[string]*task{}, byPid: map[int]*task{}, execs: map[int]*execProc{},
		conns: map[*client]struct{}{}, lastBusy: time.Now()}
	s.homes, s.homesErr = readCgroupHomes()
	if s.homesErr != nil {
		log.Warn("cannot read own cgroups; tasks with cgroups will fail to start", "err", s.homesErr)
	}

	sock := filepath.Join(stateDir, wire.SocketName)
	os.Remove(sock)                              // stale: we hold the lock
	addr, done, err := wire.SocketAddr(stateDir) // a long state dir: through its descriptor
	if err != nil {
		log.Error("cannot listen", "err", err)
		return 1
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	done()
	if err != nil {
		log.Error("cannot listen", "err", err)
		return 1
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(sock, 0o600); err != nil {
		log.Error("cannot restrict socket", "err", err)
		return 1
	}
	log.Info("supervisor started", "state_dir", stateDir)

	stopReaper := make(chan struct{})
	reaperDone := make(chan struct{})
	go func() { defer close(reaperDone); s.reapLoop(stopReaper) }()
	go s.acceptLoop(ln)

	tick := time.NewTicker(IdleExit / 8)
	defer tick.Stop()
	for range tick.C {
		s.mu.Lock()
		if len(s.conns) > 0 || len(s.byPid) > 0 || s.execConns > 0 || s.finishing > 0 {
			s.lastBusy = time.Now()
		}
		idle := time.Since(s.lastBusy) >= IdleExit
		if idle {
			s.exiting = true
		}
		s.mu.Unlock()
		if idle {
			break
		}
	}
	// Unlink first, so that a driver that finds no socket starts a new
	// supervisor, which waits for nothing but our lock.
	os.Remove(sock)
	ln.Close()
	close(stopReaper)
	<-reaperDone
	log.Info("supervisor idle; exiting")
	return 0
}

// detach starts a copy of this process in a new session and returns.
func detach(log *slog.Logger) int {
	os.Unsetenv(wire.DetachEnv)
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        os.Args,
		Env:         os.Environ(),
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		log.Error("cannot start supervisor", "err", err)
		return 1
	}
	cmd.Process.Release()
	return 0
}

func readCgroupHomes() ([]hierarchy, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	pc, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	return cgroupHomes(mi, pc)
}

func (s *server) acceptLoop(ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return // closed
		}
		if err := checkPeer(c); err != nil {
			s.log.Warn("refusing client", "err", err)
			c.Close()
			continue
		}
		cl := &client{c: c}
		s.mu.Lock()
		if s.exiting {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[cl] = struct{}{}
		s.mu.Unlock()
		go s.serve(cl)
	}
}

// checkPeer admits only clients of our own user or root.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("peer uid %d is neither root nor %d", cred.Uid, os.Getuid())
	}
	return nil
}

// serve answers one client's requests in order. A request that does not
// decode closes the connection: the client is broken.
func (s *server) serve(cl *client) {
	defer func() {
		cl.c.Close()
		s.mu.Lock()
		delete(s.conns, cl)
		s.lastBusy = time.Now()
		s.mu.Unlock()
	}()
	sc := bufio.NewScanner(cl.c)
	sc.Buffer(make([]byte, 0, 4096), wire.MaxMessage+1)
	for sc.Scan() {
		req, err := wire.DecodeRequest(sc.Bytes())
		if err != nil {
			s.log.Warn("dropping client", "err", err)
			return
		}
		if req.Op == wire.OpExec {
			// The connection is the exec's from now on: it gets no
			// events, only frames.
			s.mu.Lock()
			delete(s.conns, cl)
			s.execConns++
			s.mu.Unlock()
			s.exec(cl, req)
			s.mu.Lock()
			s.execConns--
			s.mu.Unlock()
			return
		}
		if req.Op == wire.OpStart {
			// Starts run concurrently (replies carry the request's id):
			// one task's slow exec must not hold up the others'.
			go func() {
				if err := cl.send(s.handle(req)); err != nil {
					s.log.Warn("cannot answer a start", "err", err)
					cl.c.Close()
				}
			}()
			continue
		}
		if err := cl.send(s.handle(req)); err != nil {
			s.log.Warn("dropping client", "err", err)
			return
		}
	}
}

func (s *server) handle(req *wire.Request) *wire.Reply {
	r := &wire.Reply{ID: req.ID}
	fail := func(code string, err error) *wire.Reply {
		r.Code, r.Err = code, err.Error()
		return r
	}
	switch req.Op {
	case wire.OpHello:
		r.Pid = os.Getpid()
	case wire.OpStart:
		info, code, err := s.start(req.Start)
		if err != nil {
			return fail(code, err)
		}
		r.Task = info
	case wire.OpSignal:
		if code, err := s.signal(req.TaskID, syscall.Signal(req.Signal)); err != nil {
			return fail(code, err)
		}
	case wire.OpGet:
		// A driver recovering the task must not take a task that has
		// just exited for a live one: reap what has exited, and answer
		// an exit that waits for its output to drain once it is
		// announced (within drainTimeout).
		s.reapAll()
		s.mu.Lock()
		t := s.tasks[req.TaskID]
		s.mu.Unlock()
		if t == nil {
			return fail(wire.CodeNotFound, fmt.Errorf("task %q: not found", req.TaskID))
		}
		timer := time.NewTimer(drainTimeout + time.Second)
		select {
		case <-t.finished:
		case <-timer.C:
		default:
			s.mu.Lock()
			reaped := t.reaped
			s.mu.Unlock()
			if reaped {
				select {
				case <-t.finished:
				case <-timer.C:
				}
			}
		}
		timer.Stop()
		s.mu.Lock()
		info := t.info
		s.mu.Unlock()
		r.Task = &info
	case wire.OpList:
		s.mu.Lock()
		for _, t := range s.tasks {
			r.Tasks = append(r.Tasks, t.info)
		}
		s.mu.Unlock()
	case wire.OpForget:
		if code, err := s.forget(req.TaskID); err != nil {
			return fail(code, err)
		}
	}
	return r
}

// signal sends sig to the process group of a live task; an exited task is
// left alone. The zombie of an exited task's main process is reaped under
// mu, so a live task's pid still names its process group.
func (s *server) signal(id string, sig syscall.Signal) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil {
		return wire.CodeNotFound, fmt.Errorf("task %q: not found", id)
	}
	if t.info.Exit != nil || t.reaped {
		return "", nil
	}
	if err := proc.SignalGroup(t.info.Pid, sig); err != nil {
		return "", fmt.Errorf("task %q: %w", id, err)
	}
	return "", nil
}

// forget drops an exited task and its exit record. Unknown ids are fine.
func (s *server) forget(id string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tasks[id]; t != nil && t.info.Exit == nil {
		// Reaped but not announced yet counts as running: its exit
		// record is about to be written.
		return wire.CodeRunning, fmt.Errorf("task %q: still running", id)
	}
	delete(s.tasks, id)
	if err := os.Remove(wire.ExitRecordPath(s.stateDir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("task %q: %w", id, err)
	}
	return "", nil
}

// reapLoop reaps children on SIGCHLD (and every second, in case a signal
// was coalesced away) until stop closes.
func (s *server) reapLoop(stop <-chan struct{}) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s.reapAll()
		select {
		case <-stop:
			return
		case <-sigs:
		case <-tick.C:
		}
	}
}

// reapAll reaps every exited child. For a task's main process it first
// kills what is left of the task's process group (the zombie still
// reserves the group id), then records the exit and tells every client.
// Other children (orphaned descendants we inherited as subreaper) are just
// reaped.
func (s *server) reapAll() {
	// The reap loop and OpGet both reap: one at a time, so that a pid
	// peeked is reaped once.
	s.reapMu.Lock()
	defer s.reapMu.Unlock()
	for {
		pid, err := proc.PeekExited()
		if err != nil {
			s.log.Error("cannot wait for children", "err", err)
			return
		}
		if pid == 0 {
			return
		}
		s.mu.Lock()
		t := s.byPid[pid]
		x := s.execs[pid]
		if t != nil || x != nil {
			// The zombie still reserves the group id: nothing else of
			// the task (or exec) can be left running.
			_ = proc.SignalGroup(pid, syscall.SIGKILL)
		}
		code, sig, err := proc.Reap(pid)
		if x != nil {
			delete(s.execs, pid)
			s.lastBusy = time.Now()
			s.mu.Unlock()
			x.code, x.sig = code, sig
			close(x.exited)
			continue
		}
		if t == nil {
			s.mu.Unlock()
			continue
		}
		if err != nil {
			s.log.Error("cannot reap task", "task", t.info.ID, "pid", pid, "err", err)
		}
		delete(s.byPid, pid)
		if t.status != nil {
			// The task init exits with 128+N for a task killed by
			// signal N, and says so on its status pipe.
			code, sig = t.status.Exit(code, sig)
			t.status = nil
		}
		t.reaped = true
		s.finishing++
		exit := &wire.Exit{Code: code, Signal: sig, At: time.Now().UTC()}
		s.mu.Unlock()
		go s.finish(t, exit)
	}
}

// finish announces t's exit once its output is in its logs (or after
// drainTimeout: an escaped process may hold the pipes; its copier goes on
// alone): records it, then tells every client.
func (s *server) finish(t *task, exit *wire.Exit) {
	if t.drained != nil {
		timer := time.NewTimer(drainTimeout)
		select {
		case <-t.drained:
		case <-timer.C:
			s.log.Warn("task output still open after its exit; announcing the exit without waiting", "task", t.info.ID)
		}
		timer.Stop()
	}
	s.mu.Lock()
	t.info.Exit = exit
	t.reaped = false
	close(t.finished)
	info := t.info
	s.finishing--
	s.lastBusy = time.Now()
	conns := make([]*client, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.log.Info("task exited", "task", info.ID, "pid", info.Pid, "code", exit.Code, "signal", exit.Signal)
	if err := s.writeRecord(&info); err != nil {
		s.log.Error("cannot record task exit", "task", info.ID, "err", err)
	}
	ev := &wire.Reply{Event: wire.EventExit, Task: &info}
	for _, c := range conns {
		if err := c.send(ev); err != nil {
			c.c.Close() // its serve loop cleans up
		}
	}
}

// writeRecord writes info to its exit record atomically. It does not
// fsync (atomicfile.Write): the record must survive the supervisor and the
// driver, not the machine, whose tasks die with it.
func (s *server) writeRecord(info *wire.TaskInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return atomicfile.Write(wire.ExitRecordPath(s.stateDir, info.ID), b)
}
