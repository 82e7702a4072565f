package contract

import (
	"context"
	"time"
)

// Isolator isolates a container (the processes of one task) and accounts for
// its resources. It is shaped after Mesos's Isolator: the host calls Prepare
// before the task's process exists, Isolate with its pid, Update when limits
// change, Usage to account, Watch to learn of limitations, and Cleanup once
// the container is gone.
//
// All methods are safe for concurrent use. Methods that take a container ID
// return an error wrapping ErrTaskNotFound for an ID the isolator does not
// know, except Cleanup, which is idempotent.
type Isolator interface {
	// Prepare sets up isolation for a new container with the given limits
	// and returns what the task's first process needs (see LaunchInfo).
	// Preparing an ID twice is an error.
	Prepare(ctx context.Context, containerID string, limits Resources) (*LaunchInfo, error)

	// Isolate places pid (and its future children) into the container. It
	// is idempotent: isolating a pid already placed (e.g. by a driver that
	// honoured LaunchInfo.Cgroups) returns nil.
	Isolate(ctx context.Context, containerID string, pid int) error

	// Update changes the container's limits.
	Update(ctx context.Context, containerID string, limits Resources) error

	// Usage returns the container's resource usage at the time of the call.
	Usage(ctx context.Context, containerID string) (*TaskUsage, error)

	// Watch streams the limitations the container hits (e.g. an OOM kill)
	// until ctx is done or the container is cleaned up; then the channel is
	// closed. The caller must drain the channel or cancel ctx.
	Watch(ctx context.Context, containerID string) (<-chan Limitation, error)

	// Cleanup releases everything of the container. It is idempotent:
	// cleaning up an unknown or already cleaned up container returns nil.
	Cleanup(ctx context.Context, containerID string) error

	// Recover rebuilds the isolator's state after a restart from the
	// containers the host knows of.
	Recover(ctx context.Context, containers []ContainerState) error
}

// LaunchInfo is what a container's first process needs from an isolator.
// The host passes it to the driver in TaskConfig.
type LaunchInfo struct {
	// Cgroups are cgroup directories (absolute paths beneath a cgroup
	// mount) the task's first process must be a member of before it runs
	// the task's program, so that nothing it forks escapes them.
	Cgroups []string
	// Env is added to the task's environment.
	Env map[string]string
}

// LimitationReason is why a container hit a limit.
type LimitationReason int

const (
	LimitationUnknown LimitationReason = iota
	LimitationOOM                      // killed for exceeding its memory limit
	LimitationPIDs                     // could not fork past its pids limit
	LimitationDisk                     // exceeded its disk quota
)

func (r LimitationReason) String() string {
	switch r {
	case LimitationOOM:
		return "OOM"
	case LimitationPIDs:
		return "PIDS"
	case LimitationDisk:
		return "DISK"
	}
	return "UNKNOWN"
}

// Limitation is a limit a container hit.
type Limitation struct {
	ContainerID string
	Reason      LimitationReason
	Message     string
	At          time.Time
}

// ContainerState is what the host knows of a container, for Recover.
type ContainerState struct {
	ContainerID string
	PID         int
	Limits      Resources
}
