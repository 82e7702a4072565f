//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/internal/executor/wire"
	"github.com/dcos-kernel/dcos/internal/taskinit"
)

// start starts spec and registers it. On error nothing is left behind: no
// process, no record, and the supervisor is back in its own cgroups.
func (s *server) start(spec *wire.StartSpec) (_ *wire.TaskInfo, _ string, err error) {
	dir := spec.WorkDir
	if dir == "" || spec.Container != nil {
		dir = "/" // a container's init starts in the host's /, its task in Container.Dir
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, "", fmt.Errorf("work dir: %w", err)
	} else if !fi.IsDir() {
		return nil, "", fmt.Errorf("work dir %s: not a directory", dir)
	}
	var path string
	if spec.Container != nil {
		// Looked up by the task init inside the container (binds
		// included), which fails the start if it cannot exec it.
		path = spec.Command
	} else {
		path, err = lookPath(spec.Command, envValue(spec.Env, "PATH"), dir)
	}
	if err != nil {
		return nil, "", err
	}
	// The task writes to pipes; the supervisor copies them to rotated
	// logs (see output_linux.go).
	outs, err := openOutputs(spec)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		outs.closeTaskEnds() // the task holds its own copies now
		if err != nil {
			outs.abort()
		}
	}()
	env := spec.Env
	if env == nil {
		env = []string{} // nil would mean our own environment
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string{spec.Command}, spec.Args...),
		Env:         env,
		Dir:         dir,
		Stdout:      outs.taskEnd(0),
		Stderr:      outs.taskEnd(1),
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	var status *taskinit.Start
	cgroups := spec.Cgroups
	if spec.Isolation != nil {
		var late []string
		cgroups, late = splitCPU(spec.Cgroups)
		if status, err = isolate(cmd, spec.Isolation, spec.Container, late); err != nil {
			return nil, "", err
		}
		defer func() {
			if err != nil {
				status.Close()
			}
		}()
	}

	t0 := time.Now()
	s.mu.Lock()
	locked := time.Now()
	if _, ok := s.tasks[spec.TaskID]; ok {
		s.mu.Unlock()
		return nil, wire.CodeExists, fmt.Errorf("task %q: already exists", spec.TaskID)
	}
	// A leftover record of an earlier task with this id would be read as
	// this task's exit by a driver that recovers it.
	if err := os.Remove(wire.ExitRecordPath(s.stateDir, spec.TaskID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.mu.Unlock()
		return nil, "", fmt.Errorf("exit record: %w", err)
	}
	if err := s.forkInCgroups(cmd, cgroups, spec.Netns); err != nil {
		s.mu.Unlock()
		return nil, "", err
	}
	forked := time.Now()
	pid := cmd.Process.Pid
	cmd.Process.Release() // the reaper reaps it
	st, err := proc.StartTime(pid)
	if err != nil {
		_ = proc.SignalGroup(pid, syscall.SIGKILL)
		s.mu.Unlock()
		return nil, "", fmt.Errorf("process %d: start time: %w", pid, err)
	}
	// Registered before its init says it started (the reaper must find
	// the pid), but without its status pipe until then: the wait below is
	// not under s.mu, so that one start waiting for its task's exec (under
	// the task's cpu quota: ~0.1-1 s for a 0.001-cpu task) does not hold
	// up every other start and exit.
	t := &task{finished: make(chan struct{}), info: wire.TaskInfo{ID: spec.TaskID, Pid: pid, StartTime: st, StartedAt: time.Now().UTC()},
		spec: spec, drained: outs.drained}
	outs.closeTaskEnds()
	outs.run(s.log.With("task", spec.TaskID)) // from here on the copiers own the logs
	s.tasks[spec.TaskID] = t
	s.byPid[pid] = t
	s.lastBusy = time.Now()
	s.mu.Unlock()
	if status != nil {
		if err := status.Started(initTimeout); err != nil {
			_ = proc.SignalGroup(pid, syscall.SIGKILL)
			s.mu.Lock()
			if s.tasks[spec.TaskID] == t {
				delete(s.tasks, spec.TaskID)
			}
			if s.byPid[pid] == t {
				delete(s.byPid, pid) // the reaper just reaps it
			}
			s.mu.Unlock()
			return nil, "", err
		}
		s.mu.Lock()
		if t.info.Exit == nil && !t.reaped {
			t.status = status
		} else {
			// Reaped between "ok" and here: its exit was read without
			// the pipe (an init's 128+N stays an exit code).
			status.Close()
		}
		s.mu.Unlock()
	}
	inited := time.Now()
	s.mu.Lock()
	info := t.info
	s.mu.Unlock()
	// wait: for other starts; fork: joining the cgroups, fork and exec
	// (the exec runs under the task's own cpu limit); init: the task
	// init's setup and the task's exec (isolated tasks).
	s.log.Info("task started", "task", spec.TaskID, "pid", pid, "command", path,
		"wait", locked.Sub(t0), "fork", forked.Sub(locked), "init", inited.Sub(forked))
	return &info, "", nil
}

// forkInCgroups starts cmd inside the cgroup directories dirs. Go cannot
// run code between fork and exec, so the fork happens from a thread that
// is already inside them: on a goroutine locked to its OS thread, that
// thread alone (not the whole supervisor: no pids or memory charged to the
// task for our other threads) joins each cgroup v1 directory through its
// "tasks" file, forks (the child inherits the thread's cgroups), and
// returns to the cgroups the supervisor started in. A cgroup v2 directory
// is joined with CLONE_INTO_CGROUP. If the thread cannot return, it is
// left locked and so ends with its goroutine: the supervisor never stays
// in a task's cgroup. On error no process is left. s.mu is held.
//
// With netns set, the same thread also enters that network namespace
// (setns) before the fork and returns to its own after it.
func (s *server) forkInCgroups(cmd *exec.Cmd, dirs []string, netns string) error {
	if len(dirs) == 0 && netns == "" {
		return cmd.Start()
	}
	nsFd := -1
	if netns != "" {
		fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("netns %s: %w", netns, err)
		}
		defer unix.Close(fd)
		nsFd = fd
	}
	if s.homesErr != nil {
		return fmt.Errorf("cgroups: own cgroups unknown: %w", s.homesErr)
	}
	attr := cmd.SysProcAttr
	var v1 []string
	var homes []string
	seen := map[string]string{}
	for _, dir := range dirs {
		var fs unix.Statfs_t
		if err := unix.Statfs(dir, &fs); err != nil {
			return fmt.Errorf("cgroup %s: %w", dir, err)
		}
		h, ok := hierarchyOf(s.homes, dir)
		switch {
		case fs.Type != unix.CGROUP2_SUPER_MAGIC && fs.Type != unix.CGROUP_SUPER_MAGIC:
			return fmt.Errorf("cgroup %s: not a cgroup directory", dir)
		case !ok:
			return fmt.Errorf("cgroup %s: not in a cgroup hierarchy mounted when the supervisor started", dir)
		case seen[h.mount] != "":
			return fmt.Errorf("cgroup %s: same hierarchy as %s", dir, seen[h.mount])
		}
		seen[h.mount] = dir
		if fs.Type == unix.CGROUP2_SUPER_MAGIC {
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("cgroup %s: %w", dir, err)
			}
			defer unix.Close(fd)
			attr.UseCgroupFD, attr.CgroupFD = true, fd
			continue
		}
		if h.home == "" {
			return fmt.Errorf("cgroup %s: the supervisor's own cgroup in %s is not visible", dir, h.mount)
		}
		v1 = append(v1, dir)
		homes = append(homes, h.home)
	}

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		tid := unix.Gettid()
		var joined []string
		homeNs := -1
		leave := func() error {
			var errs []error
			for _, home := range joined {
				if err := writeTask(home, tid); err != nil {
					errs = append(errs, err)
				}
			}
			if homeNs >= 0 {
				if err := unix.Setns(homeNs, unix.CLONE_NEWNET); err != nil {
					errs = append(errs, fmt.Errorf("netns: return: %w", err))
				}
				unix.Close(homeNs)
			}
			return errors.Join(errs...)
		}
		var err error
		for i, dir := range v1 {
			if err = writeTask(dir, tid); err != nil {
				break
			}
			joined = append(joined, homes[i])
		}
		if err == nil && nsFd >= 0 {
			if homeNs, err = unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
				homeNs, err = -1, fmt.Errorf("netns: own: %w", err)
			} else if err = unix.Setns(nsFd, unix.CLONE_NEWNET); err != nil {
				err = fmt.Errorf("netns %s: %w", netns, err)
			}
		}
		if err == nil {
			err = cmd.Start()
		}
		if lerr := leave(); lerr != nil {
			// This thread stays locked and dies with the goroutine.
			s.log.Warn("a forking thread cannot return to the supervisor's cgroups; dropping it", "err", lerr)
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// writeTask moves thread tid into cgroup v1 directory dir.
func writeTask(dir string, tid int) error {
	f := dir + "/tasks"
	if err := os.WriteFile(f, []byte(strconv.Itoa(tid)), 0); err != nil {
		return fmt.Errorf("cgroup: write %s: %w", f, err)
	}
	return nil
}
