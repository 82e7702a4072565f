package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/internal/imagetest"
)

func TestUnpack_Hostile(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name    string
		entries []imagetest.Entry
	}{
		{"dotdot", []imagetest.Entry{{Name: "../escape", Body: "x"}}},
		{"dotdot inside", []imagetest.Entry{{Name: "a/../../escape", Body: "x"}}},
		{"absolute symlink then through it", []imagetest.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: "OUTSIDE"},
			{Name: "evil/escape", Body: "x"}}},
		{"relative symlink up then through it", []imagetest.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: "../outside"},
			{Name: "evil/escape", Body: "x"}}},
		{"hard link out", []imagetest.Entry{{Name: "h", Type: tar.TypeLink, Linkname: "../outside/secret"}}},
		{"hard link through symlink", []imagetest.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: "../outside"},
			{Name: "h", Type: tar.TypeLink, Linkname: "evil/secret"}}},
		{"whiteout through symlink", []imagetest.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: "../outside"},
			{Name: "evil/.wh.secret"}}},
		{"opaque through symlink", []imagetest.Entry{
			{Name: "evil", Type: tar.TypeSymlink, Linkname: "../outside"},
			{Name: "evil/.wh..wh..opq"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			os.Mkdir(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
			for i := range tc.entries {
				if tc.entries[i].Linkname == "OUTSIDE" {
					tc.entries[i].Linkname = outside
				}
			}
			_, err := unpack(bytes.NewReader(imagetest.Tar(t, tc.entries...)), filepath.Join(base, "root"))
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("unpack = %v, want ErrMalformed", err)
			}
			assertOnly(t, base, outside)
		})
	}
}

// assertOnly checks that nothing but root/ and an untouched outside/secret
// is in base.
func assertOnly(t testing.TB, base, outside string) {
	t.Helper()
	ents, _ := os.ReadDir(base)
	for _, e := range ents {
		if e.Name() != "root" && e.Name() != "outside" {
			t.Fatalf("unpack wrote %s outside the layer", e.Name())
		}
	}
	ents, _ = os.ReadDir(outside)
	if len(ents) != 1 || ents[0].Name() != "secret" {
		t.Fatalf("outside/ changed: %v", ents)
	}
	fi, err := os.Lstat(filepath.Join(outside, "secret"))
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != 1 {
		t.Fatalf("outside/secret changed: %v %v", fi, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink != 1 {
		t.Fatalf("outside/secret got a hard link")
	}
}

func TestUnpack_Kinds(t *testing.T) {
	requireRoot(t)
	mtime := time.Unix(1600000000, 0)
	dir := filepath.Join(t.TempDir(), "root")
	size, err := unpack(bytes.NewReader(imagetest.Tar(t,
		imagetest.Entry{Name: "./", Type: tar.TypeDir},
		imagetest.Entry{Name: "d/", Type: tar.TypeDir, Mode: 0o750, UID: 7, GID: 8, ModTime: mtime},
		imagetest.Entry{Name: "d/f", Body: "12345", Mode: 0o4755, ModTime: mtime},
		imagetest.Entry{Name: "d/hard", Type: tar.TypeLink, Linkname: "d/f"},
		imagetest.Entry{Name: "d/sym", Type: tar.TypeSymlink, Linkname: "/nonexistent/target"},
		imagetest.Entry{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		imagetest.Entry{Name: "fifo", Type: tar.TypeFifo, Mode: 0o600},
		imagetest.Entry{Name: "replaced", Body: "old"},
		imagetest.Entry{Name: "replaced", Body: "new!"},
		imagetest.Entry{Name: "implicit/parent/file", Body: "p"},
	)), dir)
	if err != nil {
		t.Fatal(err)
	}
	if size != 5+3+4+1 {
		t.Errorf("size = %d, want 13", size)
	}
	var st syscall.Stat_t
	check := func(p string, mode uint32, uid, gid uint32) {
		t.Helper()
		if err := syscall.Lstat(filepath.Join(dir, p), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode != mode || st.Uid != uid || st.Gid != gid {
			t.Errorf("%s: mode %o owner %d:%d, want %o %d:%d", p, st.Mode, st.Uid, st.Gid, mode, uid, gid)
		}
	}
	check("d", syscall.S_IFDIR|0o750, 7, 8)
	if st.Mtim.Sec != mtime.Unix() {
		t.Errorf("dir mtime = %d, want %d", st.Mtim.Sec, mtime.Unix())
	}
	check("d/f", syscall.S_IFREG|0o4755, 0, 0)
	if st.Mtim.Sec != mtime.Unix() || st.Nlink != 2 {
		t.Errorf("d/f mtime %d nlink %d", st.Mtim.Sec, st.Nlink)
	}
	check("dev/null", syscall.S_IFCHR|0o666, 0, 0)
	if st.Rdev != 1<<8|3 {
		t.Errorf("dev/null rdev = %#x", st.Rdev)
	}
	check("fifo", syscall.S_IFIFO|0o600, 0, 0)
	if l, _ := os.Readlink(filepath.Join(dir, "d/sym")); l != "/nonexistent/target" {
		t.Errorf("symlink = %q", l)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "replaced")); string(b) != "new!" {
		t.Errorf("replaced = %q", b)
	}
}

func FuzzUnpack(f *testing.F) {
	requireRoot(f)
	for _, es := range [][]imagetest.Entry{
		{{Name: "a", Body: "x"}, {Name: "d/", Type: tar.TypeDir}, {Name: "d/.wh.a"}, {Name: "d/.wh..wh..opq"}},
		{{Name: "l", Type: tar.TypeSymlink, Linkname: "../outside"}, {Name: "l/x", Body: "x"}},
		{{Name: "l", Type: tar.TypeSymlink, Linkname: "."}, {Name: "l/l/x", Body: "x"}},
		{{Name: "f", Body: "x"}, {Name: "h", Type: tar.TypeLink, Linkname: "f"}, {Name: "../h2", Type: tar.TypeLink, Linkname: "f"}},
		{{Name: "/abs/file", Body: "x"}, {Name: "x/../../y", Body: "x"}},
	} {
		f.Add(imagetest.Tar(f, es...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		base := t.TempDir()
		outside := filepath.Join(base, "outside")
		os.Mkdir(outside, 0o755)
		os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600)
		_, _ = unpack(bytes.NewReader(b), filepath.Join(base, "root"))
		assertOnly(t, base, outside)
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"config":{"digest":"sha256:` + zeros + `"},"layers":[{"digest":"sha256:` + zeros + `","size":3}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:` + zeros + `","platform":{"os":"linux","architecture":"amd64"}}]}`))
	f.Add([]byte(`{"os":"linux","architecture":"amd64","config":{"Cmd":["x"],"ExposedPorts":{"80/tcp":{}}},"rootfs":{"type":"layers","diff_ids":["sha256:` + zeros + `"]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := parseManifest(b); err == nil {
			for _, l := range m.Layers {
				if !validDigest(l.Digest) || l.Size < 0 {
					t.Fatalf("accepted layer %+v", l)
				}
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("manifest error %v does not wrap ErrMalformed", err)
		}
		if idx, err := parseIndex(b); err == nil {
			for _, m := range idx.Manifests {
				if !validDigest(m.Digest) {
					t.Fatalf("accepted manifest %+v", m)
				}
			}
		}
		if c, err := parseConfig(b); err == nil {
			_ = c.imageConfig()
			for _, d := range c.RootFS.DiffIDs {
				if !validDigest(d) {
					t.Fatalf("accepted diff_id %q", d)
				}
			}
		}
	})
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
