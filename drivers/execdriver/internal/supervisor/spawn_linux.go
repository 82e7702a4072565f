//go:build linux

package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/drivers/execdriver/internal/proc"
	"github.com/dcos-kernel/dcos/drivers/execdriver/internal/wire"
)

// start starts spec and registers it. On error nothing is left behind: no
// process, no record, and the supervisor is back in its own cgroups.
func (s *server) start(spec *wire.StartSpec) (*wire.TaskInfo, string, error) {
	dir := spec.WorkDir
	if dir == "" {
		dir = "/"
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, "", fmt.Errorf("work dir: %w", err)
	} else if !fi.IsDir() {
		return nil, "", fmt.Errorf("work dir %s: not a directory", dir)
	}
	path, err := lookPath(spec.Command, envValue(spec.Env, "PATH"), dir)
	if err != nil {
		return nil, "", err
	}
	stdout, err := openOutput(spec.Stdout)
	if err != nil {
		return nil, "", fmt.Errorf("stdout: %w", err)
	}
	defer stdout.Close()
	stderr, err := openOutput(spec.Stderr)
	if err != nil {
		return nil, "", fmt.Errorf("stderr: %w", err)
	}
	defer stderr.Close()
	env := spec.Env
	if env == nil {
		env = []string{} // nil would mean our own environment
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string{spec.Command}, spec.Args...),
		Env:         env,
		Dir:         dir,
		Stdout:      stdout,
		Stderr:      stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[spec.TaskID]; ok {
		return nil, wire.CodeExists, fmt.Errorf("task %q: already exists", spec.TaskID)
	}
	// A leftover record of an earlier task with this id would be read as
	// this task's exit by a driver that recovers it.
	if err := os.Remove(wire.ExitRecordPath(s.stateDir, spec.TaskID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("exit record: %w", err)
	}
	leave, err := s.joinCgroups(spec.Cgroups, cmd.SysProcAttr)
	if err != nil {
		return nil, "", err
	}
	err = cmd.Start()
	if lerr := leave(); lerr != nil {
		// We may still be in a task's cgroup: later tasks would start
		// there too. Refuse this start and say so loudly.
		s.log.Error("cannot return to own cgroups", "err", lerr)
		if err == nil {
			_ = proc.SignalGroup(cmd.Process.Pid, syscall.SIGKILL)
			cmd.Process.Release() // the reaper reaps it
			return nil, "", lerr
		}
	}
	if err != nil {
		return nil, "", err
	}
	pid := cmd.Process.Pid
	cmd.Process.Release() // the reaper reaps it
	st, err := proc.StartTime(pid)
	if err != nil {
		_ = proc.SignalGroup(pid, syscall.SIGKILL)
		return nil, "", fmt.Errorf("process %d: start time: %w", pid, err)
	}
	t := &task{info: wire.TaskInfo{ID: spec.TaskID, Pid: pid, StartTime: st, StartedAt: time.Now().UTC()}}
	s.tasks[spec.TaskID] = t
	s.byPid[pid] = t
	s.lastBusy = time.Now()
	info := t.info
	s.log.Info("task started", "task", spec.TaskID, "pid", pid, "command", path)
	return &info, "", nil
}

func openOutput(path string) (*os.File, error) {
	if path == "" {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

// joinCgroups makes the next child start inside dirs: it moves this
// process into each cgroup v1 directory (the child inherits them) and
// sets attr to clone a child into the cgroup v2 directory, if any. The
// returned leave moves this process back to the cgroups it started in.
// s.mu must be held until leave returns. On error nothing is left joined.
func (s *server) joinCgroups(dirs []string, attr *syscall.SysProcAttr) (_ func() error, err error) {
	var joined []hierarchy
	leave := func() error {
		var errs []error
		for _, h := range joined {
			if err := writeProcs(h.home); err != nil {
				errs = append(errs, err)
			}
		}
		joined = nil
		if attr.UseCgroupFD {
			unix.Close(attr.CgroupFD)
			attr.UseCgroupFD, attr.CgroupFD = false, 0
		}
		return errors.Join(errs...)
	}
	if len(dirs) == 0 {
		return leave, nil
	}
	defer func() {
		if err != nil {
			if lerr := leave(); lerr != nil {
				s.log.Error("cannot return to own cgroups", "err", lerr)
			}
		}
	}()
	if s.homesErr != nil {
		return nil, fmt.Errorf("cgroups: own cgroups unknown: %w", s.homesErr)
	}
	seen := map[string]string{}
	for _, dir := range dirs {
		var fs unix.Statfs_t
		if err := unix.Statfs(dir, &fs); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", dir, err)
		}
		h, ok := hierarchyOf(s.homes, dir)
		switch {
		case fs.Type != unix.CGROUP2_SUPER_MAGIC && fs.Type != unix.CGROUP_SUPER_MAGIC:
			return nil, fmt.Errorf("cgroup %s: not a cgroup directory", dir)
		case !ok:
			return nil, fmt.Errorf("cgroup %s: not in a cgroup hierarchy mounted when the supervisor started", dir)
		case seen[h.mount] != "":
			return nil, fmt.Errorf("cgroup %s: same hierarchy as %s", dir, seen[h.mount])
		}
		seen[h.mount] = dir
		if fs.Type == unix.CGROUP2_SUPER_MAGIC {
			fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("cgroup %s: %w", dir, err)
			}
			attr.UseCgroupFD, attr.CgroupFD = true, fd
			continue
		}
		if h.home == "" {
			return nil, fmt.Errorf("cgroup %s: the supervisor's own cgroup in %s is not visible", dir, h.mount)
		}
		if err := writeProcs(dir); err != nil {
			return nil, err
		}
		joined = append(joined, h)
	}
	return leave, nil
}

// writeProcs moves this process (all its threads) into cgroup dir.
func writeProcs(dir string) error {
	f := dir + "/cgroup.procs"
	if err := os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("cgroup: write %s: %w", f, err)
	}
	return nil
}
