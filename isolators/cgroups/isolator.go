package cgroups

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	cg "github.com/dcos-kernel/dcos/internal/cgroups"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

var _ contract.Isolator = (*Isolator)(nil)

// DefaultParent is the parent of task cgroups when Config.Parent is empty:
// relative to the isolator process's own cgroup in each hierarchy.
const DefaultParent = "dcos-tasks"

// DefaultPIDs is the pids limit of a container whose allocation names none,
// when Config.DefaultPIDs is 0.
const DefaultPIDs = 4096

// AgentLeaf is the child cgroup that, on a pure v2 host with a relative
// Parent, New moves the processes of the isolator's own cgroup into (see the
// package documentation).
const AgentLeaf = "dcos-agent"

// watchFlushTimeout bounds how long a watch, once its container is cleaned
// up, waits for its reader to take the OOM kills it saw last.
const watchFlushTimeout = time.Second

// Config configures an Isolator.
type Config struct {
	// Parent is the cgroup path the task cgroups go beneath: absolute
	// ("/dcos") or relative to the isolator process's own cgroup in each
	// hierarchy ("dcos" → <own>/dcos). Default DefaultParent (relative).
	// Everything beneath it belongs to the isolator: Recover removes what
	// it does not know. It must not be "." or "/". Agents that share a
	// host must not share a Parent: a relative one resolves to the same
	// directory for processes in the same cgroup (on a hybrid host often
	// the root of the cpu and pids hierarchies), so give each agent its own
	// (e.g. "dcos-tasks/<agent ID>").
	Parent string
	// DefaultPIDs is the pids limit when the allocation names none;
	// default DefaultPIDs.
	DefaultPIDs int64
	// Logger receives warnings (leftovers removed, processes moved);
	// default: discard.
	Logger *slog.Logger
}

// Isolator is the cgroups isolator. Its methods are safe for concurrent use.
type Isolator struct {
	layout      cg.Layout
	parent      string // as given to internal/cgroups
	defaultPIDs int64
	log         *slog.Logger

	mu         sync.Mutex
	containers map[string]*container

	// idleWarned makes the "idle class not enforced" warning once.
	idleWarned sync.Once
	// cpusetWarned makes the "cpusets not enforced" warning once.
	cpusetWarned sync.Once

	// gc is held shared by Prepare while it creates cgroups and exclusively
	// by Recover while it removes leftovers, so that Recover never takes a
	// cgroup being made for a leftover.
	gc sync.RWMutex
}

// container is one prepared container.
type container struct {
	id    string
	ready chan struct{} // closed once Prepare (or Recover) is done with it
	err   error         // set before ready is closed if Prepare failed

	task *cg.Task
	dirs []string // LaunchInfo.Cgroups

	mu       sync.Mutex // guards limits, gone, watchers; serializes Update and Cleanup
	limits   contract.Resources
	gone     chan struct{} // closed when Cleanup starts
	cleaned  bool
	watchers sync.WaitGroup
}

// New detects the host's cgroup layout, creates the parent cgroup in every
// hierarchy and checks it may create cgroups there. An error wrapping
// contract.ErrNotSupported (its message names what is missing, e.g. "not
// root: cannot create cgroups in /sys/fs/cgroup/memory/...") means this
// host cannot isolate: the agent can warn once and run tasks without
// isolation. See the package documentation for what it does on pure v2.
func New(cfg Config) (*Isolator, error) {
	if cfg.Parent == "" {
		cfg.Parent = DefaultParent
	}
	if p := path.Clean(cfg.Parent); p == "." || p == "/" || p == ".." || strings.HasPrefix(p, "../") {
		return nil, fmt.Errorf("cgroups isolator: parent %q: must name a cgroup of its own beneath the agent's or the root", cfg.Parent)
	}
	if cfg.DefaultPIDs < 0 {
		return nil, fmt.Errorf("cgroups isolator: negative DefaultPIDs %d", cfg.DefaultPIDs)
	}
	if cfg.DefaultPIDs == 0 {
		cfg.DefaultPIDs = DefaultPIDs
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l, err := cg.Detect()
	if err != nil {
		return nil, notSupported(err)
	}
	if err := l.Check(); err != nil {
		return nil, notSupported(err)
	}
	i := &Isolator{layout: l, parent: cfg.Parent, defaultPIDs: cfg.DefaultPIDs, log: cfg.Logger, containers: map[string]*container{}}
	if l.Mode == cg.ModeUnified && !path.IsAbs(cfg.Parent) {
		if err := i.leaveOwnCgroup(); err != nil {
			return nil, notSupported(err)
		}
	}
	if err := l.MakeParent(i.parent); err != nil {
		return nil, notSupported(err)
	}
	dirs, _ := l.ParentDirs(i.parent)
	// The parent may exist already (made by a privileged agent): task
	// cgroups are created in it, so it must be writable.
	if err := l.CheckAccess(i.parent); err != nil {
		return nil, notSupported(err)
	}
	i.log.Debug("cgroups isolator ready", "mode", l.Mode.String(), "parent", i.parent, "dirs", dirs)
	return i, nil
}

// leaveOwnCgroup makes the task parent absolute beneath the agent's own v2
// cgroup and, unless that is the root, moves the own cgroup's processes into
// AgentLeaf so that it may enable controllers for the task parent.
func (i *Isolator) leaveOwnCgroup() error {
	own, abs := v2Parent(i.layout.Unified.Self, i.parent)
	i.parent = abs
	if own == "/" {
		return nil // the root may hold processes and enable controllers
	}
	n, err := i.layout.MoveToLeaf(own, AgentLeaf)
	if err != nil {
		return fmt.Errorf("move the processes of %s into %s/%s: %w", own, own, AgentLeaf, err)
	}
	if n > 0 {
		i.log.Info("cgroups isolator: moved the agent's cgroup processes into a leaf (cgroup v2 no-internal-processes rule)",
			"from", own, "to", path.Join(own, AgentLeaf), "processes", n)
	}
	return nil
}

// v2Parent returns, for a pure v2 host and a relative parent, the agent's
// own cgroup (self, or its parent if self is the AgentLeaf a previous run
// moved the agent into) and the absolute task parent beneath it.
func v2Parent(self, parent string) (own, abs string) {
	own = path.Clean("/" + self)
	if path.Base(own) == AgentLeaf {
		own = path.Dir(own)
	}
	return own, path.Join(own, parent)
}

// notSupported wraps err with contract.ErrNotSupported if it is a
// "cannot use cgroups here" error, saying "not root" when that is why.
func notSupported(err error) error {
	if !errors.Is(err, cg.ErrNotSupported) {
		return fmt.Errorf("cgroups isolator: %w", err)
	}
	msg := err.Error()
	var nse *cg.NotSupportedError
	if errors.As(err, &nse) {
		var fe *cg.FileError
		switch {
		case errors.As(nse.Err, &fe) && fe.Op == "mkdir":
			msg = "cannot create cgroups in " + fe.Dir + ": " + fe.Err.Error()
		case strings.HasPrefix(nse.Reason, "cannot create cgroups in ") && nse.Err != nil:
			msg = nse.Reason + ": " + nse.Err.Error()
		}
	}
	if os.Geteuid() != 0 {
		msg = "not root: " + msg
	}
	return fmt.Errorf("cgroups isolator: %s: %w", msg, contract.ErrNotSupported)
}

// limits maps container id's allocation to cgroup limits (its cpuset
// intersected with the agent's CPUs: see cpus).
func (i *Isolator) limits(id string, r contract.Resources) (cg.Limits, error) {
	if r.CPUs < 0 || math.IsNaN(r.CPUs) || math.IsInf(r.CPUs, 0) || r.MemBytes < 0 || r.PIDs < 0 {
		return cg.Limits{}, fmt.Errorf("invalid resources %+v", r)
	}
	cpus, err := i.cpus(id, r.CPUSet)
	if err != nil {
		return cg.Limits{}, err
	}
	l := cg.Limits{MilliCPU: int64(math.Round(r.CPUs * 1000)), MemoryBytes: r.MemBytes, Pids: r.PIDs, CPUIdle: r.CPUIdle, CPUs: cpus}
	if l.Pids == 0 {
		l.Pids = i.defaultPIDs
	}
	return l, nil
}

// Prepare creates the container's cgroups with the given limits and returns
// their directories in LaunchInfo.Cgroups (v1 ones first, then the v2 one).
// An ID already prepared is an error; so is a leftover cgroup of the same
// name (Recover removes those).
func (i *Isolator) Prepare(ctx context.Context, id string, r contract.Resources) (*contract.LaunchInfo, error) {
	name := cgroupName(id)
	if name == "" {
		return nil, errors.New("prepare: empty container ID")
	}
	lim, err := i.limits(id, r)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", id, err)
	}
	c := &container{id: id, ready: make(chan struct{}), gone: make(chan struct{}), limits: r}
	i.mu.Lock()
	if _, ok := i.containers[id]; ok {
		i.mu.Unlock()
		return nil, fmt.Errorf("prepare %q: already prepared", id)
	}
	i.containers[id] = c
	i.mu.Unlock()

	i.gc.RLock()
	c.task, c.err = i.layout.NewTask(i.parent, name, lim)
	i.gc.RUnlock()
	if c.err == nil {
		c.dirs = taskDirs(c.task)
		i.checkCPUIdle(c.task, r)
	} else {
		c.err = fmt.Errorf("prepare %q: %w", id, c.err)
		i.mu.Lock()
		if i.containers[id] == c {
			delete(i.containers, id)
		}
		i.mu.Unlock()
	}
	close(c.ready)
	if c.err != nil {
		return nil, c.err
	}
	return &contract.LaunchInfo{Cgroups: slices.Clone(c.dirs)}, nil
}

// checkCPUIdle warns, once per isolator, when a container asks for the
// idle CPU class on a kernel without cgroup cpu.idle: the task runs in the
// normal class.
func (i *Isolator) checkCPUIdle(t *cg.Task, r contract.Resources) {
	if !r.CPUIdle || t.CPUIdleSupported() {
		return
	}
	i.idleWarned.Do(func() {
		i.log.Warn("cgroups isolator: the kernel has no cgroup cpu.idle (Linux >= 5.15): tasks of cpu class idle run in the normal class")
	})
}

// taskDirs returns the distinct directories of a task, v1 ones first in a
// fixed order, the v2 one last.
func taskDirs(t *cg.Task) []string {
	p := t.Paths()
	var dirs []string
	for _, k := range []string{cg.KeyMemory, cg.KeyCPU, cg.KeyCPUAcct, cg.KeyPids, cg.KeyCPUSet, cg.KeyUnified} {
		if d, ok := p[k]; ok && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// lookup returns the prepared container id, waiting for a Prepare in flight.
func (i *Isolator) lookup(ctx context.Context, id string) (*container, error) {
	i.mu.Lock()
	c, ok := i.containers[id]
	i.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, contract.ErrTaskNotFound)
	}
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if c.err != nil {
		return nil, fmt.Errorf("container %q: %w", id, contract.ErrTaskNotFound)
	}
	return c, nil
}

// notFoundIfGone turns a failure on a container cleaned up meanwhile into
// ErrTaskNotFound.
func notFoundIfGone(c *container, op string, err error) error {
	select {
	case <-c.gone:
		return fmt.Errorf("%s %q: %w (cleaned up meanwhile: %v)", op, c.id, contract.ErrTaskNotFound, err)
	default:
		return fmt.Errorf("%s %q: %w", op, c.id, err)
	}
}

// Isolate moves pid (all its threads) into every cgroup of the container;
// children it forks afterwards are in them too. It is idempotent. Memory the
// process charged before the move stays charged where it was.
func (i *Isolator) Isolate(ctx context.Context, id string, pid int) error {
	c, err := i.lookup(ctx, id)
	if err != nil {
		return err
	}
	if err := c.task.AddProc(pid); err != nil {
		return notFoundIfGone(c, "isolate", err)
	}
	return nil
}

// Update writes new limits; it may be called while the container runs
// (lowering the memory limit below current use makes the kernel reclaim or
// OOM-kill).
func (i *Isolator) Update(ctx context.Context, id string, r contract.Resources) error {
	c, err := i.lookup(ctx, id)
	if err != nil {
		return err
	}
	lim, err := i.limits(id, r)
	if err != nil {
		return fmt.Errorf("update %q: %w", id, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cleaned {
		return fmt.Errorf("update %q: %w", id, contract.ErrTaskNotFound)
	}
	if err := c.task.Update(lim); err != nil {
		return notFoundIfGone(c, "update", err)
	}
	c.limits = r
	return nil
}

// Usage reads the container's cgroups: CPU time (split into user and system
// where the kernel gives the split, else all user), current and peak memory,
// the number of processes, and OOM kills.
func (i *Isolator) Usage(ctx context.Context, id string) (*contract.TaskUsage, error) {
	c, err := i.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	u, err := c.task.Usage()
	if err != nil {
		return nil, notFoundIfGone(c, "usage", err)
	}
	tu := &contract.TaskUsage{
		Timestamp:       time.Now(),
		CPUUserNanos:    u.CPUUserNs,
		CPUSystemNanos:  u.CPUSystemNs,
		MemoryRSSBytes:  u.MemoryBytes,
		MemoryPeakBytes: u.MemoryPeakBytes,
		PIDs:            u.Procs,
		OOMKills:        u.OOMKills,
	}
	if u.CPUUserNs+u.CPUSystemNs != u.CPUTimeNs {
		tu.CPUUserNanos, tu.CPUSystemNanos = u.CPUTimeNs, 0
	}
	return tu, nil
}

// Watch streams a LimitationOOM for each process the kernel OOM-kills in the
// container, including kills before the call (so a watch started after the
// task did misses none); several kills close together may be reported a
// moment apart. The channel is closed when ctx is done or the container is
// cleaned up. Each call is an independent stream.
func (i *Isolator) Watch(ctx context.Context, id string) (<-chan contract.Limitation, error) {
	c, err := i.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cleaned {
		return nil, fmt.Errorf("watch %q: %w", id, contract.ErrTaskNotFound)
	}
	w, err := c.task.WatchOOM()
	if err != nil {
		return nil, notFoundIfGone(c, "watch", err)
	}
	out := make(chan contract.Limitation)
	c.watchers.Add(1)
	go func() {
		defer c.watchers.Done()
		defer close(out)
		defer w.Close()
		var seen uint64
		// send reports kills up to n; false if ctx or abort ended it.
		send := func(n uint64, abort <-chan struct{}) bool {
			for ; seen < n; seen++ {
				l := contract.Limitation{ContainerID: id, Reason: contract.LimitationOOM, Message: c.oomMessage(), At: time.Now()}
				select {
				case out <- l:
				case <-ctx.Done():
					return false
				case <-abort:
					return false
				}
			}
			return true
		}
	loop:
		for {
			select {
			case n, ok := <-w.C:
				if !ok {
					return // the cgroups were removed under us
				}
				if !send(n, c.gone) {
					break loop
				}
			case <-ctx.Done():
				return
			case <-c.gone:
				break loop
			}
		}
		if ctx.Err() != nil {
			return
		}
		// Cleaned up: report the kills not yet reported, briefly.
		if u, err := c.task.Usage(); err == nil {
			abort := make(chan struct{})
			t := time.AfterFunc(watchFlushTimeout, func() { close(abort) })
			send(u.OOMKills, abort)
			t.Stop()
		}
	}()
	return out, nil
}

// oomMessage names the container's memory limit.
func (c *container) oomMessage() string {
	c.mu.Lock()
	mem := c.limits.MemBytes
	c.mu.Unlock()
	if mem <= 0 {
		return "out of memory (no memory limit): OOM killer killed a process"
	}
	return fmt.Sprintf("memory limit %s exceeded: OOM killer killed a process", formatBytes(mem))
}

// formatBytes renders n as "64.0 MiB".
func formatBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, u := float64(n)/1024, 0
	for f >= 1024 && u < len(units)-1 {
		f /= 1024
		u++
	}
	return fmt.Sprintf("%.1f %ciB", f, units[u])
}

// Cleanup closes the container's watches, kills every process left in its
// cgroups and removes them. It is idempotent: an unknown or already cleaned
// up container is not an error. A failed removal is returned and may be
// retried with another Cleanup. A watch that still has OOM kills to report
// offers them to its reader for up to a second before closing; Cleanup
// waits for that.
func (i *Isolator) Cleanup(ctx context.Context, id string) error {
	c, err := i.lookup(ctx, id)
	if errors.Is(err, contract.ErrTaskNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	if !c.cleaned {
		c.cleaned = true
		close(c.gone)
	}
	c.mu.Unlock()
	// Watchers leave within watchFlushTimeout; wait so their descriptors
	// are closed before the cgroups go.
	c.watchers.Wait()
	if err := c.task.Destroy(); err != nil {
		return fmt.Errorf("cleanup %q: %w", id, err)
	}
	i.mu.Lock()
	if i.containers[id] == c {
		delete(i.containers, id)
	}
	i.mu.Unlock()
	return nil
}

// Recover re-opens the cgroups of the listed containers and removes every
// other cgroup beneath the parent, killing its processes: what a crash left
// behind. A listed container whose cgroups are all gone is logged and stays
// unknown; one whose cgroups exist in only some hierarchies (half made or
// half removed) is removed and stays unknown. Containers this isolator
// already knows (prepared since it started) are kept as they are. Recover
// waits for Prepare calls in flight, and they for it.
func (i *Isolator) Recover(ctx context.Context, containers []contract.ContainerState) error {
	i.gc.Lock()
	defer i.gc.Unlock()
	keep := map[string]bool{}
	var errs []error
	for _, st := range containers {
		name := cgroupName(st.ContainerID)
		if name == "" {
			continue
		}
		keep[name] = true
		i.mu.Lock()
		_, known := i.containers[st.ContainerID]
		i.mu.Unlock()
		if known {
			continue
		}
		task, err := i.layout.OpenTask(i.parent, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("recover %q: %w", st.ContainerID, err))
			continue
		}
		if existing(task) == len(task.Paths())-1 {
			// Made before tasks had a cpuset cgroup (an upgraded agent):
			// give it one rather than kill the task as incomplete.
			made, err := i.layout.AddCPUSet(task)
			if err != nil {
				errs = append(errs, fmt.Errorf("recover %q: %w", st.ContainerID, err))
				continue
			}
			if made {
				i.log.Info("cgroups isolator: recover: added the cpuset cgroup of a container made without one; its processes stay unconfined", "container", st.ContainerID)
			}
		}
		switch n := existing(task); {
		case n == 0:
			i.log.Warn("cgroups isolator: recover: container has no cgroups", "container", st.ContainerID)
			continue
		case n < len(task.Paths()):
			// Half made or half removed: unusable, and its processes
			// escape some limits. Remove it.
			i.log.Warn("cgroups isolator: recover: removing a container's incomplete cgroups", "container", st.ContainerID)
			if err := task.Destroy(); err != nil {
				errs = append(errs, fmt.Errorf("recover %q: %w", st.ContainerID, err))
			}
			continue
		}
		c := &container{id: st.ContainerID, ready: make(chan struct{}), gone: make(chan struct{}), task: task, dirs: taskDirs(task), limits: st.Limits}
		close(c.ready)
		i.mu.Lock()
		if _, ok := i.containers[st.ContainerID]; !ok { // a Prepare may have won
			i.containers[st.ContainerID] = c
		}
		i.mu.Unlock()
	}
	i.mu.Lock()
	for id := range i.containers {
		keep[cgroupName(id)] = true
	}
	i.mu.Unlock()
	names, err := i.layout.Children(i.parent)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("recover: %w", err))...)
	}
	for _, n := range names {
		if keep[n] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		task, err := i.layout.OpenTask(i.parent, n)
		if err == nil {
			err = task.Destroy()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("recover: remove leftover cgroup %s: %w", n, err))
			continue
		}
		i.log.Warn("cgroups isolator: removed a leftover task cgroup", "cgroup", n)
	}
	return errors.Join(errs...)
}

// existing returns how many of task's directories exist.
func existing(t *cg.Task) int {
	n := 0
	for _, d := range t.Paths() {
		if _, err := os.Stat(d); err == nil {
			n++
		}
	}
	return n
}
