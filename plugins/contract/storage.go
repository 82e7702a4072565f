package contract

import "context"

// StorageDriver gives containers their disk on one node: a scratch sandbox
// of an enforced size per container, persistent volumes that outlive
// containers (offered back to the role that created them), and bind mounts
// of volumes and host paths into sandboxes. It is shaped after Mesos's disk
// isolators and CSI's node calls: the host calls PrepareSandbox before a task
// starts (the task's work directory, stdout and stderr live in the sandbox),
// Mount for each volume the task asks for, and CleanupSandbox once the task
// is gone; after a restart it calls Recover.
//
// All methods are safe for concurrent use. Container IDs and volume IDs are
// chosen by the host and are unique on a node. Methods that take an ID
// return an error wrapping ErrTaskNotFound for an ID the driver does not
// know, except the teardowns CleanupSandbox, DestroyVolume and Unmount, which
// are idempotent. A call the driver does not support returns
// ErrNotSupported; a size the node's disk cannot hold returns ErrExhausted.
type StorageDriver interface {
	// PrepareSandbox creates the container's sandbox, limited to sizeBytes
	// (0 means unlimited), and returns it; the host checkpoints it and
	// passes it to Recover after a restart. Preparing an ID that is already
	// prepared returns ErrConflict; on any error nothing of the sandbox is
	// left behind.
	PrepareSandbox(ctx context.Context, containerID string, sizeBytes int64) (*Sandbox, error)

	// CleanupSandbox unmounts everything mounted into the container's
	// sandbox and removes the sandbox with its contents; volumes are kept.
	// It is idempotent: cleaning up an unknown or already cleaned up
	// sandbox returns nil.
	CleanupSandbox(ctx context.Context, containerID string) error

	// CreateVolume creates a persistent volume of req.SizeBytes (which must
	// be positive) for req.Role. It is idempotent: creating a volume that
	// exists with the same role and size returns it; with another role or
	// size it returns ErrConflict.
	CreateVolume(ctx context.Context, req VolumeRequest) (*Volume, error)

	// DestroyVolume deletes the volume and its data. A volume mounted into a
	// sandbox is refused with ErrConflict. It is idempotent: destroying an
	// unknown or already destroyed volume returns nil.
	DestroyVolume(ctx context.Context, volumeID string) error

	// ListVolumes returns every volume on the node, in no particular order.
	// Volumes are the driver's to remember (on disk): the host calls it
	// after a restart to learn which persistent volumes it can offer.
	ListVolumes(ctx context.Context) ([]Volume, error)

	// Mount bind-mounts a volume or a host path at req.Target in the
	// container's sandbox and returns the mount. An unknown container or
	// volume returns ErrTaskNotFound; a host path that does not exist is an
	// error; a target already mounted returns ErrConflict. Target must be
	// a relative path that stays inside the sandbox.
	Mount(ctx context.Context, req MountRequest) (*Mount, error)

	// Unmount removes the mount at target in the container's sandbox. It is
	// idempotent: unmounting a target not mounted, or in an unknown
	// container, returns nil.
	Unmount(ctx context.Context, containerID, target string) error

	// Recover rebuilds the driver's state (loop devices, quota projects,
	// mounts) after a restart from the sandboxes the host checkpointed. A
	// sandbox gone from the disk is forgotten, not an error. Recovering a
	// sandbox the driver already tracks is a no-op. Sandboxes not listed
	// are leftovers of a crash: the driver removes them.
	Recover(ctx context.Context, sandboxes []Sandbox) error
}

// Sandbox is a container's scratch directory.
type Sandbox struct {
	ContainerID string
	// Path is the sandbox directory on the node.
	Path string
	// SizeBytes is the sandbox's size; 0 means unlimited.
	SizeBytes int64
	// Enforced says the driver enforces SizeBytes (a loop filesystem, a
	// project quota): a task that fills its sandbox gets ENOSPC. False
	// means best effort.
	Enforced bool
	// Mounts are what is mounted into the sandbox. PrepareSandbox returns
	// none; the host adds the results of Mount before checkpointing.
	Mounts []Mount
}

// VolumeRequest asks for a persistent volume.
type VolumeRequest struct {
	ID        string
	Role      string
	SizeBytes int64
}

// Volume is a persistent volume: a directory of an enforced size that
// outlives the containers that mount it.
type Volume struct {
	ID   string
	Role string
	// Path is the volume's directory on the node.
	Path      string
	SizeBytes int64
	// Enforced is as in Sandbox.
	Enforced bool
}

// MountRequest asks to mount a volume or a host path into a sandbox.
type MountRequest struct {
	ContainerID string
	// Exactly one of VolumeID and HostPath is set: a volume of this driver,
	// or an absolute directory on the node.
	VolumeID string
	HostPath string
	// Target is the mount point, relative to the sandbox (e.g. "data");
	// the driver creates it.
	Target   string
	ReadOnly bool
}

// Mount is a volume or host path mounted into a sandbox.
type Mount struct {
	ContainerID string
	// VolumeID is the mounted volume, or empty for a host path.
	VolumeID string
	// Source is the mounted directory on the node: the volume's path or
	// the host path.
	Source string
	// Target is the mount point relative to the sandbox; Path the mount
	// point on the node.
	Target   string
	Path     string
	ReadOnly bool
}
