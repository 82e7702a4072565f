package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// MaxMessage is the largest encoded message, newline excluded. Longer lines
// are a protocol error.
const MaxMessage = 1 << 20

// Names inside a state dir.
const (
	SocketName = "supervisor.sock"
	LockName   = "supervisor.lock"
	LogName    = "supervisor.log"
	ExitsDir   = "exits"
)

// ExitRecordPath is where the supervisor records the exit of task id.
// id must be valid (ValidTaskID).
func ExitRecordPath(stateDir, id string) string {
	return filepath.Join(stateDir, ExitsDir, id+".json")
}

// Op is a request's operation.
type Op string

const (
	OpHello  Op = "hello"  // → Reply.Pid: the supervisor's pid
	OpStart  Op = "start"  // Start → Reply.Task
	OpSignal Op = "signal" // TaskID, Signal: to the task's process group; no-op once exited
	OpGet    Op = "get"    // TaskID → Reply.Task
	OpList   Op = "list"   // → Reply.Tasks
	OpForget Op = "forget" // TaskID: drop an exited task and its exit record; idempotent
	// OpExec (Exec) is sent alone on a dedicated connection: the reply
	// (Err, or success) is followed, on success, by frames both ways (see
	// frame.go) until the exec's exit frame.
	OpExec Op = "exec"
)

// EventExit is the Event of a Reply that announces a task's exit.
const EventExit = "exit"

// Codes of a failed Reply, for the client to map onto its own errors.
const (
	CodeNotFound = "not_found" // no such task
	CodeExists   = "exists"    // start of a task id the supervisor holds
	CodeRunning  = "running"   // forget of a running task
	CodeExited   = "exited"    // exec into a task that has exited
)

// Request is a message from a driver to the supervisor.
type Request struct {
	ID     uint64     `json:"id"`
	Op     Op         `json:"op"`
	TaskID string     `json:"task_id,omitempty"`
	Signal int        `json:"signal,omitempty"`
	Start  *StartSpec `json:"start,omitempty"`
	Exec   *ExecSpec  `json:"exec,omitempty"`
}

// ExecSpec is a command to run inside a running task (Request.TaskID).
// The supervisor takes everything else from the task it holds: the
// process it enters (never a pid from the client), the user,
// capabilities, cgroups and working directory, the task's environment.
type ExecSpec struct {
	// Command is looked up inside the task in the PATH of the
	// environment when it has no '/'.
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
	// Env, "KEY=value" each, is added to the task's environment
	// (replacing a variable of the same name).
	Env []string `json:"env,omitempty"`
	// TTY runs it under a new pseudo-terminal of Rows x Cols.
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// Stdin: frames of kind FrameStdin feed it; else /dev/null.
	Stdin bool `json:"stdin,omitempty"`
}

// Validate checks e can be run: a command, no NUL, KEY=value env, clean
// absolute cgroups and dir.
func (e *ExecSpec) Validate() error {
	if e.Command == "" {
		return errors.New("exec: command is empty")
	}
	if strings.ContainsRune(e.Command, 0) {
		return fmt.Errorf("exec: command %q: contains NUL", e.Command)
	}
	for i, a := range e.Args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("exec: args[%d]: contains NUL", i)
		}
	}
	for _, kv := range e.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("exec: env %q: want KEY=value without NUL", kv)
		}
	}
	return nil
}

// StartSpec is a task to start.
type StartSpec struct {
	TaskID string `json:"task_id"`
	// Command is resolved by the supervisor: with a '/' it is used as is
	// (relative to WorkDir), else searched in the PATH of Env.
	Command string   `json:"command"`
	Args    []string `json:"args,omitempty"`
	// Env is the task's whole environment, "KEY=value" each.
	Env []string `json:"env,omitempty"`
	// WorkDir is absolute; empty means "/".
	WorkDir string `json:"work_dir,omitempty"`
	// Stdout and Stderr are absolute paths of rotated logs (package
	// logfile: the supervisor holds the pipes the task writes to and
	// copies them there); empty means /dev/null.
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	// LogMaxBytes and LogMaxFiles bound Stdout and Stderr, each a
	// rotated log (package logfile); 0: logfile's defaults.
	LogMaxBytes int64 `json:"log_max_bytes,omitempty"`
	LogMaxFiles int   `json:"log_max_files,omitempty"`
	// Cgroups are absolute cgroup directories the task starts in.
	Cgroups []string `json:"cgroups,omitempty"`
	// Netns is the network namespace file the task starts in; empty: the
	// supervisor's.
	Netns string `json:"netns,omitempty"`
	// Isolation, if set, runs the task isolated under the task init (see
	// package taskinit); nil: as the supervisor's user in its namespaces.
	Isolation *Isolation `json:"isolation,omitempty"`
	// Container, if set, runs the task in its own root filesystem under
	// the task init's container mode; it needs Isolation. Command is then
	// a path inside RootFS and WorkDir is not used (Container.Dir is).
	Container *Container `json:"container,omitempty"`
}

// Container is a container task's root filesystem and credentials on the
// wire (see executor.Container).
type Container struct {
	RootFS       string   `json:"rootfs"`
	Hostname     string   `json:"hostname,omitempty"`
	ReadOnlyRoot bool     `json:"read_only_root,omitempty"`
	Binds        []Bind   `json:"binds,omitempty"`
	UID          uint32   `json:"uid"`
	GID          uint32   `json:"gid"`
	Groups       []uint32 `json:"groups,omitempty"`
	Caps         []string `json:"caps"` // null (nil: the init's default) differs from [] (none)
	Dir          string   `json:"dir,omitempty"`
}

// Bind is a bind mount into a container: Source on the host at Target
// inside RootFS.
type Bind struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// Validate checks c: clean absolute paths without NUL, a hostname of at
// most 64 bytes of [A-Za-z0-9.-], non-empty capability names (the task
// init knows which exist).
func (c *Container) Validate() error {
	if !cleanAbs(c.RootFS) || c.RootFS == "/" {
		return fmt.Errorf("container rootfs %q: want a clean absolute path other than /", c.RootFS)
	}
	if len(c.Hostname) > 64 || strings.Trim(c.Hostname, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" {
		return fmt.Errorf("container hostname %q: want at most 64 letters, digits, '.' or '-'", c.Hostname)
	}
	if c.Dir != "" && !cleanAbs(c.Dir) {
		return fmt.Errorf("container dir %q: want a clean absolute path", c.Dir)
	}
	for i, b := range c.Binds {
		if !cleanAbs(b.Source) || !cleanAbs(b.Target) || b.Target == "/" {
			return fmt.Errorf("container binds[%d] %q -> %q: want clean absolute paths, the target other than /", i, b.Source, b.Target)
		}
	}
	if len(c.Groups) > 64 {
		return fmt.Errorf("container: %d groups: at most 64", len(c.Groups))
	}
	for _, cp := range c.Caps {
		if cp == "" || strings.ContainsRune(cp, 0) {
			return fmt.Errorf("container capability %q: want a name like CAP_NET_BIND_SERVICE", cp)
		}
	}
	return nil // the task init checks the capability names
}

// cleanAbs reports whether p is a clean absolute path without NUL.
func cleanAbs(p string) bool {
	return filepath.IsAbs(p) && filepath.Clean(p) == p && !strings.ContainsRune(p, 0)
}

// Isolation is contract.TaskIsolation on the wire.
type Isolation struct {
	UID      uint32   `json:"uid"`
	GID      uint32   `json:"gid"`
	Groups   []uint32 `json:"groups,omitempty"`
	Hidden   []string `json:"hidden,omitempty"`
	Sandbox  string   `json:"sandbox,omitempty"`
	SharePID bool     `json:"share_pid,omitempty"`
}

// Reply is a message from the supervisor: the answer to request ID, or,
// with ID 0, an event.
type Reply struct {
	ID    uint64     `json:"id,omitempty"`
	Event string     `json:"event,omitempty"`
	Err   string     `json:"err,omitempty"`
	Code  string     `json:"code,omitempty"`
	Pid   int        `json:"pid,omitempty"`
	Task  *TaskInfo  `json:"task,omitempty"`
	Tasks []TaskInfo `json:"tasks,omitempty"`
}

// TaskInfo is a task the supervisor started. It is also the form of an
// exit record on disk (with Exit set).
type TaskInfo struct {
	ID string `json:"id"`
	// Pid and StartTime (field 22 of /proc/PID/stat) name the task's main
	// process, which leads the task's process group.
	Pid       int       `json:"pid"`
	StartTime uint64    `json:"start_time"`
	StartedAt time.Time `json:"started_at"`
	// Exit is nil while the task runs.
	Exit *Exit `json:"exit,omitempty"`
}

// Exit is how a task's main process ended.
type Exit struct {
	// Code is the exit code, or -1 when a signal killed the process.
	Code   int       `json:"code"`
	Signal int       `json:"signal,omitempty"`
	At     time.Time `json:"at"`
}

// ValidTaskID reports whether id can name a task: it becomes a file name.
func ValidTaskID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 200 || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("task id %q: must be 1-200 bytes, not . or .., without / or NUL", id)
	}
	return nil
}

// decode unmarshals one message strictly: unknown fields and trailing data
// are errors.
func decode(b []byte, v any) error {
	if len(b) > MaxMessage {
		return fmt.Errorf("message of %d bytes exceeds %d", len(b), MaxMessage)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after message")
	}
	return nil
}

// DecodeRequest decodes and validates one request.
func DecodeRequest(b []byte) (*Request, error) {
	var r Request
	if err := decode(b, &r); err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("decode request: %w", err)
	}
	return &r, nil
}

// Validate checks r is a request the supervisor can act on.
func (r *Request) Validate() error {
	if r.ID == 0 {
		return errors.New("request id 0")
	}
	needTask := false
	switch r.Op {
	case OpHello, OpList:
	case OpGet, OpForget:
		needTask = true
	case OpSignal:
		needTask = true
		if r.Signal < 1 || r.Signal > 64 {
			return fmt.Errorf("signal %d: out of range 1-64", r.Signal)
		}
	case OpStart:
		if r.Start == nil {
			return errors.New("start: no task")
		}
		return r.Start.Validate()
	case OpExec:
		if r.Exec == nil {
			return errors.New("exec: no command")
		}
		if err := r.Exec.Validate(); err != nil {
			return err
		}
		needTask = true
	default:
		return fmt.Errorf("unknown op %q", r.Op)
	}
	if needTask {
		return ValidTaskID(r.TaskID)
	}
	return nil
}

// Validate checks s can be started: valid id and paths, no NUL bytes
// (they cannot cross exec).
func (s *StartSpec) Validate() error {
	if err := ValidTaskID(s.TaskID); err != nil {
		return err
	}
	if s.Command == "" {
		return errors.New("command is empty")
	}
	if strings.ContainsRune(s.Command, 0) {
		return fmt.Errorf("command %q: contains NUL", s.Command)
	}
	for i, a := range s.Args {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("args[%d]: contains NUL", i)
		}
	}
	for _, kv := range s.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("env %q: want KEY=value without NUL", kv)
		}
	}
	if s.LogMaxBytes < 0 || s.LogMaxFiles < 0 {
		return fmt.Errorf("log limits %d bytes, %d files: must not be negative", s.LogMaxBytes, s.LogMaxFiles)
	}
	for name, p := range map[string]string{"work dir": s.WorkDir, "stdout": s.Stdout, "stderr": s.Stderr, "netns": s.Netns} {
		if p != "" && (!filepath.IsAbs(p) || strings.ContainsRune(p, 0)) {
			return fmt.Errorf("%s %q: want an absolute path", name, p)
		}
	}
	if iso := s.Isolation; iso != nil {
		for _, p := range append([]string{iso.Sandbox}, iso.Hidden...) {
			if p != "" && (!filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" || strings.ContainsRune(p, 0)) {
				return fmt.Errorf("isolation path %q: want a clean absolute path other than /", p)
			}
		}
		if len(iso.Groups) > 64 {
			return fmt.Errorf("isolation: %d groups: at most 64", len(iso.Groups))
		}
	}
	if c := s.Container; c != nil {
		if s.Isolation == nil {
			return errors.New("container: needs isolation (the task init runs containers)")
		}
		if err := c.Validate(); err != nil {
			return err
		}
	}
	for _, c := range s.Cgroups {
		if !filepath.IsAbs(c) || filepath.Clean(c) != c || c == "/" || strings.ContainsRune(c, 0) {
			return fmt.Errorf("cgroup %q: want a clean absolute directory", c)
		}
	}
	return nil
}

// DecodeReply decodes and validates one reply or event.
func DecodeReply(b []byte) (*Reply, error) {
	var r Reply
	if err := decode(b, &r); err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("decode reply: %w", err)
	}
	return &r, nil
}

// Validate checks r: an event names an exited task; task infos are valid.
func (r *Reply) Validate() error {
	switch {
	case r.ID == 0 && r.Event != EventExit:
		return fmt.Errorf("event %q: unknown", r.Event)
	case r.ID == 0 && (r.Task == nil || r.Task.Exit == nil):
		return errors.New("exit event without an exited task")
	case r.ID != 0 && r.Event != "":
		return errors.New("reply with an event")
	}
	if r.Pid < 0 {
		return fmt.Errorf("pid %d", r.Pid)
	}
	if r.Task != nil {
		if err := r.Task.Validate(); err != nil {
			return err
		}
	}
	for i := range r.Tasks {
		if err := r.Tasks[i].Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks t names a task and a process.
func (t *TaskInfo) Validate() error {
	if err := ValidTaskID(t.ID); err != nil {
		return err
	}
	if t.Pid <= 1 {
		return fmt.Errorf("task %q: pid %d", t.ID, t.Pid)
	}
	if e := t.Exit; e != nil && (e.Signal < 0 || e.Signal > 64 || e.Code < -1 || e.Code > 255) {
		return fmt.Errorf("task %q: exit code %d signal %d", t.ID, e.Code, e.Signal)
	}
	return nil
}

// DecodeExitRecord decodes and validates an exit record file of task id.
func DecodeExitRecord(b []byte, id string) (*TaskInfo, error) {
	var t TaskInfo
	if err := decode(b, &t); err != nil {
		return nil, fmt.Errorf("decode exit record: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("decode exit record: %w", err)
	}
	if t.ID != id || t.Exit == nil {
		return nil, fmt.Errorf("decode exit record: not an exit of task %q", id)
	}
	return &t, nil
}

// DetachEnv, set to "1" in the environment of the supervisor command,
// makes it start a detached copy of itself and exit at once (a double
// fork), so that the driver never has the supervisor as a child.
const DetachEnv = "DCOS_EXECDRIVER_DETACH"
