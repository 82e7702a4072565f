//go:build linux

package proc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// StatusField returns the value of field ("VmRSS", "Cpus_allowed_list",
// …) in /proc/PID/status, spaces trimmed. It is the one reader of that
// file: code and tests that need a field of it call this.
func StatusField(pid int, field string) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	v, ok := parseStatusField(b, field)
	if !ok {
		return "", fmt.Errorf("/proc/%d/status: no %s", pid, field)
	}
	return v, nil
}

// pollEvery is how often WaitExited checks its stop channel, and how often
// it polls /proc when pidfds are not available.
const pollEvery = 200 * time.Millisecond

// tickNanos is the length of a clock tick (USER_HZ, 100 on every Linux
// architecture Go supports).
const tickNanos = uint64(time.Second / 100)

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return stat{}, ErrGone
	}
	if err != nil {
		return stat{}, err
	}
	return parseStat(b)
}

// Stopped reports whether every thread of process pid is stopped (state
// T or t in /proc/PID/task/TID/stat), as after SIGSTOP once the stop has
// reached them all: kill(2) only queues it. A missing process returns
// ErrGone.
func Stopped(pid int) (bool, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return false, ErrGone
	}
	if err != nil {
		return false, err
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/stat")
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // a thread that exited
		}
		if err != nil {
			return false, err
		}
		s, err := parseStat(b)
		if err != nil {
			return false, err
		}
		if s.state != 'T' && s.state != 't' {
			return false, nil
		}
	}
	return len(tasks) > 0, nil
}

// StartTime returns the start time of process pid (field 22 of
// /proc/PID/stat). With the pid it names a process unambiguously. A missing
// process returns ErrGone.
func StartTime(pid int) (uint64, error) {
	s, err := readStat(pid)
	return s.start, err
}

// Alive reports whether pid still names the process that started at start
// and has not exited (a zombie has exited).
func Alive(pid int, start uint64) bool {
	s, err := readStat(pid)
	return err == nil && s.start == start && s.state != 'Z' && s.state != 'X'
}

// GroupUsage sums the CPU time and resident memory of the live processes
// of process group pgid, read from /proc.
func GroupUsage(pgid int) (Usage, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return Usage{}, err
	}
	page := uint64(os.Getpagesize())
	var u Usage
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(pid)
		if err != nil || s.pgrp != pgid || s.state == 'Z' || s.state == 'X' {
			continue
		}
		u.Procs++
		u.UserNanos += s.utime * tickNanos
		u.SystemNanos += s.stime * tickNanos
		u.ReapedNanos += (s.cutime + s.cstime) * tickNanos
		u.RSSBytes += s.rss * page
	}
	return u, nil
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

// SetChildSubreaper makes this process the reaper of its orphaned
// descendants (PR_SET_CHILD_SUBREAPER).
func SetChildSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
	}
	return nil
}

// Lock takes an exclusive flock on path (created if missing) for as long
// as the returned file stays open. A lock held elsewhere returns ErrLocked.
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

// Process watches one process that need not be our child, named by pid
// and start time, through a pidfd (or /proc polling without pidfds). One
// goroutine uses it at a time.
type Process struct {
	pid   int
	start uint64
	fd    int // pidfd, or -1
}

// OpenProcess opens a watch on process pid that started at start. It
// returns ErrGone when that process is gone or has exited.
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
	if !Alive(pid, start) {
		p.Close()
		return nil, ErrGone
	}
	return p, nil
}

// WaitExited blocks until the process exits or stop closes (ErrStopped).
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
		if !Alive(p.pid, p.start) {
			return nil
		}
		select {
		case <-stop:
			return ErrStopped
		case <-time.After(pollEvery):
		}
	}
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

// sigchldPidOffset is the offset of si_pid in a siginfo_t: after three
// ints (signo, errno, code), the union is aligned to the word size.
const sigchldPidOffset = 3*4 + (unsafe.Sizeof(uintptr(0)) - 4)

// PeekExited returns the pid of a child of this process that has exited
// and is not reaped yet, or 0 if there is none. It does not reap: the
// zombie keeps its pid, and so its process group id, reserved until Reap.
func PeekExited() (int, error) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("waitid: %w", err)
		}
		if info.Signo == 0 {
			return 0, nil
		}
		pid := *(*int32)(unsafe.Add(unsafe.Pointer(&info), sigchldPidOffset))
		return int(pid), nil
	}
}

// Reap collects the status of exited child pid: its exit code, or -1 and
// the signal that killed it.
func Reap(pid int) (code, sig int, err error) {
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return -1, 0, fmt.Errorf("wait4 %d: %w", pid, err)
		}
		if wpid != pid {
			return -1, 0, fmt.Errorf("wait4 %d: not exited", pid)
		}
		if ws.Signaled() {
			return -1, int(ws.Signal()), nil
		}
		return ws.ExitStatus(), 0, nil
	}
}

// StartedAt converts a start time (clock ticks after boot) to wall time,
// using the boot time of /proc/stat; zero if unknown.
func StartedAt(start uint64) time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	btime, ok := parseBootTime(b)
	if !ok {
		return time.Time{}
	}
	return time.Unix(btime, 0).Add(time.Duration(start * tickNanos)).UTC()
}

// SignalNum returns the signal named name ("SIGTERM").
func SignalNum(name string) (syscall.Signal, error) {
	if n := unix.SignalNum(name); n != 0 {
		return n, nil
	}
	return 0, fmt.Errorf("signal %q: unknown", name)
}

// DetachedAttr returns the attributes of a process that must outlive us:
// its own session, so no signal of our terminal or process group reaches
// it.
func DetachedAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
