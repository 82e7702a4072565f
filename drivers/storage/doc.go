// Package storage is the node's built-in storage driver
// (contract.StorageDriver): a scratch sandbox per container, persistent
// volumes that outlive containers, and bind mounts of volumes and declared
// host paths into sandboxes, with sizes enforced by the kernel.
//
// Everything lives under Config.StateDir:
//
//	sandboxes/<id>        a container's sandbox (its work dir)
//	volumes/<id>          a persistent volume's directory
//	images/sandbox-<id>.img, images/volume-<id>.img   loop images
//	meta/<id>.json        a volume's record (the volume exists iff it does)
//
// IDs are path-escaped (url.PathEscape). A sized sandbox or volume is
// enforced one of two ways, chosen by New (see Enforcement): a project
// quota on its directory where the state dir's filesystem accounts them
// (ext4 with the project and quota features, xfs with pquota; a writer
// past the size gets EDQUOT), otherwise an ext4 image of exactly the size,
// allocated up front with fallocate, attached to a loop device (autoclear,
// direct I/O) and mounted on the directory (a writer past the size gets
// ENOSPC). A sandbox of size 0 is a plain directory. Mounts are made in the
// driver's (the node's) mount namespace, beneath the sandbox, with
// symlinks refused on the way to the target.
//
// The driver keeps its volume records on disk; sandboxes are the host's to
// checkpoint (the Sandbox that PrepareSandbox and Mount return) and to
// pass back to Recover, which mounts again what a reboot unmounted and
// removes what a crash left. When a sandbox is removed after its task ends
// (a retention period) is the host's choice: CleanupSandbox removes it.
//
// It is not a distributed or networked volume system: volumes are local to
// the node, and their data is lost with the node's disk.
package storage
