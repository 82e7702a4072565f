package logfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A task owns its sandbox: it may plant a symlink or a FIFO under a
// generation's name. The writer (root, in the supervisor) must not write
// through it, the reader (root, in the agent) must neither read through it
// nor block on it.
func TestPlanted_Symlink(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(secret, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("writer create", func(t *testing.T) {
		if err := os.Symlink(secret, genPath(dir, "out", 1)); err != nil {
			t.Fatal(err)
		}
		if w, err := Create(dir, "out", Options{}); err == nil {
			w.Write([]byte("pwned\n"))
			w.Close()
			t.Fatal("Create through a planted symlink succeeded")
		}
		if b, _ := os.ReadFile(secret); string(b) != "root:secret\n" {
			t.Fatalf("target changed: %q", b)
		}
	})
	t.Run("writer rotate", func(t *testing.T) {
		d := t.TempDir()
		w, err := Create(d, "out", Options{MaxBytes: 8})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		if err := os.Symlink(secret, genPath(d, "out", 2)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("0123456\nabcdefg\n")); err == nil {
			t.Fatal("rotation onto a planted symlink succeeded")
		}
		if b, _ := os.ReadFile(secret); string(b) != "root:secret\n" {
			t.Fatalf("target changed: %q", b)
		}
	})
	t.Run("reader", func(t *testing.T) {
		d := t.TempDir()
		if err := os.Symlink(secret, genPath(d, "out", 1)); err != nil {
			t.Fatal(err)
		}
		r, err := Open(d, "out")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		buf := make([]byte, 64)
		n, _, err := r.Read(Cursor{}, buf)
		if err == nil || strings.Contains(string(buf[:n]), "secret") {
			t.Fatalf("read through a symlink: %q, %v", buf[:n], err)
		}
		if _, err := r.Tail(10); err == nil {
			t.Fatal("tail through a symlink succeeded")
		}
	})
}

func TestPlanted_FIFO(t *testing.T) {
	d := t.TempDir()
	if err := syscall.Mkfifo(genPath(d, "out", 1), 0o666); err != nil {
		t.Fatal(err)
	}
	r, err := Open(d, "out")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Without O_NONBLOCK these would block forever (no writer opens the
	// FIFO); the test would time out.
	if _, _, err := r.Read(Cursor{}, make([]byte, 8)); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("read a FIFO: %v, want ErrNotRegular", err)
	}
	if _, err := r.Tail(1); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("tail a FIFO: %v, want ErrNotRegular", err)
	}
	if _, err := Create(d, "out", Options{}); err == nil {
		t.Fatal("create onto a FIFO succeeded")
	}
}

// TestCreate_AdoptsPlainFile: a plain file at the stream's name (written
// before its logs rotated) becomes generation 1 and is appended to; one
// with another hard link (planted: a link to some other file) is refused.
func TestCreate_AdoptsPlainFile(t *testing.T) {
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "out"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := Create(d, "out", Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("after\n"))
	w.Close()
	if b, _ := os.ReadFile(filepath.Join(d, "out")); string(b) != "before\nafter\n" {
		t.Fatalf("out = %q", b)
	}
	if got := readGen(t, d, "out", 1); got != "before\nafter\n" {
		t.Fatalf("generation 1 = %q", got)
	}

	d2 := t.TempDir()
	other := filepath.Join(d2, "other")
	if err := os.WriteFile(other, []byte("keep\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(other, filepath.Join(d2, "out")); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(d2, "out", Options{}); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Create over a hard link: %v, want ErrNotRegular", err)
	}
	if b, _ := os.ReadFile(other); string(b) != "keep\n" {
		t.Fatalf("the linked file changed: %q", b)
	}
}
