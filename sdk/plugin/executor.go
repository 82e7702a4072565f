package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dcos-kernel/dcos/internal/executor"
	"github.com/dcos-kernel/dcos/internal/executor/supervisor"
	"github.com/dcos-kernel/dcos/plugins/contract"
)

// Executor runs tasks as processes under a supervisor that outlives the
// plugin: each task in its own process group, in TaskConfig.Cgroups and
// TaskConfig.Netns, under the task init when TaskConfig.Isolation is set,
// with its real exit recorded on disk even while no plugin runs; stats,
// signals, stop with escalation, destroy, and RecoverTask after a plugin
// or agent restart. It implements every Driver method except Capabilities
// and Fingerprint, plus StartContainer and Close: a driver embeds
// *Executor, adds those two, and overrides StartTask to rewrite the
// TaskConfig before calling Executor.StartTask (see examples/nicedriver
// and docs/plugins.md, "Writing a driver on the executor"). Its methods
// are safe for concurrent use.
//
// A task's environment is exactly TaskConfig.Env, less the variables of
// the plugin machinery (IsPluginEnv), which never reach a task even if a
// driver copies os.Environ() into Env. The executor adds nothing.
type Executor = executor.Executor

// Container is how Executor.StartContainer runs a task: its root
// filesystem, hostname, bind mounts and the image's credentials.
type Container = executor.Container

// Bind is a bind mount into a Container.
type Bind = executor.Bind

// ExecutorConfig configures an Executor.
type ExecutorConfig struct {
	// StateDir is the executor's directory (supervisor socket, lock, log,
	// exit records): the plugin's own state directory, which the agent
	// passes in the environment variable StateDirEnv (use StateDir()).
	// Required and absolute, of any length; created if missing. Tasks are
	// recovered from the same directory after a restart.
	StateDir string
	// Logger receives the executor's logs; nil discards them.
	Logger *slog.Logger
	// SupervisorCmd is the argv that starts the supervisor process. Empty
	// (the usual case) means this binary re-executed as
	// {executable, SupervisorArg, StateDir}, which ServeDriver and
	// RunSupervisorIfAsked recognise. A custom command must end up
	// calling RunSupervisorIfAsked with those arguments.
	SupervisorCmd []string
}

// SupervisorArg is the reserved first argument with which an Executor
// re-executes the plugin binary as its supervisor: `PLUGIN SupervisorArg
// STATEDIR`.
const SupervisorArg = "__dcos_executor_supervisor"

// StateDirEnv is the environment variable in which the agent gives a
// plugin its own state directory, <agent state dir>/plugins/<kind>-<name>,
// created 0700 and kept across plugin and agent restarts.
const StateDirEnv = "DCOS_PLUGIN_STATE_DIR"

// StateDir returns the plugin's state directory, from StateDirEnv. It
// fails, saying so, when the variable is unset or not absolute (the
// binary was not started by an agent).
func StateDir() (string, error) {
	dir := os.Getenv(StateDirEnv)
	if dir == "" || !filepath.IsAbs(dir) {
		return "", fmt.Errorf("state dir: %s=%q: want the absolute directory the agent sets", StateDirEnv, dir)
	}
	return dir, nil
}

// NewExecutor returns an executor for cfg. It creates StateDir but neither
// starts nor contacts the supervisor: the first StartTask does (and
// RecoverTask connects to a running one). Errors name the bad field.
func NewExecutor(cfg ExecutorConfig) (*Executor, error) {
	cmd := cfg.SupervisorCmd
	if len(cmd) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("new executor: supervisor command: %w", err)
		}
		cmd = []string{exe, SupervisorArg, cfg.StateDir}
	}
	return executor.New(executor.Config{StateDir: cfg.StateDir, SupervisorCmd: cmd, Logger: cfg.Logger})
}

// RunSupervisorIfAsked runs the executor's supervisor and exits the
// process when the process was started as one (os.Args[1] is
// SupervisorArg); else it returns at once. ServeDriver calls it first; a
// plugin with a main of its own that uses an Executor must call it before
// anything else (before flag parsing, logging set-up or serving).
func RunSupervisorIfAsked() {
	if len(os.Args) < 2 || os.Args[1] != SupervisorArg {
		return
	}
	if len(os.Args) != 3 {
		fmt.Fprintf(os.Stderr, "usage: %s %s STATEDIR\n", os.Args[0], SupervisorArg)
		os.Exit(2)
	}
	os.Exit(executor.SupervisorMain(os.Args[2], nil))
}

// IsPluginEnv reports whether the environment variable name belongs to the
// plugin machinery (go-plugin's PLUGIN_CLIENT_CERT, PLUGIN_PROTOCOL_VERSIONS,
// PLUGIN_MIN_PORT, PLUGIN_MAX_PORT, PLUGIN_UNIX_SOCKET_DIR,
// PLUGIN_UNIX_SOCKET_GROUP, PLUGIN_MULTIPLEX_GRPC, and every DCOS_PLUGIN_*
// name the host sets) rather than to a task. The Executor drops these from
// every task's environment; a driver that starts processes itself should
// too.
func IsPluginEnv(name string) bool { return executor.IsPluginEnv(name) }

// EncodeDriverState encodes v (JSON) for TaskHandle.DriverState.
func EncodeDriverState(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode driver state: %w", err)
	}
	return b, nil
}

// DecodeHandle checks a handle given to RecoverTask and decodes its
// DriverState (JSON, as EncodeDriverState wrote it) into v. A nil handle,
// or one without a config or task ID, is an error; a Version other than
// HandleVersion returns an error wrapping ErrHandleVersion. The Executor's
// DriverState is a JSON object whose keys it owns ("pid", "start_time")
// and that ignores the others, so a driver that embeds it may add keys of
// its own (decode into a map, add, EncodeDriverState).
func DecodeHandle(h *TaskHandle, v any) error {
	switch {
	case h == nil:
		return errors.New("decode handle: nil handle")
	case h.Version != HandleVersion:
		return fmt.Errorf("decode handle: version %d: %w", h.Version, ErrHandleVersion)
	case h.Config == nil || h.Config.ID == "":
		return errors.New("decode handle: no task config or id")
	}
	if err := json.Unmarshal(h.DriverState, v); err != nil {
		return fmt.Errorf("decode handle %q: driver state: %w", h.Config.ID, err)
	}
	return nil
}

// Errors a driver's client returns (plugintest's, the agent's): the plugin
// process exited during or before the call; host and plugin share no
// protocol version.
var (
	ErrPluginExited        = contract.ErrPluginExited
	ErrIncompatibleVersion = contract.ErrIncompatibleVersion
)

// LookPath resolves cfg.Command as Executor.StartTask does: a name with a
// '/' is used as it is (relative to cfg.WorkDir, "/" if empty), any other
// is searched in the absolute entries of cfg.Env's PATH (not the
// plugin's). A driver that wraps the command in another (nice, a
// launcher) calls it so that a missing or non-executable command fails
// the start with a clear error rather than the task.
func LookPath(cfg *TaskConfig) (string, error) {
	dir := cfg.WorkDir
	if dir == "" {
		dir = "/"
	}
	return supervisor.LookPath(cfg.Command, cfg.Env["PATH"], dir)
}
