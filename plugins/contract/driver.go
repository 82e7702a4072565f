package contract

import (
	"context"
	"time"
)

// HandleVersion is the version of TaskHandle this package writes. A driver
// stamps it into the handles StartTask returns and refuses, in RecoverTask,
// versions it cannot read with ErrHandleVersion.
const HandleVersion = 1

// Driver is a task driver: it starts, watches and tears down tasks on one
// node. It is shaped after Nomad's DriverPlugin.
//
// All methods are safe for concurrent use. Task IDs are chosen by the host and
// are unique on a node. Methods that take a task ID return an error wrapping
// ErrTaskNotFound for an ID the driver does not know, except DestroyTask,
// which is idempotent. Calls a driver does not support return ErrNotSupported.
type Driver interface {
	// Capabilities reports what the driver supports. It is cheap and has no
	// side effects.
	Capabilities(ctx context.Context) (*Capabilities, error)

	// Fingerprint reports the driver's health on this node and attributes
	// for placement (e.g. "driver.exec.version").
	Fingerprint(ctx context.Context) (*Fingerprint, error)

	// StartTask starts cfg and returns its handle once the task runs. The
	// handle is opaque to the host, which checkpoints it and passes it to
	// RecoverTask after a restart. Starting an ID that is already running
	// is an error.
	StartTask(ctx context.Context, cfg *TaskConfig) (*TaskHandle, error)

	// WaitTask blocks until the task exits or ctx is done, and returns how
	// it exited. It may be called any number of times, concurrently, and
	// after the task has exited (until DestroyTask).
	WaitTask(ctx context.Context, taskID string) (*ExitResult, error)

	// StopTask sends signal (e.g. "SIGTERM"; empty means SIGTERM) and, if the
	// task is still running after timeout, kills it. It returns once the
	// task has exited. Stopping an exited task is not an error.
	StopTask(ctx context.Context, taskID string, timeout time.Duration, signal string) error

	// DestroyTask releases every resource of the task and forgets it. A
	// running task is refused unless force, which kills it first.
	// DestroyTask is idempotent: destroying an unknown or already destroyed
	// task returns nil.
	DestroyTask(ctx context.Context, taskID string, force bool) error

	// InspectTask returns the task's current status.
	InspectTask(ctx context.Context, taskID string) (*TaskStatus, error)

	// TaskStats returns the task's resource usage at the time of the call.
	TaskStats(ctx context.Context, taskID string) (*TaskUsage, error)

	// SignalTask sends sig (e.g. "SIGHUP") to the task.
	SignalTask(ctx context.Context, taskID string, sig string) error

	// RecoverTask reattaches to a task started by an earlier instance of the
	// driver, from the handle StartTask returned. A handle of a version the
	// driver cannot read returns ErrHandleVersion. Recovering a task the
	// driver already tracks is a no-op.
	RecoverTask(ctx context.Context, handle *TaskHandle) error
}

// FSIsolation names the filesystem isolation a driver gives its tasks.
type FSIsolation string

const (
	FSIsolationNone   FSIsolation = "none"   // tasks see the host filesystem
	FSIsolationChroot FSIsolation = "chroot" // tasks run in a chroot
	FSIsolationImage  FSIsolation = "image"  // tasks run in their own image
)

// Capabilities is what a driver supports.
type Capabilities struct {
	SendSignals  bool        // SignalTask works
	FSIsolation  FSIsolation // filesystem isolation of tasks
	RecoverTasks bool        // RecoverTask reattaches to running tasks
	JoinCgroups  bool        // the task starts inside TaskConfig.Cgroups
	JoinNetns    bool        // the task starts inside TaskConfig.Netns
	// Isolation: the driver honours TaskConfig.Isolation. The host does
	// not give a driver without it tasks it must isolate.
	Isolation bool
	// Images: the driver is an ImageDriver and keeps container images.
	// Over gRPC the plugin's server sets it from that type assertion: a
	// driver need not set it itself.
	Images bool
	// Exec: the driver is an ExecDriver (set by the plugin's server, as
	// Images).
	Exec bool
}

// Health is a driver's health on a node.
type Health int

const (
	HealthUndetected Health = iota + 1 // the driver cannot run here (e.g. missing runtime)
	HealthUnhealthy                    // the driver could run here but is broken
	HealthHealthy                      // the driver is ready
)

// Fingerprint is a driver's health and placement attributes on a node.
type Fingerprint struct {
	Health            Health
	HealthDescription string
	Attributes        map[string]string
}

// Resources are the limits of a task or container. Zero means unlimited.
type Resources struct {
	CPUs     float64
	MemBytes int64
	PIDs     int64
	// CPUIdle asks for the idle CPU class (the task's role has cpu class
	// IDLE): an isolator that can (the cgroups one: cpu.idle = 1) runs the
	// task only on CPU time that normal tasks leave; one that cannot runs
	// it normally and says so in its log.
	CPUIdle bool `json:",omitempty"`
	// CPUSet is the Linux CPU list ("1-3,5") the task is confined to (its
	// role's cpuset); "" is every CPU. An isolator that can (the cgroups
	// one: cpuset.cpus) runs the task on CPUSet ∩ the CPUs it may use
	// itself, and on all of those, saying so in its log, when they do not
	// meet; one that cannot ignores it and says so in its log.
	CPUSet string `json:",omitempty"`
}

// TaskConfig is what to run.
type TaskConfig struct {
	ID      string
	Name    string
	Command string
	Args    []string
	Env     map[string]string
	WorkDir string
	// User is the user the task runs as, by name, for the record and for
	// drivers that resolve users in an image: "" for the default (an
	// unprivileged uid of the task's owner), "root" or a user the
	// operator allowed for the task's role. Isolation carries the ids the
	// host resolved; a driver that gets a User without Isolation and
	// cannot switch users returns ErrNotSupported.
	User      string
	Resources Resources
	// DriverConfig is driver-specific configuration, opaque to the host.
	DriverConfig []byte
	// Cgroups are cgroup directories the task's first process must be a
	// member of before it runs Command (LaunchInfo.Cgroups of the
	// isolators). A driver that cannot honour them says so in
	// Capabilities.JoinCgroups = false; the host then calls
	// Isolator.Isolate with the pid after StartTask.
	Cgroups []string
	// StdoutPath and StderrPath are files (in the task's sandbox) the
	// task's standard output and error are appended to; empty means
	// discard.
	StdoutPath string
	StderrPath string
	// LogMaxBytes and LogMaxFiles bound each of StdoutPath and StderrPath
	// as a rotated log (package logfile's layout: PATH.000001, … with
	// PATH a hard link to the live file), written by the process that
	// owns the task's stdio; 0 means the defaults (10 MiB, 5 files).
	LogMaxBytes int64
	LogMaxFiles int
	// Netns is the network namespace the task must start in (a file such
	// as /run/netns/NAME, from the net driver's NetworkStatus.Netns); empty
	// means the node's. A driver that cannot honour it says so in
	// Capabilities.JoinNetns = false, and the host does not give it tasks
	// that ask for their own network.
	Netns string
	// Isolation, if set, is how the task must be confined (a driver that
	// cannot says so in Capabilities.Isolation = false). nil: the task
	// runs as the driver's own processes do (the host runs tasks
	// unisolated: a non-root agent, or --task-isolation=false).
	Isolation *TaskIsolation
}

// TaskIsolation is what a driver must do to confine a task so that it
// cannot read or signal other tasks, the host's secrets or the host's
// state (docs/plugins.md, "Task isolation"). Every field's zero value is
// the strict choice, except the ids.
type TaskIsolation struct {
	// UID, GID and Groups are the task's credentials: its real, effective
	// and saved ids, and exactly these supplementary groups (nil: none).
	// A task with a UID other than 0 runs with an empty capability
	// bounding set, no capabilities and no_new_privs; with UID 0 (a user
	// the operator allowed) it keeps root's capabilities.
	UID, GID uint32
	Groups   []uint32
	// HiddenPaths are directories and files the task must not see (the
	// agent's and the kernel's data dirs, token files, client configs):
	// in the task's own mount namespace they are covered (an empty
	// directory, an empty file).
	HiddenPaths []string
	// Sandbox is the task's directory (with its volume mounts): it stays
	// visible and usable at this same path, also when it is under a
	// hidden path or under a directory UID cannot search.
	Sandbox string
	// SharePID keeps the task in the node's pid namespace, with a /proc
	// that shows only processes of the task's own uid (hidepid); false
	// (the default): its own pid namespace, where it cannot see or
	// signal anything else. The task also gets its own ipc, uts and
	// cgroup namespaces.
	SharePID bool
}

// TaskState is where a task is in its life.
type TaskState int

const (
	TaskStateUnknown TaskState = iota
	TaskStateRunning
	TaskStateExited
)

func (s TaskState) String() string {
	switch s {
	case TaskStateRunning:
		return "running"
	case TaskStateExited:
		return "exited"
	}
	return "unknown"
}

// TaskHandle is a driver's opaque, versioned record of a started task: the
// host checkpoints it and hands it back to RecoverTask. Only the driver reads
// DriverState.
type TaskHandle struct {
	Version     int
	Config      *TaskConfig
	State       TaskState
	DriverState []byte
	// PID is the task's main process id on the node, 0 if it has none (a
	// VM, a remote task). The host reports it and uses it for isolators
	// that need Isolate(pid).
	PID int
}

// ExitResult is how a task exited.
type ExitResult struct {
	ExitCode  int
	Signal    int // the signal that killed the task, or 0
	OOMKilled bool
	Err       string // a driver-side failure, not the task's
}

// Successful reports whether the task exited with code 0 and no signal.
func (r *ExitResult) Successful() bool {
	return r.ExitCode == 0 && r.Signal == 0 && !r.OOMKilled && r.Err == ""
}

// TaskStatus is a task's state as the driver sees it.
type TaskStatus struct {
	ID          string
	Name        string
	State       TaskState
	StartedAt   time.Time
	CompletedAt time.Time   // zero while running
	ExitResult  *ExitResult // nil while running
	Attributes  map[string]string
}

// TaskUsage is resource usage at one instant.
type TaskUsage struct {
	Timestamp      time.Time
	CPUUserNanos   uint64
	CPUSystemNanos uint64
	MemoryRSSBytes uint64
	PIDs           uint64
	// MemoryPeakBytes is the most memory the task ever used; 0 if unknown.
	MemoryPeakBytes uint64
	// OOMKills counts the task's processes the kernel killed for exceeding
	// the memory limit.
	OOMKills uint64
}
