//go:build linux

package storage

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/dcos-kernel/dcos/plugins/contract"
)

// sizedModes are the enforcements the machine offers, with the error a
// writer past the size gets; a missing one is a skipped subtest saying why.
func sizedModes() []struct {
	mode Enforcement
	full error
} {
	return []struct {
		mode Enforcement
		full error
	}{{EnforceLoop, unix.ENOSPC}, {EnforceQuota, unix.EDQUOT}}
}

func TestDriver_SandboxSizeEnforced(t *testing.T) {
	for _, m := range sizedModes() {
		t.Run(string(m.mode), func(t *testing.T) {
			ctx := context.Background()
			td := newTestDriver(t, m.mode, nil)
			// Something outside the sandbox that must survive: a file in
			// another (unlimited) sandbox and one beside the state dir.
			other, err := td.PrepareSandbox(ctx, "other", 0)
			if err != nil {
				t.Fatal(err)
			}
			if other.Enforced || isMountPoint(mustMounts(t), other.Path) {
				t.Errorf("size 0 sandbox = %+v: want a plain directory, not enforced", other)
			}
			witness := filepath.Join(other.Path, "witness")
			if err := os.WriteFile(witness, []byte("keep me"), 0o644); err != nil {
				t.Fatal(err)
			}
			const size = 16 << 20
			sb, err := td.PrepareSandbox(ctx, "c1", size)
			if err != nil {
				t.Fatal(err)
			}
			if !sb.Enforced || sb.SizeBytes != size || sb.Path != filepath.Join(td.cfg.StateDir, "sandboxes", "c1") {
				t.Errorf("PrepareSandbox = %+v", sb)
			}
			if ents, _ := os.ReadDir(sb.Path); len(ents) != 0 {
				t.Errorf("new sandbox holds %v, want nothing", ents)
			}
			err = writeFull(filepath.Join(sb.Path, "big"), 2*size)
			if !errors.Is(err, m.full) {
				t.Fatalf("writing twice the size: err = %v, want %v", err, m.full)
			}
			// The size is the task's to use, not eaten by the filesystem.
			fi, err := os.Stat(filepath.Join(sb.Path, "big"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() < size*3/4 {
				t.Errorf("a %d-byte sandbox took only %d bytes before it was full, want at least 3/4", size, fi.Size())
			}
			if b, err := os.ReadFile(witness); err != nil || string(b) != "keep me" {
				t.Errorf("file outside the sandbox = %q, %v", b, err)
			}
			if _, err := td.PrepareSandbox(ctx, "c2", size); err != nil {
				t.Errorf("a second sandbox after the first filled up: %v", err)
			}
		})
	}
}

func mustMounts(t *testing.T) []mountEntry {
	t.Helper()
	all, err := mounts()
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func TestDriver_HostVolumes(t *testing.T) {
	ctx := context.Background()
	certs, scratch := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(certs, "ca.pem"), []byte("CA"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(scratch, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	td := newTestDriver(t, EnforceLoop, map[string]HostVolume{
		"certs": {Path: certs, ReadOnly: true}, "scratch": {Path: scratch},
	})
	td.overGRPC()
	if _, err := td.st.PrepareSandbox(ctx, "c1", 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		req       contract.MountRequest
		wantRO    bool
		writeable bool
	}{
		{"read-only host volume", contract.MountRequest{HostPath: certs, Target: "etc/certs"}, true, false},
		{"read-only host volume asked read-write", contract.MountRequest{HostPath: certs, Target: "certs-rw"}, true, false},
		{"read-write host volume", contract.MountRequest{HostPath: scratch, Target: "scratch"}, false, true},
		{"beneath a host volume, asked read-only", contract.MountRequest{HostPath: filepath.Join(scratch, "sub"), Target: "sub", ReadOnly: true}, true, false},
		{"a file of a host volume", contract.MountRequest{HostPath: filepath.Join(certs, "ca.pem"), Target: "ca.pem"}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.ContainerID = "c1"
			m, err := td.st.Mount(ctx, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if m.ReadOnly != tt.wantRO || m.Source != tt.req.HostPath || m.VolumeID != "" {
				t.Errorf("Mount = %+v", m)
			}
			probe := filepath.Join(m.Path, "probe")
			if fi, _ := os.Stat(m.Path); fi != nil && !fi.IsDir() {
				probe = m.Path // a file: write to it
			}
			err = os.WriteFile(probe, []byte("x"), 0o644)
			switch {
			case tt.writeable && err != nil:
				t.Errorf("write in a read-write mount: %v", err)
			case !tt.writeable && !errors.Is(err, unix.EROFS):
				t.Errorf("write in a read-only mount: err = %v, want EROFS", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(scratch, "probe")); err != nil {
		t.Errorf("a write through the read-write mount did not reach the host path: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(certs, "ca.pem")); string(b) != "CA" {
		t.Errorf("read-only host file = %q, want it unchanged", b)
	}
	for _, p := range []string{t.TempDir(), "/etc", certs + "/../x", "relative"} {
		if _, err := td.st.Mount(ctx, contract.MountRequest{ContainerID: "c1", HostPath: p, Target: "no"}); err == nil {
			t.Errorf("Mount(undeclared host path %s) succeeded", p)
		}
	}
	// Cleanup unmounts every mount before removing the sandbox: the host
	// volumes keep their files.
	if err := td.st.CleanupSandbox(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(scratch, "probe")); err != nil {
		t.Errorf("cleanup harmed a host volume: %v", err)
	}
}

func TestDriver_VolumeLifecycle(t *testing.T) {
	for _, transport := range []string{"direct", "grpc"} {
		t.Run(transport, func(t *testing.T) {
			ctx := context.Background()
			td := newTestDriver(t, EnforceLoop, nil)
			if transport == "grpc" {
				td.overGRPC()
			}
			st := td.st
			const size = 16 << 20
			req := contract.VolumeRequest{ID: "db-1", Role: "db", SizeBytes: size}
			v, err := st.CreateVolume(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			want := &contract.Volume{ID: "db-1", Role: "db", Path: filepath.Join(td.cfg.StateDir, "volumes", "db-1"), SizeBytes: size, Enforced: true}
			if diff := cmp.Diff(want, v); diff != "" {
				t.Errorf("CreateVolume (-want +got):\n%s", diff)
			}
			if again, err := st.CreateVolume(ctx, req); err != nil || !cmp.Equal(want, again) {
				t.Errorf("CreateVolume again = %+v, %v", again, err)
			}
			if _, err := st.CreateVolume(ctx, contract.VolumeRequest{ID: "db-1", Role: "web", SizeBytes: size}); !errors.Is(err, contract.ErrConflict) {
				t.Errorf("CreateVolume for another role: err = %v, want ErrConflict", err)
			}
			if vs, err := st.ListVolumes(ctx); err != nil || !cmp.Equal([]contract.Volume{*want}, vs) {
				t.Errorf("ListVolumes = %+v, %v", vs, err)
			}
			if _, err := st.PrepareSandbox(ctx, "c1", 0); err != nil {
				t.Fatal(err)
			}
			m, err := st.Mount(ctx, contract.MountRequest{ContainerID: "c1", VolumeID: "db-1", Target: "data"})
			if err != nil {
				t.Fatal(err)
			}
			if m.Source != want.Path || m.Path != filepath.Join(td.cfg.StateDir, "sandboxes", "c1", "data") {
				t.Errorf("Mount = %+v", m)
			}
			if err := os.WriteFile(filepath.Join(m.Path, "row"), []byte("42"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := writeFull(filepath.Join(m.Path, "big"), 2*size); !errors.Is(err, unix.ENOSPC) {
				t.Errorf("writing twice the volume's size: err = %v, want ENOSPC", err)
			}
			os.Remove(filepath.Join(m.Path, "big"))
			if err := st.DestroyVolume(ctx, "db-1"); !errors.Is(err, contract.ErrConflict) {
				t.Errorf("DestroyVolume while mounted: err = %v, want ErrConflict", err)
			}
			// The volume outlives the sandbox, and its data is there for
			// the next one.
			if err := st.CleanupSandbox(ctx, "c1"); err != nil {
				t.Fatal(err)
			}
			if _, err := st.PrepareSandbox(ctx, "c2", 8<<20); err != nil {
				t.Fatal(err)
			}
			m2, err := st.Mount(ctx, contract.MountRequest{ContainerID: "c2", VolumeID: "db-1", Target: "data", ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(m2.Path, "row")); err != nil || string(b) != "42" {
				t.Errorf("volume data in the next sandbox = %q, %v", b, err)
			}
			if err := os.WriteFile(filepath.Join(m2.Path, "row"), []byte("0"), 0o644); !errors.Is(err, unix.EROFS) {
				t.Errorf("write in a read-only volume mount: err = %v, want EROFS", err)
			}
			for range 2 {
				if err := st.Unmount(ctx, "c2", "data"); err != nil {
					t.Errorf("Unmount: %v", err)
				}
			}
			if isMountPoint(mustMounts(t), m2.Path) {
				t.Error("still mounted after Unmount")
			}
			for range 2 {
				if err := st.DestroyVolume(ctx, "db-1"); err != nil {
					t.Errorf("DestroyVolume: %v", err)
				}
			}
			for _, p := range []string{want.Path, volumeImage(td.cfg.StateDir, "db-1"), filepath.Join(td.cfg.StateDir, "meta", "db-1.json")} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("after destroy: %s: %v, want it gone", p, err)
				}
			}
			if vs, err := st.ListVolumes(ctx); err != nil || len(vs) != 0 {
				t.Errorf("ListVolumes after destroy = %+v, %v", vs, err)
			}
			if _, err := st.Mount(ctx, contract.MountRequest{ContainerID: "c2", VolumeID: "db-1", Target: "data"}); !errors.Is(err, contract.ErrTaskNotFound) {
				t.Errorf("Mount of a destroyed volume: err = %v, want ErrTaskNotFound", err)
			}
		})
	}
}

func TestDriver_Errors(t *testing.T) {
	ctx := context.Background()
	td := newTestDriver(t, EnforceLoop, map[string]HostVolume{"tmp": {Path: os.TempDir()}})
	td.overGRPC()
	st := td.st
	sb, err := st.PrepareSandbox(ctx, "c1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateVolume(ctx, contract.VolumeRequest{ID: "v1", Role: "db", SizeBytes: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Mount(ctx, contract.MountRequest{ContainerID: "c1", VolumeID: "v1", Target: "data"}); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(sb.Path, "link")); err != nil {
		t.Fatal(err)
	}
	mount := func(r contract.MountRequest) func() error {
		if r.ContainerID == "" {
			r.ContainerID = "c1"
		}
		return func() error { _, err := st.Mount(ctx, r); return err }
	}
	tests := []struct {
		name string
		call func() error
		want error // nil: any error
	}{
		{"prepare twice", func() error { _, err := st.PrepareSandbox(ctx, "c1", 0); return err }, contract.ErrConflict},
		{"sandbox below the minimum", func() error { _, err := st.PrepareSandbox(ctx, "c2", 1<<20); return err }, nil},
		{"negative size", func() error { _, err := st.PrepareSandbox(ctx, "c2", -1); return err }, nil},
		{"ID that is a path", func() error { _, err := st.PrepareSandbox(ctx, "..", 0); return err }, nil},
		{"empty ID", func() error { _, err := st.PrepareSandbox(ctx, "", 0); return err }, nil},
		{"sandbox bigger than the disk", func() error { _, err := st.PrepareSandbox(ctx, "c2", 1<<60); return err }, contract.ErrExhausted},
		{"volume bigger than the disk", func() error {
			_, err := st.CreateVolume(ctx, contract.VolumeRequest{ID: "v2", Role: "db", SizeBytes: 1 << 60})
			return err
		}, contract.ErrExhausted},
		{"volume without a size", func() error {
			_, err := st.CreateVolume(ctx, contract.VolumeRequest{ID: "v2", Role: "db"})
			return err
		}, nil},
		{"volume without a role", func() error {
			_, err := st.CreateVolume(ctx, contract.VolumeRequest{ID: "v2", SizeBytes: 8 << 20})
			return err
		}, nil},
		{"volume reused with another size", func() error {
			_, err := st.CreateVolume(ctx, contract.VolumeRequest{ID: "v1", Role: "db", SizeBytes: 16 << 20})
			return err
		}, contract.ErrConflict},
		{"destroy a mounted volume", func() error { return st.DestroyVolume(ctx, "v1") }, contract.ErrConflict},
		{"target taken", mount(contract.MountRequest{HostPath: os.TempDir(), Target: "data"}), contract.ErrConflict},
		{"target beneath a mount", mount(contract.MountRequest{HostPath: os.TempDir(), Target: "data/x"}), contract.ErrConflict},
		{"unknown sandbox", mount(contract.MountRequest{ContainerID: "nope", VolumeID: "v1", Target: "d"}), contract.ErrTaskNotFound},
		{"unknown volume", mount(contract.MountRequest{VolumeID: "nope", Target: "d"}), contract.ErrTaskNotFound},
		{"both a volume and a host path", mount(contract.MountRequest{VolumeID: "v1", HostPath: os.TempDir(), Target: "d"}), nil},
		{"neither a volume nor a host path", mount(contract.MountRequest{Target: "d"}), nil},
		{"absolute target", mount(contract.MountRequest{VolumeID: "v1", Target: "/etc"}), nil},
		{"target out of the sandbox", mount(contract.MountRequest{VolumeID: "v1", Target: "../x"}), nil},
		{"unclean target", mount(contract.MountRequest{VolumeID: "v1", Target: "a//b"}), nil},
		{"target through a symlink", mount(contract.MountRequest{HostPath: os.TempDir(), Target: "link/x"}), nil},
		{"target a symlink", mount(contract.MountRequest{HostPath: os.TempDir(), Target: "link"}), nil},
		{"host path that does not exist", mount(contract.MountRequest{HostPath: filepath.Join(os.TempDir(), "no-such-dir-dcos"), Target: "d"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("err = %v, want %v (nil: any error)", err, tt.want)
			}
		})
	}
	// Nothing was mounted or created through the symlink, and the failed
	// calls left no sandbox, volume or image.
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("the symlink's target got %v", ents)
	}
	if isMountPoint(mustMounts(t), outside) {
		t.Error("something was mounted through a symlink")
	}
	ents, _ := os.ReadDir(filepath.Join(td.cfg.StateDir, "images"))
	if names := dirNames(ents); !slices.Equal(names, []string{"volume-v1.img"}) {
		t.Errorf("images after failed calls = %v, want only v1's", names)
	}
	if ents, _ := os.ReadDir(filepath.Join(td.cfg.StateDir, "sandboxes")); !slices.Equal(dirNames(ents), []string{"c1"}) {
		t.Errorf("sandboxes after failed calls = %v, want only c1", dirNames(ents))
	}
}

func dirNames(ents []os.DirEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestDriver_Recover simulates a crash of the driver (a new Driver on the
// same state dir, nothing cleaned up) with a crash's leftovers, then a
// reboot (every mount gone).
func TestDriver_Recover(t *testing.T) {
	ctx := context.Background()
	host := t.TempDir()
	td := newTestDriver(t, EnforceLoop, map[string]HostVolume{"host": {Path: host}})
	d1 := td.Driver
	if _, err := d1.CreateVolume(ctx, contract.VolumeRequest{ID: "v1", Role: "db", SizeBytes: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	sb, err := d1.PrepareSandbox(ctx, "c1", 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []contract.MountRequest{
		{ContainerID: "c1", VolumeID: "v1", Target: "data"},
		{ContainerID: "c1", HostPath: host, Target: "host", ReadOnly: true},
	} {
		m, err := d1.Mount(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		sb.Mounts = append(sb.Mounts, *m)
	}
	must(t, os.WriteFile(filepath.Join(sb.Path, "data", "row"), []byte("42"), 0o644))
	must(t, os.WriteFile(filepath.Join(sb.Path, "scratch"), []byte("s"), 0o644))
	// Leftovers: a sandbox the host never checkpointed, a mount it never
	// recorded, a volume whose record was never written, an image with a
	// loop device and no mount.
	if _, err := d1.PrepareSandbox(ctx, "c2", 8<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := d1.Mount(ctx, contract.MountRequest{ContainerID: "c1", HostPath: host, Target: "stray"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d1.CreateVolume(ctx, contract.VolumeRequest{ID: "ghost", Role: "db", SizeBytes: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	must(t, os.Remove(filepath.Join(td.cfg.StateDir, "meta", "ghost.json")))
	orphan := filepath.Join(td.cfg.StateDir, "images", "volume-orphan.img")
	must(t, makeImage(orphan, 8<<20, false))
	out, err := exec.Command("losetup", "-f", "--show", orphan).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	orphanDev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", orphanDev).Run() }) // if the test fails early

	check := func(t *testing.T, d *Driver) {
		t.Helper()
		all := mustMounts(t)
		for _, p := range []string{sb.Path, filepath.Join(sb.Path, "data"), filepath.Join(sb.Path, "host")} {
			if !isMountPoint(all, p) {
				t.Errorf("%s is not mounted after Recover", p)
			}
		}
		if b, err := os.ReadFile(filepath.Join(sb.Path, "data", "row")); err != nil || string(b) != "42" {
			t.Errorf("volume data after Recover = %q, %v", b, err)
		}
		if b, err := os.ReadFile(filepath.Join(sb.Path, "scratch")); err != nil || string(b) != "s" {
			t.Errorf("sandbox data after Recover = %q, %v", b, err)
		}
		if err := os.WriteFile(filepath.Join(sb.Path, "host", "x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
			t.Errorf("read-only host mount after Recover: write err = %v, want EROFS", err)
		}
		if vs, _ := d.ListVolumes(ctx); len(vs) != 1 || vs[0].ID != "v1" {
			t.Errorf("ListVolumes after Recover = %+v, want v1 only", vs)
		}
		if err := d.DestroyVolume(ctx, "v1"); !errors.Is(err, contract.ErrConflict) {
			t.Errorf("DestroyVolume of a volume mounted in a recovered sandbox: err = %v, want ErrConflict", err)
		}
	}

	t.Run("crash", func(t *testing.T) {
		d2 := td.open()
		td.Driver = d2
		if err := d2.Recover(ctx, []contract.Sandbox{*sb}); err != nil {
			t.Fatal(err)
		}
		check(t, d2)
		all := mustMounts(t)
		for _, p := range []string{
			filepath.Join(sb.Path, "stray"),
			filepath.Join(td.cfg.StateDir, "sandboxes", "c2"),
			filepath.Join(td.cfg.StateDir, "volumes", "ghost"),
			volumeImage(td.cfg.StateDir, "ghost"), sandboxImage(td.cfg.StateDir, "c2"), orphan,
		} {
			if isMountPoint(all, p) {
				t.Errorf("leftover still mounted: %s", p)
			}
			if _, err := os.Stat(p); p != filepath.Join(sb.Path, "stray") && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("leftover not removed: %s", p)
			}
		}
		if loops, _ := loopDevices(); slices.ContainsFunc(loops, func(l loopDevice) bool { return "/dev/"+l.Name == orphanDev }) {
			t.Errorf("stray loop device %s not detached", orphanDev)
		}
		// Recovering what is tracked again changes nothing.
		if err := d2.Recover(ctx, []contract.Sandbox{*sb}); err != nil {
			t.Fatal(err)
		}
		check(t, d2)
	})
	t.Run("reboot", func(t *testing.T) {
		// A reboot: every mount of the state dir is gone (and with them,
		// by autoclear, the loop devices).
		for _, p := range mountsUnder(mustMounts(t), td.cfg.StateDir) {
			must(t, unix.Unmount(p, 0))
		}
		d3 := td.open()
		td.Driver = d3
		if err := d3.Recover(ctx, []contract.Sandbox{*sb}); err != nil {
			t.Fatal(err)
		}
		check(t, d3)
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
