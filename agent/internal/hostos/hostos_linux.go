//go:build linux

package hostos

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollEvery is how often WaitExited checks its stop channel, and how often
// it polls /proc when pidfds are not available.
const pollEvery = 200 * time.Millisecond

// ProcStartTime returns the start time of process pid (field 22 of
// /proc/PID/stat, clock ticks after boot). Together with the pid it names a
// process unambiguously: a reused pid has a different start time. A missing
// process returns ErrGone.
func ProcStartTime(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

func procStat(pid int) (byte, uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return 0, 0, ErrGone
	}
	if err != nil {
		return 0, 0, err
	}
	return parseStat(b)
}

// MemTotal returns the node's memory in bytes (MemTotal of /proc/meminfo).
func MemTotal() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return parseMemTotal(b)
}

// DiskTotal returns the total size in bytes of the file system holding path.
func DiskTotal(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return int64(st.Blocks) * int64(st.Bsize), nil
}

// GroupAttr returns the process attributes of a task: its own process
// group (pgid = pid), so that the whole group can be signalled, and no
// parent-death signal, so that it outlives the agent.
func GroupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// SignalGroup sends sig to every process of group pgid. A group with no
// process left is not an error.
func SignalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("signal group %d: refusing", pgid)
	}
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal group %d: %w", pgid, err)
	}
	return nil
}

// SignalName names a signal number: "SIGKILL", or "signal 99".
func SignalName(sig int) string {
	if n := unix.SignalName(syscall.Signal(sig)); n != "" {
		return n
	}
	return "signal " + strconv.Itoa(sig)
}

// Lock takes an exclusive lock on path (created if missing) for as long as
// the returned file stays open. A lock held by another open file returns
// ErrLocked. The lock dies with the process.
func Lock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// Process watches one process, named by pid and start time. It holds a
// pidfd when the kernel has them (Linux 5.3+) and polls /proc otherwise.
// A Process is used by one goroutine at a time; Close releases the pidfd.
type Process struct {
	pid   int
	start uint64
	fd    int // pidfd, or -1
}

// OpenProcess opens a watch on process pid that started at start (see
// ProcStartTime). It returns ErrGone when that process has been reaped or
// the pid now names another process. A zombie is still that process: its
// WaitExited returns at once, and Reap collects its status if it is a child
// of this process.
func OpenProcess(pid int, start uint64) (*Process, error) {
	if pid <= 1 {
		return nil, fmt.Errorf("open process %d: invalid pid", pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil, ErrGone
	case err != nil && !errors.Is(err, unix.ENOSYS):
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	case err != nil:
		fd = -1
	}
	p := &Process{pid: pid, start: start, fd: fd}
	// Check after opening, so that the pidfd is known to name the process
	// that started at start.
	_, st, err := procStat(pid)
	if err == nil && st != start {
		err = ErrGone
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.pid }

// exited polls /proc (used when there is no pidfd).
func (p *Process) exited() (bool, error) {
	state, start, err := procStat(p.pid)
	if errors.Is(err, ErrGone) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return start != p.start || state == 'Z' || state == 'X', nil
}

// WaitExited blocks until the process exits or stop closes (ErrStopped).
// It does not reap the process: until Reap, a child of this process stays
// a zombie, so its pid (and process group id) cannot be reused.
func (p *Process) WaitExited(stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return ErrStopped
		default:
		}
		if p.fd >= 0 {
			fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, int(pollEvery/time.Millisecond))
			if err != nil && !errors.Is(err, unix.EINTR) {
				return fmt.Errorf("poll pidfd: %w", err)
			}
			if n > 0 {
				return nil
			}
			continue
		}
		exited, err := p.exited()
		if err != nil {
			return err
		}
		if exited {
			return nil
		}
		select {
		case <-stop:
			return ErrStopped
		case <-time.After(pollEvery):
		}
	}
}

// Reap collects the exit status of an exited process. Only a child of this
// process that nobody has reaped yet has a known status; any other process
// returns Exit{Known: false, Code: -1}. When the process is such a child and
// killGroup is set, what is left of its process group is sent SIGKILL
// first, while the zombie still reserves its pid as a process group id; the
// group of a process that is not our child is not signalled, as its pid
// may already name another process. Call Reap after WaitExited returned
// nil.
func (p *Process) Reap(killGroup bool) Exit {
	for range 100 {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT|unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return Exit{Code: -1} // not our child, or already reaped
		}
		if info.Signo == 0 {
			// Our child, not yet waitable: WaitExited saw the exit a
			// moment before the zombie became visible to wait.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if killGroup {
			_ = SignalGroup(p.pid, syscall.SIGKILL)
		}
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(p.pid, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || wpid != p.pid {
			return Exit{Code: -1}
		}
		switch {
		case ws.Exited():
			return Exit{Known: true, Code: ws.ExitStatus()}
		case ws.Signaled():
			return Exit{Known: true, Code: -1, Signal: int(ws.Signal())}
		}
		return Exit{Code: -1}
	}
	return Exit{Code: -1}
}

// Close releases the pidfd. It is idempotent.
func (p *Process) Close() error {
	if p.fd < 0 {
		return nil
	}
	err := unix.Close(p.fd)
	p.fd = -1
	return err
}
