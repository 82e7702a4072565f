//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/drivers/execdriver/internal/taskinit"
	"github.com/dcos-kernel/dcos/drivers/execdriver/internal/wire"
)

// initTimeout bounds how long a start waits for the task init to report
// that the task runs.
const initTimeout = 10 * time.Second

// initExe is the task init, written once into a sealed memfd that the
// supervisor keeps open and execs through /proc/self/fd.
var initExe struct {
	once sync.Once
	path string
	err  error
}

func initPath() (string, error) {
	initExe.once.Do(func() {
		fd, err := unix.MemfdCreate("dcos-taskinit", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		if err != nil {
			initExe.err = fmt.Errorf("task init: memfd: %w", err)
			return
		}
		f := os.NewFile(uintptr(fd), "dcos-taskinit")
		if _, err := f.Write(taskinit.Binary); err != nil {
			f.Close()
			initExe.err = fmt.Errorf("task init: write: %w", err)
			return
		}
		seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
			f.Close()
			initExe.err = fmt.Errorf("task init: seal: %w", err)
			return
		}
		// f stays open for the supervisor's life.
		initExe.path = "/proc/self/fd/" + strconv.Itoa(fd)
		initPinned = f
	})
	return initExe.path, initExe.err
}

// initPinned keeps the memfd open (and its descriptor number valid).
var initPinned *os.File

// isolate turns cmd into a start of the task init for iso: new mount, pid
// (unless iso.SharePID), ipc and uts namespaces, the status pipe as fd 3.
func (s *server) isolate(cmd *exec.Cmd, iso *wire.Isolation) (*initStatus, error) {
	path, err := initPath()
	if err != nil {
		return nil, err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("task init: status pipe: %w", err)
	}
	st := &initStatus{r: p[0], w: os.NewFile(uintptr(p[1]), "init-status")}
	spec := &taskinit.Spec{UID: iso.UID, GID: iso.GID, Groups: iso.Groups, KeepCaps: iso.UID == 0,
		PIDNamespace: !iso.SharePID, Hidden: iso.Hidden, Sandbox: iso.Sandbox}
	cmd.Args = taskinit.Args(spec, cmd.Path, cmd.Args)
	cmd.Path = path
	cmd.ExtraFiles = []*os.File{st.w}
	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS)
	if !iso.SharePID {
		flags |= unix.CLONE_NEWPID
	}
	cmd.SysProcAttr.Cloneflags = flags
	return st, nil
}

// initStatus is the supervisor's end of a task init's status pipe.
type initStatus struct {
	r   int      // read end, -1 once closed
	w   *os.File // write end, nil once closed (after the fork)
	buf []byte
}

func (st *initStatus) closeWrite() {
	if st.w != nil {
		st.w.Close()
		st.w = nil
	}
}

func (st *initStatus) close() {
	st.closeWrite()
	if st.r >= 0 {
		unix.Close(st.r)
		st.r = -1
	}
}

// waitStarted reads until the init reported that the task runs, or why
// it does not.
func (st *initStatus) waitStarted(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var b [512]byte
	for {
		started, msg, _ := taskinit.ParseStatus(st.buf)
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
			return errors.New("task init: exited before the task started")
		default:
			st.buf = append(st.buf, b[:n]...)
		}
	}
}

// exitSignal reads what the init wrote before it exited (the write end is
// closed by then, so this does not block) and returns the signal that
// killed the task, or 0; it closes st.
func (st *initStatus) exitSignal() int {
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
	st.close()
	_, _, sig := taskinit.ParseStatus(st.buf)
	return sig
}
