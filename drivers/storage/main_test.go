//go:build linux

package storage

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	plugin "github.com/hashicorp/go-plugin"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// requireLoop skips the test when loop images cannot be made here, saying
// what is missing.
func requireLoop(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root (loop devices, mounts)")
	}
	if err := loopUsable(); err != nil {
		tb.Skipf("loop enforcement unavailable: %v", err)
	}
}

// testDriver is a driver on a fresh state dir, checked for leftovers when
// the test ends.
type testDriver struct {
	*Driver
	tb  testing.TB
	cfg Config
	// st is the driver as the test calls it: directly, or over gRPC.
	st contract.StorageDriver
}

// newTestDriver returns a driver in mode on a fresh state dir. When the
// test ends it cleans up the sandboxes in ids, destroys every volume, and
// fails (after cleaning by force) on any mount or loop device left.
func newTestDriver(tb testing.TB, mode Enforcement, hostVolumes map[string]HostVolume) *testDriver {
	tb.Helper()
	requireLoop(tb)
	cfg := Config{StateDir: tb.TempDir(), Enforcement: mode, HostVolumes: hostVolumes}
	if mode == EnforceQuota {
		cfg.StateDir = quotaStateDir(tb)
	}
	td := &testDriver{tb: tb, cfg: cfg}
	td.Driver = td.open()
	td.st = td.Driver
	tb.Cleanup(func() {
		ctx := context.Background()
		d := td.Driver
		d.mu.Lock()
		var ids []string
		for id := range d.sandboxes {
			ids = append(ids, id)
		}
		d.mu.Unlock()
		for _, id := range ids {
			if err := d.CleanupSandbox(ctx, id); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
		}
		vs, _ := d.ListVolumes(ctx)
		for _, v := range vs {
			if err := d.DestroyVolume(ctx, v.ID); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
		}
		checkNothingLeft(tb, cfg.StateDir)
	})
	return td
}

// quotaStateDir returns a directory on a fresh ext4 filesystem with
// project quotas (a loop image mounted for the test), or skips the test
// saying why the kernel cannot mount one.
func quotaStateDir(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(img)
	if err == nil {
		err = f.Truncate(256 << 20)
		f.Close()
	}
	if err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command(mkfsExt4, "-q", "-F", "-O", "project,quota", "-E", "quotatype=prjquota", img).CombinedOutput(); err != nil {
		tb.Skipf("mkfs.ext4 cannot make project quotas: %v: %s", err, out)
	}
	if err := mountImage(img, mnt); err != nil {
		os.Remove(img)
		tb.Skipf("the kernel cannot mount ext4 with project quotas (CONFIG_QUOTA and CONFIG_QFMT_V2): %v", err)
	}
	tb.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			tb.Errorf("unmount the quota filesystem: %v", err)
		}
	})
	return filepath.Join(mnt, "state")
}

// open returns a new driver on the test's state dir (as after a restart).
func (td *testDriver) open() *Driver {
	td.tb.Helper()
	d, err := New(td.cfg)
	if err != nil {
		td.tb.Fatal(err)
	}
	return d
}

// overGRPC makes td.st the driver served over go-plugin's gRPC transport.
func (td *testDriver) overGRPC() {
	td.tb.Helper()
	client, _ := plugin.TestPluginGRPCConn(td.tb, false, map[string]plugin.Plugin{
		contract.KindStorage: &contract.StoragePlugin{Impl: td.Driver},
	})
	td.tb.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(contract.KindStorage)
	if err != nil {
		td.tb.Fatal(err)
	}
	td.st = raw.(contract.StorageDriver)
}

// checkNothingLeft fails if a mount beneath dir or a loop device backed by
// a file beneath dir is left, and removes them so the machine is left as
// found.
func checkNothingLeft(tb testing.TB, dir string) {
	tb.Helper()
	all, err := mounts()
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range mountsUnder(all, dir) {
		tb.Errorf("left behind: mount %s", p)
		unix.Unmount(p, unix.MNT_DETACH)
	}
	loops, err := loopDevices()
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range loops {
		if strings.HasPrefix(l.Backing, dir+"/") {
			tb.Errorf("left behind: loop device %s backed by %s", l.Name, l.Backing)
			detachLoop(l.Name)
		}
	}
	if out, err := exec.Command("losetup", "-a").Output(); err == nil && strings.Contains(string(out), dir) {
		tb.Errorf("left behind (losetup -a):\n%s", out)
	}
	for _, sub := range []string{"sandboxes", "volumes", "images", "meta"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			tb.Errorf("left behind: %s/%s", sub, e.Name())
		}
	}
}

// writeFull writes n bytes of data to path (created) and fsyncs it,
// returning the first error.
func writeFull(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	for n > 0 {
		chunk := min(n, int64(len(buf)))
		if _, err = f.Write(buf[:chunk]); err != nil {
			break
		}
		n -= chunk
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
