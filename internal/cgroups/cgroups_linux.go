//go:build linux

package cgroups

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Detect reads /proc/self/mountinfo and /proc/self/cgroup and returns the
// host's cgroup layout and the current process's place in it. An error
// wrapping ErrNotSupported means no cgroup hierarchy is mounted; a layout
// that lacks a controller is returned without error (see Layout.Check).
func Detect() (Layout, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return Layout{}, fmt.Errorf("cgroups: detect: %w", err)
	}
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return Layout{}, fmt.Errorf("cgroups: detect: %w", err)
	}
	l, err := buildLayout(string(mi), string(cg))
	if err != nil {
		return l, fmt.Errorf("cgroups: detect: %w", err)
	}
	if l.Unified != nil {
		b, err := os.ReadFile(filepath.Join(l.Unified.Mount, "cgroup.controllers"))
		if err != nil {
			return l, fmt.Errorf("cgroups: detect: %w", err)
		}
		l.UnifiedControllers = strings.Fields(string(b))
	}
	return l, nil
}

// CheckAccess reports whether this process may create cgroups beneath parent
// ("" for its own cgroups) in every hierarchy a task needs. The error is a
// *NotSupportedError naming the controller.
func (l Layout) CheckAccess(parent string) error {
	paths, err := l.taskPaths(parent, "probe")
	if err != nil {
		return err
	}
	for _, k := range taskKeys {
		p, ok := paths[k]
		if !ok {
			continue
		}
		dir := filepath.Dir(p)
		if err := unix.Access(dir, unix.W_OK); err != nil {
			return &NotSupportedError{Controller: k, Reason: "cannot create cgroups in " + dir, Err: err}
		}
	}
	return nil
}

// Task is one task's cgroups. Its methods are safe for concurrent use.
// The caller owns the cgroups: call Destroy when the task is gone.
type Task struct {
	mode  Mode
	paths map[string]string // Key* → directory
	dirs  []string          // distinct directories, v1 first

	mu sync.Mutex // guards fd and serializes Update
	fd int        // unified directory, -1 until FD is called
}

// NewTask creates the cgroup name beneath parent (a cgroup path as in
// /proc/self/cgroup, e.g. "/dcos"; or relative to the current process's own
// cgroup in each hierarchy, e.g. "dcos"; "" for that own cgroup itself)
// in every hierarchy the layout uses, and writes limits. On a pure v2 host it
// first enables the memory, cpu and pids controllers in cgroup.subtree_control
// from the hierarchy's root down to parent (which fails with EBUSY if parent
// holds processes: give a parent without any). Missing parent directories are
// created and left in place (Destroy removes only the task's own cgroups).
//
// A missing controller or missing permission is a *NotSupportedError; a
// failed file operation is a *FileError. On error none of the task's own
// cgroups is left behind.
// NewTask fails with EEXIST if the task's cgroup already exists (see
// OpenTask).
func (l Layout) NewTask(parent, name string, limits Limits) (*Task, error) {
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	t, err := l.OpenTask(parent, name)
	if err != nil {
		return nil, err
	}
	for _, k := range taskKeys {
		if d, ok := t.paths[k]; ok {
			if err := mkdir(k, filepath.Dir(d), true); err != nil {
				return nil, err
			}
		}
	}
	if l.Mode == ModeUnified {
		if err := l.enableControllers(filepath.Dir(t.paths[KeyUnified])); err != nil {
			return nil, err
		}
	}
	var made []string
	for _, k := range taskKeys {
		d, ok := t.paths[k]
		if !ok || slices.Contains(made, d) {
			continue
		}
		if err := mkdir(k, d, false); err != nil {
			rmdirAll(made)
			return nil, err
		}
		made = append(made, d)
	}
	if err := l.fillCPUSetV1(t.paths[KeyCPUSet]); err != nil {
		rmdirAll(made)
		return nil, err
	}
	if err := t.Update(limits); err != nil {
		rmdirAll(made)
		return nil, err
	}
	return t, nil
}

// OpenTask returns a handle on the existing task cgroup name beneath parent
// (as NewTask), without creating, checking or changing anything: for an agent that
// recovers its tasks after a restart, or removes leftovers with Destroy.
func (l Layout) OpenTask(parent, name string) (*Task, error) {
	paths, err := l.taskPaths(parent, name)
	if err != nil {
		return nil, err
	}
	return &Task{mode: l.Mode, paths: paths, dirs: uniqueDirs(paths), fd: -1}, nil
}

// mkdir creates cgroup directory d of hierarchy key (and its parents if
// all), mapping a permission error to a *NotSupportedError.
func mkdir(key, d string, all bool) error {
	var err error
	if all {
		err = os.MkdirAll(d, 0o755)
	} else {
		err = os.Mkdir(d, 0o755)
	}
	if err == nil {
		return nil
	}
	ferr := &FileError{Op: "mkdir", Dir: d, Err: unwrapPath(err)}
	if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return &NotSupportedError{Controller: key, Reason: "cannot create cgroups", Err: ferr}
	}
	return ferr
}

func rmdirAll(dirs []string) {
	for _, d := range dirs {
		_ = unix.Rmdir(d)
	}
}

// enableControllers makes sure memory, cpu and pids are in the
// cgroup.subtree_control of every directory from the v2 mount down to dir.
func (l Layout) enableControllers(dir string) error {
	rel, err := filepath.Rel(l.Unified.Mount, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("cgroups: %s is not beneath %s", dir, l.Unified.Mount)
	}
	d := l.Unified.Mount
	parts := []string{}
	if rel != "." {
		parts = strings.Split(rel, "/")
	}
	for i := 0; ; i++ {
		cur, err := readFile(d, "cgroup.subtree_control")
		if err != nil {
			return err
		}
		have := strings.Fields(cur)
		var add []string
		for _, c := range l.wantedV2(d) {
			if !slices.Contains(have, c) {
				add = append(add, "+"+c)
			}
		}
		if len(add) > 0 {
			if err := writeFile(d, "cgroup.subtree_control", strings.Join(add, " ")); err != nil {
				return err
			}
		}
		if i == len(parts) {
			return nil
		}
		d = filepath.Join(d, parts[i])
	}
}

// Paths returns the task's cgroup directories keyed by KeyMemory, KeyCPU,
// KeyCPUAcct, KeyPids and KeyUnified (only those the layout uses). The map is
// the caller's.
func (t *Task) Paths() map[string]string { return maps.Clone(t.paths) }

// UnifiedDir returns the task's v2 directory, for BPF attachment and
// clone3(CLONE_INTO_CGROUP); "" in ModeV1.
func (t *Task) UnifiedDir() string { return t.paths[KeyUnified] }

// FD returns an open descriptor of the task's v2 directory, for
// SysProcAttr{UseCgroupFD: true, CgroupFD: fd}. The Task owns it (do not
// close it); Destroy closes it. In ModeHybrid a child started this way is in
// the task's v2 cgroup only: AddProc it (or have it AddProc itself before it
// execs the workload) to put it under the v1 limits. In ModeV1 it returns a
// *NotSupportedError.
func (t *Task) FD() (int, error) {
	d := t.paths[KeyUnified]
	if d == "" {
		return -1, &NotSupportedError{Controller: KeyUnified, Reason: "no cgroup v2 hierarchy"}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fd >= 0 {
		return t.fd, nil
	}
	fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &FileError{Op: "open", Dir: d, Err: err}
	}
	t.fd = fd
	return fd, nil
}

// AddProc moves process pid (all its threads) into every one of the task's
// cgroups by writing cgroup.procs. Its children forked afterwards inherit
// them; memory it charged before the move stays charged to its old cgroup.
func (t *Task) AddProc(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroups: add proc: bad pid %d", pid)
	}
	v := strconv.Itoa(pid)
	for _, d := range t.dirs {
		if err := writeFile(d, "cgroup.procs", v); err != nil {
			return err
		}
	}
	return nil
}

// Update writes limits to the task's cgroups; concurrent calls are
// serialized. It may be called while the task runs: lowering the memory
// limit below current use makes the kernel reclaim or OOM-kill.
func (t *Task) Update(limits Limits) error {
	if err := limits.Validate(); err != nil {
		return err
	}
	// Serialized: the v1 memsw dance must not interleave with another one.
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mode == ModeUnified {
		return t.updateV2(limits)
	}
	return t.updateV1(limits)
}

func (t *Task) updateV1(l Limits) error {
	mem := t.paths[KeyMemory]
	memsw := exists(mem, "memory.memsw.limit_in_bytes")
	if memsw {
		// memsw must stay >= limit: lift it, set the limit, then pin it to
		// the limit so the task cannot swap.
		if err := writeFile(mem, "memory.memsw.limit_in_bytes", "-1"); err != nil {
			return err
		}
	}
	if err := writeFile(mem, "memory.limit_in_bytes", v1Limit(l.MemoryBytes)); err != nil {
		return err
	}
	if memsw && l.MemoryBytes > 0 {
		if err := writeFile(mem, "memory.memsw.limit_in_bytes", v1Limit(l.MemoryBytes)); err != nil {
			return err
		}
	}
	cpu := t.paths[KeyCPU]
	if err := writeFile(cpu, "cpu.cfs_period_us", strconv.Itoa(CFSPeriodUs)); err != nil {
		return err
	}
	if err := writeFile(cpu, "cpu.cfs_quota_us", strconv.FormatInt(cfsQuota(l.MilliCPU), 10)); err != nil {
		return err
	}
	if err := writeCPUWeight(cpu, "cpu.shares", strconv.FormatInt(cpuShares(l.MilliCPU), 10), l.CPUIdle); err != nil {
		return err
	}
	if err := writeCPUSetV1(t.paths[KeyCPUSet], l.CPUs); err != nil {
		return err
	}
	return writeFile(t.paths[KeyPids], "pids.max", v2Limit(l.Pids))
}

func (t *Task) updateV2(l Limits) error {
	d := t.paths[KeyUnified]
	if err := writeFile(d, "memory.max", v2Limit(l.MemoryBytes)); err != nil {
		return err
	}
	if exists(d, "memory.swap.max") {
		swap := "max"
		if l.MemoryBytes > 0 {
			swap = "0"
		}
		if err := writeFile(d, "memory.swap.max", swap); err != nil {
			return err
		}
	}
	if err := writeFile(d, "cpu.max", cpuMax(l.MilliCPU)); err != nil {
		return err
	}
	if err := writeCPUWeight(d, "cpu.weight", strconv.FormatInt(cpuWeight(l.MilliCPU), 10), l.CPUIdle); err != nil {
		return err
	}
	if exists(d, "cpuset.cpus") {
		// "" hands the cgroup its parent's CPUs again.
		if err := writeFile(d, "cpuset.cpus", l.CPUs); err != nil {
			return err
		}
	}
	return writeFile(d, "pids.max", v2Limit(l.Pids))
}

// writeCPUWeight writes the weight file (v1 cpu.shares, v2 cpu.weight)
// and, where the kernel has it, cpu.idle in cpu directory dir. The kernel
// refuses a weight for an idle group (EINVAL), so a normal task leaves the
// idle class before its weight is written, and an idle one keeps the
// weight it had (the kernel restores it if the group leaves the class).
func writeCPUWeight(dir, file, weight string, idle bool) error {
	if !exists(dir, "cpu.idle") {
		return writeFile(dir, file, weight)
	}
	if idle {
		return writeFile(dir, "cpu.idle", "1")
	}
	if err := writeFile(dir, "cpu.idle", "0"); err != nil {
		return err
	}
	return writeFile(dir, file, weight)
}

// CPUIdleSupported reports whether the kernel has cpu.idle in the task's
// cpu cgroup (Linux >= 5.15): without it Limits.CPUIdle is ignored and the
// task runs in the normal class.
func (t *Task) CPUIdleSupported() bool {
	d := t.paths[KeyCPU]
	if t.mode == ModeUnified {
		d = t.paths[KeyUnified]
	}
	return exists(d, "cpu.idle")
}

// Usage reads the task's resource use. CPU time is split into user and
// system time where the kernel gives the split: v2 cpu.stat user_usec and
// system_usec, or v1 cpuacct.usage apportioned by cpuacct.stat's tick counts.
func (t *Task) Usage() (Usage, error) {
	var u Usage
	var err error
	if t.mode == ModeUnified {
		d := t.paths[KeyUnified]
		if err = u.readCPUStat(d); err != nil {
			return u, err
		}
		if u.MemoryBytes, err = readUint(d, "memory.current"); err != nil {
			return u, err
		}
		if exists(d, "memory.peak") {
			if u.MemoryPeakBytes, err = readUint(d, "memory.peak"); err != nil {
				return u, err
			}
		}
		if u.OOMKills, err = readKeyed(d, "memory.events", "oom_kill"); err != nil {
			return u, err
		}
		u.Procs, err = countProcs(d)
		return u, err
	}
	switch acct := t.paths[KeyCPUAcct]; {
	case acct != "":
		if u.CPUTimeNs, err = readUint(acct, "cpuacct.usage"); err != nil {
			return u, err
		}
		if s, rerr := readFile(acct, "cpuacct.stat"); rerr == nil {
			u.CPUUserNs, u.CPUSystemNs = splitTicks(u.CPUTimeNs, s)
		}
	case t.paths[KeyUnified] != "":
		err = u.readCPUStat(t.paths[KeyUnified])
	}
	if err != nil {
		return u, err
	}
	mem := t.paths[KeyMemory]
	if u.MemoryBytes, err = readUint(mem, "memory.usage_in_bytes"); err != nil {
		return u, err
	}
	if u.MemoryPeakBytes, err = readUint(mem, "memory.max_usage_in_bytes"); err != nil {
		return u, err
	}
	if u.OOMKills, err = readKeyed(mem, "memory.oom_control", "oom_kill"); err != nil {
		return u, err
	}
	u.Procs, err = countProcs(mem)
	return u, err
}

// countProcs counts the pids in dir's cgroup.procs.
func countProcs(dir string) (uint64, error) {
	s, err := readFile(dir, "cgroup.procs")
	if err != nil {
		return 0, err
	}
	return uint64(strings.Count(s, "\n")), nil
}

// readCPUStat fills the CPU fields from a v2 cpu.stat in dir.
func (u *Usage) readCPUStat(dir string) error {
	s, err := readFile(dir, "cpu.stat")
	if err != nil {
		return err
	}
	total, ok := parseKeyed(s, "usage_usec")
	if !ok {
		return &FileError{Op: "read", File: "cpu.stat", Dir: dir, Err: fmt.Errorf("no %q", "usage_usec")}
	}
	u.CPUTimeNs = total * 1000
	user, ok1 := parseKeyed(s, "user_usec")
	sys, ok2 := parseKeyed(s, "system_usec")
	if ok1 && ok2 && user+sys > 0 {
		// Each is rounded down to µs on its own: keep their sum exact.
		u.CPUUserNs = min(user*1000, u.CPUTimeNs)
		u.CPUSystemNs = u.CPUTimeNs - u.CPUUserNs
	}
	return nil
}

// OOMKilled reports whether the kernel's OOM killer has killed a process of
// the task.
func (t *Task) OOMKilled() (bool, error) {
	var n uint64
	var err error
	if t.mode == ModeUnified {
		n, err = readKeyed(t.paths[KeyUnified], "memory.events", "oom_kill")
	} else {
		n, err = readKeyed(t.paths[KeyMemory], "memory.oom_control", "oom_kill")
	}
	return n > 0, err
}

// Procs returns the pids in any of the task's cgroups, without duplicates.
// A cgroup that no longer exists counts as empty.
func (t *Task) Procs() ([]int, error) {
	var all []int
	for _, d := range t.dirs {
		s, err := readFile(d, "cgroup.procs")
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		pids, err := parsePids(s)
		if err != nil {
			return nil, fmt.Errorf("%w in %s", err, d)
		}
		for _, p := range pids {
			if !slices.Contains(all, p) {
				all = append(all, p)
			}
		}
	}
	return all, nil
}

// Kill kills every process of the task and returns once the task's cgroups
// are empty: through the v2 cgroup.kill where present, and by sending
// SIGKILL to every pid in each cgroup.procs until none is left (exited,
// unreaped processes are not listed, so a parent that has not yet waited
// does not block it; it must still reap them). It gives up with an error
// after 500 rounds 10 ms apart. Kill on removed cgroups is a no-op.
func (t *Task) Kill() error {
	if d := t.paths[KeyUnified]; d != "" && exists(d, "cgroup.kill") {
		if err := writeFile(d, "cgroup.kill", "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	const attempts = 500
	var pids []int
	for range attempts {
		var err error
		pids, err = t.Procs()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		for _, p := range pids {
			if err := unix.Kill(p, unix.SIGKILL); err != nil && err != unix.ESRCH {
				return fmt.Errorf("cgroups: kill %d: %w", p, err)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("cgroups: kill: %d processes still in %s after %d rounds", len(pids), t.dirs[0], attempts)
}

// Destroy kills the task's processes and removes its cgroups in every
// hierarchy, retrying EBUSY for up to about two seconds. It is idempotent: a
// cgroup already gone is not an error. It closes the descriptor from FD.
func (t *Task) Destroy() error {
	errs := []error{t.Kill()}
	for _, d := range t.dirs {
		errs = append(errs, rmdirRetry(d))
	}
	t.mu.Lock()
	if t.fd >= 0 {
		_ = unix.Close(t.fd)
		t.fd = -1
	}
	t.mu.Unlock()
	return errors.Join(errs...)
}

func rmdirRetry(d string) error {
	var err error
	for range 200 {
		err = unix.Rmdir(d)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &FileError{Op: "rmdir", Dir: d, Err: err}
}

func exists(dir, file string) bool {
	_, err := os.Stat(filepath.Join(dir, file))
	return err == nil
}

// writeFile writes value to a cgroup file in one write(2), with plain
// syscalls (see readFile).
func writeFile(dir, file, value string) error {
	err := writeOnce(filepath.Join(dir, file), value)
	if err != nil {
		return &FileError{Op: "write", File: file, Value: value, Dir: dir, Err: err}
	}
	return nil
}

func writeOnce(name, value string) error {
	var fd int
	var err error
	for {
		fd, err = unix.Open(name, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return err
	}
	for {
		var n int
		n, err = unix.Write(fd, []byte(value))
		if err == unix.EINTR {
			continue
		}
		if err == nil && n != len(value) {
			err = io.ErrShortWrite
		}
		break
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	return err
}

// readFile reads a cgroup file with plain syscalls: os.ReadFile would also
// stat it and try to register it with the netpoller, which cost about as
// much as the read itself for these small kernel files (with one
// cgroup.procs read instead of five, this took the isolator's Usage from
// ~240 µs to ~110 µs on the 2-core VM; BenchmarkIsolator_Usage).
func readFile(dir, file string) (string, error) {
	b, err := readAll(filepath.Join(dir, file))
	if err != nil {
		return "", &FileError{Op: "read", File: file, Dir: dir, Err: err}
	}
	return string(b), nil
}

func readAll(name string) ([]byte, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

func readUint(dir, file string) (uint64, error) {
	s, err := readFile(dir, file)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, &FileError{Op: "read", File: file, Dir: dir, Err: err}
	}
	return n, nil
}

func readKeyed(dir, file, key string) (uint64, error) {
	s, err := readFile(dir, file)
	if err != nil {
		return 0, err
	}
	n, ok := parseKeyed(s, key)
	if !ok {
		return 0, &FileError{Op: "read", File: file, Dir: dir, Err: fmt.Errorf("no %q", key)}
	}
	return n, nil
}

// unwrapPath strips *os.PathError (FileError already names the path).
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func errnoName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if n := unix.ErrnoName(errno); n != "" {
			return n
		}
	}
	return err.Error()
}

// v1Limit renders n for a v1 limit file ("-1" for none).
func v1Limit(n int64) string {
	if n <= 0 {
		return "-1"
	}
	return strconv.FormatInt(n, 10)
}

// v2Limit renders n for a v2 limit file or pids.max ("max" for none).
func v2Limit(n int64) string {
	if n <= 0 {
		return "max"
	}
	return strconv.FormatInt(n, 10)
}

// taskKeys are the Key constants in the order task directories are made,
// written and reported.
var taskKeys = []string{KeyMemory, KeyCPU, KeyCPUAcct, KeyPids, KeyCPUSet, KeyUnified}

// uniqueDirs returns the distinct directories of paths (co-mounted v1
// controllers share one), v1 ones first, in a fixed order.
func uniqueDirs(paths map[string]string) []string {
	var out []string
	for _, k := range taskKeys {
		d, ok := paths[k]
		if ok && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
