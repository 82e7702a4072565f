//go:build linux

package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// OOMWatch reports a task's OOM kill count as it grows. Make one with
// Task.WatchOOM; Close it when done.
type OOMWatch struct {
	// C receives the task's OOM kill count (as in Usage.OOMKills): first
	// its value when the watch starts, then each new value the watch sees.
	// Several kills close together may arrive as one jump. C is closed
	// when the watch is closed or the task's memory cgroup is removed.
	C <-chan uint64

	ev        *os.File // eventfd (v1) or inotify descriptor (v2)
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// OOM watch timing: after a v1 OOM notification, the kernel increments
// oom_kill only once the victim is chosen, which may be a little after the
// eventfd fires, so the count is re-read every oomBurstPoll for
// oomBurstWindow. oomBackstop re-reads it when no event arrives at all
// (e.g. an event lost to a full eventfd counter cannot happen, but a cgroup
// whose event_control registration failed still works, just slower).
const (
	oomBurstPoll   = 20 * time.Millisecond
	oomBurstWindow = 500 * time.Millisecond
	oomBackstop    = time.Second
)

// WatchOOM starts watching the task's OOM kills, event-driven: on v1 through
// an eventfd registered on memory.oom_control with cgroup.event_control, on
// pure v2 through inotify on memory.events (which the kernel marks modified
// when oom_kill grows). The goroutine it starts blocks in the Go netpoller,
// not in a thread. The caller must Close the watch.
func (t *Task) WatchOOM() (*OOMWatch, error) {
	var (
		ev   *os.File
		read func() (uint64, error)
	)
	if t.mode == ModeUnified {
		d := t.paths[KeyUnified]
		fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
		if err != nil {
			return nil, &FileError{Op: "open", File: "memory.events", Dir: d, Err: err}
		}
		if _, err := unix.InotifyAddWatch(fd, filepath.Join(d, "memory.events"), unix.IN_MODIFY|unix.IN_DELETE_SELF); err != nil {
			_ = unix.Close(fd)
			return nil, &FileError{Op: "open", File: "memory.events", Dir: d, Err: err}
		}
		ev = os.NewFile(uintptr(fd), "inotify")
		read = func() (uint64, error) { return readKeyed(d, "memory.events", "oom_kill") }
	} else {
		d := t.paths[KeyMemory]
		efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
		if err != nil {
			return nil, &FileError{Op: "open", File: "eventfd", Dir: d, Err: err}
		}
		ocfd, err := unix.Open(filepath.Join(d, "memory.oom_control"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			_ = unix.Close(efd)
			return nil, &FileError{Op: "open", File: "memory.oom_control", Dir: d, Err: err}
		}
		// The registration holds its own reference to both files.
		err = writeFile(d, "cgroup.event_control", strconv.Itoa(efd)+" "+strconv.Itoa(ocfd))
		_ = unix.Close(ocfd)
		if err != nil {
			_ = unix.Close(efd)
			return nil, err
		}
		ev = os.NewFile(uintptr(efd), "eventfd")
		read = func() (uint64, error) { return readKeyed(d, "memory.oom_control", "oom_kill") }
	}
	n, err := read()
	if err != nil {
		_ = ev.Close()
		return nil, err
	}
	c := make(chan uint64, 1)
	c <- n
	w := &OOMWatch{C: c, ev: ev, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(c, n, read)
	return w, nil
}

func (w *OOMWatch) run(c chan<- uint64, last uint64, read func() (uint64, error)) {
	defer close(w.done)
	defer close(c)
	buf := make([]byte, 4096) // an inotify event or the eventfd's 8 bytes
	var burstUntil time.Time
	for {
		wait := oomBackstop
		if time.Now().Before(burstUntil) {
			wait = oomBurstPoll
		}
		_ = w.ev.SetReadDeadline(time.Now().Add(wait))
		_, err := w.ev.Read(buf)
		switch {
		case err == nil:
			burstUntil = time.Now().Add(oomBurstWindow)
		case errors.Is(err, os.ErrDeadlineExceeded):
		default:
			return // closed
		}
		n, err := read()
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENODEV) {
			return // the cgroup is gone
		}
		if err != nil || n == last {
			continue // unreadable for now: try again at the next wake-up
		}
		last = n
		select {
		case c <- n:
		case <-w.stop:
			return
		}
	}
}

// Close stops the watch, closes C and releases the descriptor. It is
// idempotent and returns once the watch's goroutine has exited.
func (w *OOMWatch) Close() error {
	w.closeOnce.Do(func() {
		close(w.stop)
		_ = w.ev.Close()
	})
	<-w.done
	return nil
}
