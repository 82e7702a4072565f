//go:build linux

package storage

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The loop enforcement: a sized ext4 image per sandbox or volume, attached
// to a loop device with autoclear and mounted on the object's directory.
// Once mounted, the driver holds no file descriptor: the mount holds the
// device, and unmounting it detaches the device (LO_FLAGS_AUTOCLEAR).

// makeImage creates an ext4 image of size bytes at path, with every block
// allocated up front (fallocate), so that a full host disk can never turn
// into I/O errors inside the image: the host's "no space" is reported at
// create time as ErrExhausted-wrapping ENOSPC. On error nothing is left.
func makeImage(path string, size int64, journal bool) (err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(path)
		}
	}()
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = f.Truncate(size) // a filesystem without fallocate: sparse
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("allocate %s: %w", path, err)
	}
	return mkfs(path, journal)
}

// mkfs formats path as ext4: no reserved blocks (the task owns the whole
// image), no discard (it would punch holes into the allocated image), and
// lazy inode-table and journal initialization (the image reads as zeroes).
func mkfs(path string, journal bool) error {
	args := []string{"-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"}
	if !journal {
		args = append(args, "-O", "^has_journal")
	}
	out, err := exec.Command(mkfsExt4, append(args, path)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", path, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// mkfsExt4 is the formatter, found on PATH or in /sbin, /usr/sbin.
var mkfsExt4 = func() string {
	if p, err := exec.LookPath("mkfs.ext4"); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, "mkfs.ext4"); fileExists(p) {
			return p
		}
	}
	return "mkfs.ext4"
}()

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// mountImage attaches image to a free loop device and mounts its ext4 on
// dir. The device detaches itself when dir is unmounted.
func mountImage(image, dir string) error {
	dev, err := attachLoop(image)
	if err != nil {
		return fmt.Errorf("loop %s: %w", image, err)
	}
	// Until the mount holds the device, dev's descriptor does: closing it
	// without a mount detaches the device (autoclear).
	defer dev.Close()
	if err := unix.Mount(dev.Name(), dir, "ext4", unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", dev.Name(), image, dir, err)
	}
	return nil
}

// attachLoop binds image to a free loop device, with autoclear and direct
// I/O (no second copy of the image in the page cache), and returns the
// open device.
func attachLoop(image string) (*os.File, error) {
	img, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	for range 32 { // another process may take the free device first
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
		}
		dev, err := openLoop(n)
		if err != nil {
			return nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_DIRECT_IO
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], image)
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
			err = setFD(dev, img, cfg.Info) // a kernel before 5.8
		}
		if errors.Is(err, unix.EBUSY) {
			dev.Close()
			continue
		}
		if err != nil {
			dev.Close()
			return nil, fmt.Errorf("configure %s: %w", dev.Name(), err)
		}
		return dev, nil
	}
	return nil, errors.New("no free loop device after 32 tries")
}

// openLoop opens /dev/loopN, making the node where /dev is not a devtmpfs.
func openLoop(n int) (*os.File, error) {
	name := "/dev/loop" + strconv.Itoa(n)
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := unix.Mknod(name, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n)))); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("mknod %s: %w", name, err)
		}
		f, err = os.OpenFile(name, os.O_RDWR, 0)
	}
	return f, err
}

// setFD is LOOP_CONFIGURE in two steps, for kernels without it.
func setFD(dev, img *os.File, info unix.LoopInfo64) error {
	if err := unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_SET_FD, int(img.Fd())); err != nil {
		return err
	}
	info.Flags &^= unix.LO_FLAGS_DIRECT_IO
	if err := unix.IoctlLoopSetStatus64(int(dev.Fd()), &info); err != nil {
		unix.IoctlSetInt(int(dev.Fd()), unix.LOOP_CLR_FD, 0)
		return err
	}
	return nil
}

// loopDevice is an attached loop device and its backing file.
type loopDevice struct {
	Name    string // loopN
	Backing string
}

// loopDevices lists the attached loop devices from sysfs.
func loopDevices() ([]loopDevice, error) {
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		return nil, err
	}
	var out []loopDevice
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "loop", "backing_file"))
		if err != nil {
			continue // not attached
		}
		out = append(out, loopDevice{Name: e.Name(), Backing: strings.TrimSuffix(string(b), "\n")})
	}
	return out, nil
}

// detachLoop detaches /dev/<name> (a device no mount holds).
func detachLoop(name string) error {
	f, err := os.OpenFile("/dev/"+name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil && !errors.Is(err, unix.ENXIO) {
		return fmt.Errorf("detach %s: %w", name, err)
	}
	return nil
}
