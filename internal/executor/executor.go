package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dcos-kernel/dcos/internal/executor/proc"
	"github.com/dcos-kernel/dcos/internal/executor/wire"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// reasonNoSupervisor is the ExitResult.Err of a task that exited while no
// supervisor watched it.
const reasonNoSupervisor = "exit status unknown: the task's supervisor was gone when it exited"

// startTimeout bounds how long StartTask waits for the supervisor; a start
// is not abandoned when the caller's context ends, so that a started task
// is never left unknown to the driver.
const startTimeout = 30 * time.Second

// spawnTimeout bounds how long the driver waits for a supervisor it
// started to answer.
const spawnTimeout = 10 * time.Second

var errClosed = errors.New("executor: closed")

// Config configures an Executor.
type Config struct {
	// StateDir is the executor's own directory (supervisor socket, lock,
	// log, exit records); created if missing. Any length: a socket path
	// longer than a unix socket address is reached through the
	// directory's descriptor (wire.SocketAddr).
	StateDir string
	// SupervisorCmd is the argv that starts the supervisor process, which
	// calls SupervisorMain(StateDir), e.g. {"/path/dcosd", "supervisor",
	// "--state-dir", DIR}.
	SupervisorCmd []string
	// Logger receives the executor's logs; nil discards them.
	Logger *slog.Logger
}

// Executor runs tasks under a supervisor that outlives it. Create it with
// New; it implements every method of contract.Driver but Capabilities and
// Fingerprint, which belong to the driver that embeds it, and its methods
// are safe for concurrent use.
type Executor struct {
	cfg  Config
	sock string
	log  *slog.Logger

	connMu sync.Mutex // serializes connecting and starting the supervisor

	mu    sync.Mutex
	cl    *client // nil while not connected
	tasks map[string]*task
	// starting holds the starts in flight, each closed when it ends.
	starting map[string]chan struct{}
	// early holds exit events for tasks not registered yet (the event can
	// overtake the reply to a start).
	early  map[string]wire.TaskInfo
	closed bool
	stop   chan struct{} // closed by Close: stops pidfd watchers
	wg     sync.WaitGroup
}

// task is the driver's record of one task. Fields after cfg are guarded by
// Executor.mu; result and completedAt are set once, before done closes.
type task struct {
	cfg       *contract.TaskConfig
	pid       int
	start     uint64
	startedAt time.Time
	// supervised: the supervisor on cl is the task's parent and reports
	// its exit. Else a pidfd watcher, or nothing once exited.
	supervised bool
	cl         *client

	done        chan struct{}
	completedAt time.Time
	result      *contract.ExitResult
}

func (t *task) exited() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

// driverState is TaskHandle.DriverState: a JSON object. Unknown keys are
// ignored, so a driver that embeds the executor may add its own.
type driverState struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

// New returns an executor for cfg. It creates StateDir but neither starts nor
// contacts the supervisor: that happens on the first StartTask (or
// RecoverTask, which only connects to a running one).
func New(cfg Config) (*Executor, error) {
	if cfg.StateDir == "" || !filepath.IsAbs(cfg.StateDir) {
		return nil, fmt.Errorf("executor: state dir %q: want an absolute path", cfg.StateDir)
	}
	if len(cfg.SupervisorCmd) == 0 {
		return nil, errors.New("executor: no supervisor command")
	}
	sock := filepath.Join(cfg.StateDir, wire.SocketName)
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, wire.ExitsDir), 0o700); err != nil {
		return nil, fmt.Errorf("executor: state dir: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.SupervisorCmd = slices.Clone(cfg.SupervisorCmd)
	return &Executor{cfg: cfg, sock: sock, log: log, tasks: map[string]*task{}, starting: map[string]chan struct{}{},
		early: map[string]wire.TaskInfo{}, stop: make(chan struct{})}, nil
}

// Close drops the connection to the supervisor and stops watching tasks.
// It never stops tasks: a new Driver on the same StateDir recovers them.
// Calls after Close fail. Close is idempotent.
func (d *Executor) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	cl := d.cl
	d.cl = nil
	close(d.stop)
	d.mu.Unlock()
	if cl != nil {
		cl.close()
	}
	d.wg.Wait()
	return nil
}

// connect returns the connection to the supervisor, dialing it if need
// be; with spawn, a supervisor that does not answer is started.
func (d *Executor) connect(ctx context.Context, spawn bool) (*client, error) {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	d.mu.Lock()
	cl, closed := d.cl, d.closed
	d.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	if cl != nil && cl.alive() {
		return cl, nil
	}
	deadline := time.Now().Add(spawnTimeout)
	var lastSpawn time.Time
	for {
		cl, err := dial(ctx, d.sock, d.onEvent, d.onLost)
		if err == nil {
			d.mu.Lock()
			if d.closed {
				d.mu.Unlock()
				cl.close()
				return nil, errClosed
			}
			d.cl = cl
			d.mu.Unlock()
			return cl, nil
		}
		if !spawn {
			return nil, fmt.Errorf("supervisor: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("supervisor did not answer within %v (see %s): %w",
				spawnTimeout, filepath.Join(d.cfg.StateDir, wire.LogName), err)
		}
		// A supervisor that is exiting holds the lock a little longer,
		// and the one we start then exits at once: start again.
		if time.Since(lastSpawn) > time.Second {
			if err := d.spawn(); err != nil {
				return nil, err
			}
			lastSpawn = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// spawn starts the supervisor through a double fork: SupervisorCmd runs
// with wire.DetachEnv=1, starts a detached copy of itself in a new session
// and exits at once; we reap it here. The supervisor is thus never our
// child: no zombie whatever happens to it, and it outlives us.
func (d *Executor) spawn() error {
	logf, err := os.OpenFile(filepath.Join(d.cfg.StateDir, wire.LogName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("supervisor log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(d.cfg.SupervisorCmd[0], d.cfg.SupervisorCmd[1:]...)
	// The supervisor is not a plugin: it gets none of the plugin
	// machinery's variables (its tasks get only their own Env anyway).
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { k, _, _ := strings.Cut(kv, "="); return IsPluginEnv(k) })
	cmd.Env = append(env, wire.DetachEnv+"=1")
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf // stdin is /dev/null
	cmd.SysProcAttr = proc.DetachedAttr()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("start supervisor %q (see %s): %w", d.cfg.SupervisorCmd, logf.Name(), err)
	}
	d.log.Info("started executor supervisor", "state_dir", d.cfg.StateDir)
	return nil
}

// onEvent handles an exit event from the supervisor.
func (d *Executor) onEvent(r *wire.Reply) {
	info := *r.Task
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tasks[info.ID]
	if t == nil || t.pid != info.Pid {
		d.early[info.ID] = info
		return
	}
	d.finishLocked(t, exitResult(info.Exit), info.Exit.At)
}

// onLost handles the loss of the supervisor: its tasks are read from their
// exit records if it wrote them, else watched through pidfds.
func (d *Executor) onLost(cl *client) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cl == cl {
		d.cl = nil
	}
	if d.closed {
		return
	}
	d.log.Warn("lost the executor supervisor; watching its tasks without it", "pid", cl.supervisorPid())
	for _, t := range d.tasks {
		if t.cl == cl && t.supervised && !t.exited() {
			t.supervised, t.cl = false, nil
			d.watchLocked(t)
		}
	}
}

// watchLocked follows t without a supervisor: its exit record if there is
// one, else a pidfd watch; its exit status is then unknown. d.mu is held.
func (d *Executor) watchLocked(t *task) {
	if info, err := d.readRecord(t.cfg.ID); err == nil && info.Pid == t.pid && info.StartTime == t.start {
		d.finishLocked(t, exitResult(info.Exit), info.Exit.At)
		return
	}
	if d.closed {
		return // Close is waiting for the watchers: start none
	}
	p, err := proc.OpenProcess(t.pid, t.start)
	if err != nil {
		if !errors.Is(err, proc.ErrGone) {
			d.log.Warn("cannot watch task; counting it as exited", "task", t.cfg.ID, "pid", t.pid, "err", err)
		}
		d.finishLocked(t, &contract.ExitResult{ExitCode: -1, Err: reasonNoSupervisor}, time.Now())
		return
	}
	d.wg.Go(func() {
		defer p.Close()
		if err := p.WaitExited(d.stop); err != nil {
			return // closed
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.finishLocked(t, &contract.ExitResult{ExitCode: -1, Err: reasonNoSupervisor}, time.Now())
	})
}

// finishLocked records t's exit once. d.mu is held.
func (d *Executor) finishLocked(t *task, r *contract.ExitResult, at time.Time) {
	if t.exited() {
		return
	}
	t.result, t.completedAt = r, at
	t.supervised = false
	close(t.done)
}

func exitResult(e *wire.Exit) *contract.ExitResult {
	return &contract.ExitResult{ExitCode: e.Code, Signal: e.Signal}
}

// readRecord reads the exit record of task id.
func (d *Executor) readRecord(id string) (*wire.TaskInfo, error) {
	b, err := os.ReadFile(wire.ExitRecordPath(d.cfg.StateDir, id))
	if err != nil {
		return nil, err
	}
	return wire.DecodeExitRecord(b, id)
}

func (d *Executor) lookup(op, id string) (*task, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("%s %q: %w", op, id, errClosed)
	}
	t := d.tasks[id]
	if t == nil {
		return nil, fmt.Errorf("%s %q: %w", op, id, contract.ErrTaskNotFound)
	}
	return t, nil
}

// pluginEnv are the variables go-plugin sets for a plugin process.
var pluginEnv = []string{"PLUGIN_CLIENT_CERT", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT",
	"PLUGIN_UNIX_SOCKET_DIR", "PLUGIN_UNIX_SOCKET_GROUP", "PLUGIN_MULTIPLEX_GRPC"}

// IsPluginEnv reports whether the environment variable name belongs to the
// plugin machinery rather than to a task: go-plugin's (PLUGIN_CLIENT_CERT,
// PLUGIN_PROTOCOL_VERSIONS, PLUGIN_MIN_PORT, PLUGIN_MAX_PORT,
// PLUGIN_UNIX_SOCKET_DIR, PLUGIN_UNIX_SOCKET_GROUP, PLUGIN_MULTIPLEX_GRPC)
// and the host's (every name that begins with DCOS_PLUGIN_: the handshake
// cookie, the state directories).
func IsPluginEnv(name string) bool {
	return slices.Contains(pluginEnv, name) || strings.HasPrefix(name, "DCOS_PLUGIN_")
}

// specOf turns cfg (and c, for a container) into what the supervisor
// starts: the environment is cfg.Env without the plugin machinery's
// variables (IsPluginEnv), in name order.
func specOf(cfg *contract.TaskConfig, c *Container) *wire.StartSpec {
	s := &wire.StartSpec{TaskID: cfg.ID, Command: cfg.Command, Args: cfg.Args, WorkDir: cfg.WorkDir,
		Stdout: cfg.StdoutPath, Stderr: cfg.StderrPath, LogMaxBytes: cfg.LogMaxBytes, LogMaxFiles: cfg.LogMaxFiles,
		Cgroups: cfg.Cgroups, Netns: cfg.Netns}
	if iso := cfg.Isolation; iso != nil {
		s.Isolation = &wire.Isolation{UID: iso.UID, GID: iso.GID, Groups: iso.Groups, Hidden: iso.HiddenPaths,
			Sandbox: iso.Sandbox, SharePID: iso.SharePID}
	}
	if c != nil {
		s.Container = &wire.Container{RootFS: c.RootFS, Hostname: c.Hostname, ReadOnlyRoot: c.ReadOnlyRoot,
			UID: c.UID, GID: c.GID, Groups: c.Groups, Caps: c.Caps, Dir: c.Dir}
		for _, b := range c.Binds {
			s.Container.Binds = append(s.Container.Binds, wire.Bind{Source: b.Source, Target: b.Target, ReadOnly: b.ReadOnly})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		if !IsPluginEnv(k) {
			s.Env = append(s.Env, k+"="+cfg.Env[k])
		}
	}
	return s
}

// Container is how StartContainer runs a task: in its own root
// filesystem, with the image's credentials.
type Container struct {
	// RootFS is the host directory that becomes the task's "/" (the
	// driver prepares it, e.g. an overlayfs mount). Required, absolute.
	RootFS string
	// Hostname is the task's hostname in its own uts namespace; empty
	// leaves the init's default.
	Hostname string
	// ReadOnlyRoot mounts RootFS read-only for the task.
	ReadOnlyRoot bool
	// Binds are bind mounts into RootFS, in order, made before the task
	// changes root: nothing else of the host is visible (not even
	// TaskConfig.Isolation.Sandbox: bind it in).
	Binds []Bind
	// UID, GID and Groups are the task's credentials (the image's user),
	// not TaskConfig.Isolation's.
	UID, GID uint32
	Groups   []uint32
	// Caps are the capabilities a task running as UID 0 keeps (names
	// such as "CAP_NET_BIND_SERVICE"): nil means the task init's default
	// set for root containers (Docker's, without CAP_MKNOD, CAP_NET_RAW
	// and CAP_AUDIT_WRITE), empty means none. A task with another UID
	// has none, with no_new_privs, whatever Caps says.
	Caps []string
	// Dir is the task's working directory inside RootFS; empty means "/".
	Dir string
}

// Bind is a bind mount of Source (a host path) at Target (a path inside
// the container's RootFS), read-only if ReadOnly.
type Bind struct {
	Source, Target string
	ReadOnly       bool
}

// StartTask implements contract.Driver. It starts the supervisor if none
// answers. The command is resolved in the PATH of cfg.Env (a name with a
// '/' is used as is, relative to WorkDir); WorkDir, StdoutPath, StderrPath
// and Cgroups must be absolute; an empty WorkDir is "/". The task's
// environment is exactly cfg.Env less the plugin machinery's variables
// (IsPluginEnv): nothing of the plugin's or the supervisor's own
// environment reaches it. With Isolation (the supervisor must run as
// root) the task runs under the task init (package taskinit): it is pid 2
// of its own pid namespace, under an init that exits with its status; its
// output files are created owned by its uid. A User without Isolation
// returns ErrNotSupported: tasks would run as the supervisor's user.
// Starting an ID the executor holds (running or exited, until
// DestroyTask) is an error. The start is not abandoned when ctx ends (it
// is bounded by 30 s): it returns either a running task or an error with
// nothing left behind.
func (d *Executor) StartTask(ctx context.Context, cfg *contract.TaskConfig) (*contract.TaskHandle, error) {
	return d.start(ctx, cfg, nil)
}

// StartContainer starts cfg as StartTask does, but in the container c:
// under the task init's container mode, in new mount, pid, uts and ipc
// namespaces, with c.RootFS as its root, c's credentials and
// capabilities, working directory c.Dir. cfg.Command is the entrypoint as
// the image names it: a path inside the container, or a name the task init
// searches, inside the container (binds included), in the PATH of cfg.Env;
// the task is that process itself, pid 1 of its pid namespace (so it gets
// only the signals it handles, and SIGKILL). cfg.Args are its arguments and cfg.Env its
// whole environment (less IsPluginEnv names); cfg.WorkDir and cfg.User are
// not used. cfg.Isolation is required (the host's: its Sandbox and
// HiddenPaths); Cgroups and Netns are joined as by StartTask. Output files
// are created owned by c.UID and c.GID. The handle recovers like
// StartTask's.
func (d *Executor) StartContainer(ctx context.Context, cfg *contract.TaskConfig, c *Container) (*contract.TaskHandle, error) {
	if c == nil {
		return nil, errors.New("start container: no container")
	}
	if cfg != nil && cfg.Isolation == nil {
		return nil, fmt.Errorf("start container %q: no isolation: a container runs under the task init", cfg.ID)
	}
	return d.start(ctx, cfg, c)
}

func (d *Executor) start(ctx context.Context, cfg *contract.TaskConfig, c *Container) (*contract.TaskHandle, error) {
	if cfg == nil {
		return nil, errors.New("start task: no config")
	}
	if cfg.User != "" && cfg.Isolation == nil {
		// Running the task as the supervisor's user instead would be a
		// silent privilege change.
		return nil, fmt.Errorf("start task %q: user %q: %w", cfg.ID, cfg.User, contract.ErrNotSupported)
	}
	for k := range cfg.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("start task %q: env name %q: want a non-empty name without '=' or NUL", cfg.ID, k)
		}
	}
	spec := specOf(cfg, c)
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
	}
	d.mu.Lock()
	if d.tasks[cfg.ID] != nil || d.starting[cfg.ID] != nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("start task %q: already exists", cfg.ID)
	}
	started := make(chan struct{})
	d.starting[cfg.ID] = started
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.starting, cfg.ID)
		close(started)
		if d.tasks[cfg.ID] == nil {
			// A start that failed: the supervisor may have sent the
			// exit of its process (registered before its init
			// reported) while it was in flight.
			delete(d.early, cfg.ID)
		}
		d.mu.Unlock()
	}()

	cl, err := d.connect(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
	defer cancel()
	r, err := cl.call(sctx, &wire.Request{Op: wire.OpStart, Start: spec})
	if err != nil {
		return nil, fmt.Errorf("start task %q: %w", cfg.ID, err)
	}
	if r.Task == nil || r.Task.ID != cfg.ID {
		return nil, fmt.Errorf("start task %q: supervisor answered without the task", cfg.ID)
	}
	info := *r.Task
	t := &task{cfg: cfg, pid: info.Pid, start: info.StartTime, startedAt: info.StartedAt,
		supervised: true, cl: cl, done: make(chan struct{})}
	d.mu.Lock()
	d.registerLocked(t)
	d.mu.Unlock()
	ds, _ := json.Marshal(driverState{Pid: info.Pid, StartTime: info.StartTime})
	return &contract.TaskHandle{Version: contract.HandleVersion, Config: cfg, State: contract.TaskStateRunning, DriverState: ds, PID: info.Pid}, nil
}

// registerLocked adds a supervised task, applying an exit event that came
// first, and handles a connection lost meanwhile. d.mu is held.
func (d *Executor) registerLocked(t *task) {
	d.tasks[t.cfg.ID] = t
	if e, ok := d.early[t.cfg.ID]; ok {
		delete(d.early, t.cfg.ID)
		if e.Pid == t.pid {
			d.finishLocked(t, exitResult(e.Exit), e.Exit.At)
			return
		}
	}
	if t.supervised && !t.cl.alive() && !d.closed {
		t.supervised, t.cl = false, nil
		d.watchLocked(t)
	}
}

// WaitTask implements contract.Driver.
func (d *Executor) WaitTask(ctx context.Context, id string) (*contract.ExitResult, error) {
	t, err := d.lookup("wait task", id)
	if err != nil {
		return nil, err
	}
	select {
	case <-t.done:
		r := *t.result
		return &r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait task %q: %w", id, ctx.Err())
	}
}

// signal sends sig to t's process group: through its supervisor, or, once
// the supervisor is gone, directly while its main process still runs.
func (d *Executor) signal(ctx context.Context, t *task, sig syscall.Signal) error {
	d.mu.Lock()
	exited, supervised, cl := t.exited(), t.supervised, t.cl
	d.mu.Unlock()
	if exited {
		return nil
	}
	if supervised {
		_, err := cl.call(ctx, &wire.Request{Op: wire.OpSignal, TaskID: t.cfg.ID, Signal: int(sig)})
		if !errors.Is(err, errConnLost) {
			return err
		}
		// The supervisor died: onLost has switched t to a pidfd watch.
	}
	if proc.Alive(t.pid, t.start) {
		return proc.SignalGroup(t.pid, sig)
	}
	return nil
}

func parseSignal(name string) (syscall.Signal, error) { return proc.SignalNum(name) }

// StopTask implements contract.Driver: sig (default SIGTERM) to the task's
// process group, SIGKILL to it after timeout; it returns once the task has
// exited, or with ctx's error.
func (d *Executor) StopTask(ctx context.Context, id string, timeout time.Duration, sig string) error {
	if sig == "" {
		sig = "SIGTERM"
	}
	n, err := parseSignal(sig)
	if err != nil {
		return fmt.Errorf("stop task %q: %w", id, err)
	}
	t, err := d.lookup("stop task", id)
	if err != nil {
		return err
	}
	if err := d.signal(ctx, t, n); err != nil {
		return fmt.Errorf("stop task %q: %w", id, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop task %q: %w", id, ctx.Err())
	case <-timer.C:
	}
	return d.kill(ctx, t)
}

// kill sends SIGKILL to t's process group and waits for its exit.
func (d *Executor) kill(ctx context.Context, t *task) error {
	if err := d.signal(ctx, t, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill task %q: %w", t.cfg.ID, err)
	}
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kill task %q: %w", t.cfg.ID, ctx.Err())
	}
}

// DestroyTask implements contract.Driver: it forgets the task and removes
// its exit record. A running task is refused unless force, which kills it
// first. A start of id in flight (one whose caller cancelled it, say) is
// waited for first, so that DestroyTask(force) after a cancelled start
// leaves nothing running.
func (d *Executor) DestroyTask(ctx context.Context, id string, force bool) error {
	d.mu.Lock()
	for d.starting[id] != nil {
		// A start in flight (its caller may have given up on it): wait
		// for its outcome, so that a task it starts is not left behind.
		ch := d.starting[id]
		d.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("destroy task %q: a start is in flight: %w", id, ctx.Err())
		}
		d.mu.Lock()
	}
	if d.closed {
		// Its watchers are gone: a kill would wait for an exit nobody
		// reports. A new executor on the state dir recovers the task.
		d.mu.Unlock()
		return fmt.Errorf("destroy task %q: %w", id, errClosed)
	}
	t := d.tasks[id]
	d.mu.Unlock()
	if t == nil {
		return nil
	}
	if !t.exited() {
		if !force {
			return fmt.Errorf("destroy task %q: still running", id)
		}
		if err := d.kill(ctx, t); err != nil {
			return fmt.Errorf("destroy task %q: %w", id, err)
		}
	}
	d.mu.Lock()
	cl := d.cl
	d.mu.Unlock()
	if cl != nil {
		if _, err := cl.call(ctx, &wire.Request{Op: wire.OpForget, TaskID: id}); err != nil && !errors.Is(err, errConnLost) {
			return fmt.Errorf("destroy task %q: %w", id, err)
		}
	}
	if err := os.Remove(wire.ExitRecordPath(d.cfg.StateDir, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("destroy task %q: %w", id, err)
	}
	d.mu.Lock()
	if d.tasks[id] == t {
		delete(d.tasks, id)
	}
	delete(d.early, id)
	d.mu.Unlock()
	return nil
}

// InspectTask implements contract.Driver.
func (d *Executor) InspectTask(_ context.Context, id string) (*contract.TaskStatus, error) {
	t, err := d.lookup("inspect task", id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := &contract.TaskStatus{ID: id, Name: t.cfg.Name, State: contract.TaskStateRunning, StartedAt: t.startedAt,
		Attributes: map[string]string{"pid": strconv.Itoa(t.pid), "supervised": strconv.FormatBool(t.supervised)}}
	if t.exited() {
		r := *t.result
		st.State, st.CompletedAt, st.ExitResult = contract.TaskStateExited, t.completedAt, &r
	}
	return st, nil
}

// TaskStats implements contract.Driver: CPU time and resident memory
// summed over the live processes of the task's process group, from /proc.
// An exited task has zero usage.
func (d *Executor) TaskStats(_ context.Context, id string) (*contract.TaskUsage, error) {
	t, err := d.lookup("task stats", id)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if t.exited() {
		return &contract.TaskUsage{Timestamp: now}, nil
	}
	u, err := proc.GroupUsage(t.pid)
	if err != nil {
		return nil, fmt.Errorf("task stats %q: %w", id, err)
	}
	return &contract.TaskUsage{Timestamp: now, CPUUserNanos: u.UserNanos, CPUSystemNanos: u.SystemNanos,
		MemoryRSSBytes: u.RSSBytes, PIDs: u.Procs}, nil
}

// SignalTask implements contract.Driver: sig to the task's process group;
// an exited task is left alone.
func (d *Executor) SignalTask(ctx context.Context, id string, sig string) error {
	n, err := parseSignal(sig)
	if err != nil {
		return fmt.Errorf("signal task %q: %w", id, err)
	}
	t, err := d.lookup("signal task", id)
	if err != nil {
		return err
	}
	if err := d.signal(ctx, t, n); err != nil {
		return fmt.Errorf("signal task %q: %w", id, err)
	}
	return nil
}

// RecoverTask implements contract.Driver. If the supervisor runs and holds
// the task, the driver reattaches (and later sees its real exit); else an
// exit record gives its real exit; else if the handle's pid and start time
// still name a live process, the driver watches it through a pidfd (exit
// status unknown, ExitCode -1, ExitResult.Err says why); else the task
// has exited with an unknown status. It does not start a supervisor.
func (d *Executor) RecoverTask(ctx context.Context, h *contract.TaskHandle) error {
	if h == nil {
		return errors.New("recover task: nil handle")
	}
	if h.Version != contract.HandleVersion {
		return fmt.Errorf("recover task: handle version %d: %w", h.Version, contract.ErrHandleVersion)
	}
	if h.Config == nil {
		return errors.New("recover task: handle without config")
	}
	id := h.Config.ID
	if err := wire.ValidTaskID(id); err != nil {
		return fmt.Errorf("recover task: %w", err)
	}
	var ds driverState
	if err := json.Unmarshal(h.DriverState, &ds); err != nil {
		return fmt.Errorf("recover task %q: driver state: %w", id, err)
	}
	if ds.Pid <= 1 {
		return fmt.Errorf("recover task %q: driver state: pid %d", id, ds.Pid)
	}
	d.mu.Lock()
	known, closed := d.tasks[id] != nil, d.closed
	d.mu.Unlock()
	if closed {
		return fmt.Errorf("recover task %q: %w", id, errClosed)
	}
	if known {
		return nil
	}

	t := &task{cfg: h.Config, pid: ds.Pid, start: ds.StartTime, startedAt: proc.StartedAt(ds.StartTime), done: make(chan struct{})}
	var held *wire.TaskInfo
	if cl, err := d.connect(ctx, false); err == nil {
		r, err := cl.call(ctx, &wire.Request{Op: wire.OpGet, TaskID: id})
		var re *replyError
		switch {
		case err == nil && r.Task != nil && r.Task.Pid == ds.Pid && r.Task.StartTime == ds.StartTime:
			held, t.supervised, t.cl = r.Task, true, cl
		case err == nil || errors.As(err, &re):
			// Not this task.
		default:
			return fmt.Errorf("recover task %q: %w", id, err)
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("recover task %q: %w", id, errClosed)
	}
	if d.tasks[id] != nil {
		return nil // recovered concurrently
	}
	if held != nil {
		t.startedAt = held.StartedAt
		if held.Exit != nil {
			d.tasks[id] = t
			d.finishLocked(t, exitResult(held.Exit), held.Exit.At)
			return nil
		}
		d.registerLocked(t)
		d.log.Info("reattached to task", "task", id, "pid", t.pid)
		return nil
	}
	if info, err := d.readRecord(id); err == nil && info.Pid == ds.Pid && info.StartTime == ds.StartTime {
		t.startedAt = info.StartedAt
		d.tasks[id] = t
		d.finishLocked(t, exitResult(info.Exit), info.Exit.At)
		return nil
	}
	d.tasks[id] = t
	d.watchLocked(t)
	d.log.Info("recovered task without its supervisor", "task", id, "pid", t.pid, "exited", t.exited())
	return nil
}
