//go:build linux

package taskinit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// exe is the init, written once per process into a sealed memfd that
// stays open and is executed through /proc/self/fd.
var exe struct {
	once sync.Once
	f    *os.File
	path string
	err  error
}

func initPath() (string, error) {
	exe.once.Do(func() {
		fd, err := unix.MemfdCreate("dcos-taskinit", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			exe.err = fmt.Errorf("task init: memfd: %w", err)
			return
		}
		f := os.NewFile(uintptr(fd), "dcos-taskinit")
		if _, err := f.Write(Binary); err != nil {
			f.Close()
			exe.err = fmt.Errorf("task init: write: %w", err)
			return
		}
		seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			f.Close()
			exe.err = fmt.Errorf("task init: seal: %w", err)
			return
		}
		exe.f, exe.path = f, "/proc/self/fd/"+strconv.Itoa(fd)
	})
	return exe.path, exe.err
}

// Start is one start of a task under the init: the caller's end of the
// init's status pipe. Not safe for concurrent use.
type Start struct {
	r         int      // read end, -1 once closed
	w         *os.File // write end, nil once closed (after the fork)
	buf       []byte
	container bool // the init execs the task itself: EOF is the start
}

// Prepare turns cmd, a start of the task (Path resolved, Args, Env, Dir,
// output files and SysProcAttr set), into a start of the init that runs
// it as s says: new mount, pid (with s.PIDNamespace), ipc and uts
// namespaces, the status pipe as fd 3 (cmd.ExtraFiles must be empty). The
// caller must be root. After cmd.Start, call Started; on every path,
// Close (or ExitSignal, which closes). s is checked with Validate.
//
// In container mode (s.RootFS set) cmd.Path is the entrypoint as the
// image names it (looked up inside the container in the PATH of cmd.Env
// when it has no slash; not resolved on the node), cmd.Env the
// container's environment (set it: nil is the caller's), and cmd.Dir
// must be empty (the working directory inside the container is s.Dir).
// The init execs the entrypoint itself: the process cmd starts is the
// task, pid 1 of its namespace (a signal it has no handler for, but
// SIGKILL and SIGSTOP, does not reach it), its exit is the task's.
func Prepare(cmd *exec.Cmd, s *Spec) (*Start, error) {
	if len(cmd.ExtraFiles) > 0 {
		return nil, errors.New("task init: the command has extra files")
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("task init: %w", err)
	}
	if s.Container() && cmd.Dir != "" {
		return nil, fmt.Errorf("task init: dir %q: in container mode the working directory is the spec's Dir, not the command's", cmd.Dir)
	}
	path, err := initPath()
	if err != nil {
		return nil, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("task init: status pipe: %w", err)
	}
	st := &Start{r: p[0], w: os.NewFile(uintptr(p[1]), "init-status"), container: s.Container()}
	cmd.Args = Args(s, cmd.Path, cmd.Args)
	cmd.Path = path
	cmd.ExtraFiles = []*os.File{st.w}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS)
	if s.PIDNamespace {
		flags |= unix.CLONE_NEWPID
	}
	cmd.SysProcAttr.Cloneflags |= flags
	return st, nil
}

func (st *Start) closeWrite() {
	if st.w != nil {
		st.w.Close()
		st.w = nil
	}
}

// Close releases the pipe. Idempotent.
func (st *Start) Close() {
	st.closeWrite()
	if st.r >= 0 {
		unix.Close(st.r)
		st.r = -1
	}
}

// Started waits (after cmd.Start) until the init reports that the task
// runs, or why it does not (then the init exits 127 and the caller reaps
// it as usual). In container mode the task runs once the pipe closes
// without an "err" line (the init's exec closed it).
func (st *Start) Started(timeout time.Duration) error {
	st.closeWrite()
	deadline := time.Now().Add(timeout)
	var b [512]byte
	for {
		started, msg, _ := ParseStatus(st.buf)
		switch {
		case msg != "":
			return errors.New(msg)
		case started:
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("task init: no answer within %v", timeout)
		}
		fds := []unix.PollFd{{Fd: int32(st.r), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(left/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("task init: %w", err)
		}
		n, err := unix.Read(st.r, b[:])
		switch {
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
		case err != nil:
			return fmt.Errorf("task init: %w", err)
		case n == 0:
			if _, msg, _ := ParseStatus(st.buf); msg != "" {
				return errors.New(msg)
			}
			if st.container {
				return nil
			}
			return errors.New("task init: exited before the task started")
		default:
			st.buf = append(st.buf, b[:n]...)
		}
	}
}

// ExitSignal reads what the init wrote before it exited (call it once the
// init has exited: it does not block then) and returns the signal that
// killed the task, or 0. It closes st.
func (st *Start) ExitSignal() int {
	st.closeWrite()
	var b [512]byte
	for st.r >= 0 {
		n, err := unix.Read(st.r, b[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			break
		}
		st.buf = append(st.buf, b[:n]...)
	}
	st.Close()
	_, _, sig := ParseStatus(st.buf)
	return sig
}

// Exit maps the init's exit (code, or -1 and the signal that killed the
// init) to the task's: 128+N with "signal N" reported is the task killed
// by N. In container mode the init's exit is the task's (the init became
// the task): code and sig are returned as they are. It closes st.
func (st *Start) Exit(code, sig int) (int, int) {
	n := st.ExitSignal()
	if st.container {
		return code, sig
	}
	if n > 0 && sig == 0 && code == 128+n {
		return -1, n
	}
	return code, sig
}

// Enter turns cmd (Path and Args the command's, Env the task's) into a run
// of the init's enter mode, which runs the command inside the task e
// names: a fresh single-threaded process joins the task's cgroups and
// namespaces, takes its user and forks the command, then exits with its
// status (127 and a message on stderr when it could not). The caller
// keeps the process's group (cmd.SysProcAttr.Setpgid) to kill the command
// with the init. The caller must be root for namespaces other than its
// own.
func Enter(cmd *exec.Cmd, e *EnterSpec) error {
	if e.PID <= 0 {
		return fmt.Errorf("task init: enter: pid %d: the task has no process", e.PID)
	}
	if err := checkCaps("caps", e.Caps); err != nil {
		return fmt.Errorf("task init: enter: %w", err)
	}
	path, err := initPath()
	if err != nil {
		return err
	}
	cmd.Args = EnterArgs(e, cmd.Path, cmd.Args)
	cmd.Path = path
	return nil
}
