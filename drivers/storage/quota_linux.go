//go:build linux

package storage

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The quota enforcement: each sandbox or volume is a directory of its own
// project (FS_IOC_FSSETXATTR with FS_XFLAG_PROJINHERIT, so everything
// created beneath inherits it) with a hard block limit on the project
// (quotactl_fd Q_SETQUOTA, PRJQUOTA). It needs the state dir's filesystem
// to account project quotas: ext4 with the project and quota features
// (mkfs.ext4 -O project,quota -E quotatype=prjquota, or mounted with
// prjquota), or xfs mounted with pquota/prjquota.

// fsxattr is struct fsxattr of <linux/fs.h>.
type fsxattr struct {
	XFlags     uint32
	ExtSize    uint32
	NExtents   uint32
	ProjID     uint32
	CowExtSize uint32
	_          [8]byte
}

// ifDqblk is struct if_dqblk of <linux/quota.h>.
type ifDqblk struct {
	BHardLimit uint64 // in 1 KiB blocks
	BSoftLimit uint64
	CurSpace   uint64 // bytes
	IHardLimit uint64
	ISoftLimit uint64
	CurInodes  uint64
	BTime      uint64
	ITime      uint64
	Valid      uint32
	_          uint32
}

// ifDqinfo is struct if_dqinfo of <linux/quota.h>.
type ifDqinfo struct {
	BGrace, IGrace uint64
	Flags, Valid   uint32
}

const (
	fsIocFSGetXattr  = 0x801c581f // _IOR('X', 31, struct fsxattr)
	fsIocFSSetXattr  = 0x401c5820 // _IOW('X', 32, struct fsxattr)
	fsXflagProjInher = 0x200
	prjQuota         = 2
	qGetInfo         = 0x800005
	qSetQuota        = 0x800008
	qifBLimits       = 1
	qifDqblkSize     = 1024
)

func qcmd(cmd, typ uint32) uintptr { return uintptr(cmd<<8 | typ&0xff) }

// quotactl runs quotactl_fd(2) on the filesystem of dir.
func quotactl(dir string, cmd uint32, id uint32, addr unsafe.Pointer) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	_, _, e := unix.Syscall6(unix.SYS_QUOTACTL_FD, f.Fd(), qcmd(cmd, prjQuota), uintptr(id), uintptr(addr), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// projectQuotasOn says whether dir's filesystem enforces project quotas
// (nil) or why not.
func projectQuotasOn(dir string) error {
	var info ifDqinfo
	if err := quotactl(dir, qGetInfo, 0, unsafe.Pointer(&info)); err != nil {
		return fmt.Errorf("project quotas are off on the filesystem of %s: %w", dir, err)
	}
	return nil
}

// project returns dir's project ID.
func project(dir string) (uint32, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var x fsxattr
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFSGetXattr, uintptr(unsafe.Pointer(&x))); e != 0 {
		return 0, fmt.Errorf("FS_IOC_FSGETXATTR %s: %w", dir, e)
	}
	return x.ProjID, nil
}

// setProject puts dir into project id, inherited by what is created
// beneath it.
func setProject(dir string, id uint32) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	var x fsxattr
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFSGetXattr, uintptr(unsafe.Pointer(&x))); e != 0 {
		return fmt.Errorf("FS_IOC_FSGETXATTR %s: %w", dir, e)
	}
	x.ProjID = id
	x.XFlags |= fsXflagProjInher
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFSSetXattr, uintptr(unsafe.Pointer(&x))); e != 0 {
		return fmt.Errorf("FS_IOC_FSSETXATTR %s: %w", dir, e)
	}
	return nil
}

// setProjectLimit sets project id's hard block limit to size bytes
// (rounded up to 1 KiB); 0 removes the limit.
func setProjectLimit(dir string, id uint32, size int64) error {
	q := ifDqblk{BHardLimit: uint64((size + qifDqblkSize - 1) / qifDqblkSize), Valid: qifBLimits}
	if err := quotactl(dir, qSetQuota, id, unsafe.Pointer(&q)); err != nil {
		return fmt.Errorf("set project %d limit: %w", id, err)
	}
	return nil
}
