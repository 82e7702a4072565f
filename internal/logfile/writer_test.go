package logfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

func readGen(t *testing.T, dir, name string, g uint64) string {
	t.Helper()
	b, err := os.ReadFile(genPath(dir, name, g))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func gens(t *testing.T, dir, name string) []uint64 {
	t.Helper()
	g, err := listGens(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func mustWrite(t testing.TB, w *Writer, s string) {
	t.Helper()
	if n, err := w.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("write %q: n=%d err=%v", s, n, err)
	}
}

func TestCreate_BadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, dir, stream string
		o                 Options
		want              string
	}{
		{"empty name", dir, "", Options{}, "name"},
		{"slash", dir, "a/b", Options{}, "name"},
		{"dotdot", dir, "..", Options{}, "name"},
		{"empty dir", "", "stdout", Options{}, "dir"},
		{"negative MaxBytes", dir, "stdout", Options{MaxBytes: -1}, "MaxBytes"},
		{"negative MaxFiles", dir, "stdout", Options{MaxFiles: -1}, "MaxFiles"},
		{"missing dir", filepath.Join(dir, "nope"), "stdout", Options{}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := Create(tc.dir, tc.stream, tc.o)
			if err == nil {
				w.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestWriter_RotatesAtLineBoundaries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   []string // generations' contents
	}{
		{"whole lines", []string{"aaa\n", "bbb\n", "ccc\n"}, []string{"aaa\nbbb\n", "ccc\n"}},
		{"split at last fitting newline", []string{"aa\nbb\ncc\ndd\n"}, []string{"aa\nbb\n", "cc\ndd\n"}},
		{"rotate before a line that fits whole", []string{"aa\n", "bbbbbbb\n"}, []string{"aa\n", "bbbbbbb\n"}},
		{"long line split mid-line", []string{"0123456789abcdefghij\n"}, []string{"01234567", "89abcdef", "ghij\n"}},
		{"partial line continues then splits", []string{"abc", "defghijkl\n"}, []string{"abcdefgh", "ijkl\n"}},
		{"exact fill", []string{"1234567\n", "x\n"}, []string{"1234567\n", "x\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := Create(dir, "stdout", Options{MaxBytes: 8, MaxFiles: 100})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			for _, s := range tc.writes {
				mustWrite(t, w, s)
			}
			g := gens(t, dir, "stdout")
			if len(g) != len(tc.want) {
				t.Fatalf("generations %v, want %d", g, len(tc.want))
			}
			for i, want := range tc.want {
				if got := readGen(t, dir, "stdout", g[i]); got != want {
					t.Errorf("generation %d = %q, want %q", g[i], got, want)
				}
			}
		})
	}
}

func TestWriter_NameIsLiveGeneration(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, "stdout", Options{MaxBytes: 16, MaxFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 50; i++ {
		mustWrite(t, w, fmt.Sprintf("line %03d\n", i))
		live := w.Cursor().Gen
		if a, b := inode(t, filepath.Join(dir, "stdout")), inode(t, genPath(dir, "stdout", live)); a != b {
			t.Fatalf("after line %d: stdout is inode %d, live generation %d is inode %d", i, a, live, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".stdout.link")); !os.IsNotExist(err) {
		t.Fatalf("temporary link left behind: %v", err)
	}
}

func TestWriter_ResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	o := Options{MaxBytes: 32, MaxFiles: 10}
	w, err := Create(dir, "stderr", o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 7; i++ {
		mustWrite(t, w, fmt.Sprintf("first %d\n", i))
	}
	before := w.Cursor()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = Create(dir, "stderr", o)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Cursor() != before {
		t.Fatalf("resumed at %s, want %s", w.Cursor(), before)
	}
	mustWrite(t, w, "again\n")
	got := readGen(t, dir, "stderr", before.Gen)
	if !strings.HasSuffix(got, "again\n") || int64(len(got)) != before.Off+6 {
		t.Fatalf("generation %d = %q: not appended to", before.Gen, got)
	}
}

func TestWriter_CapDeletesOldest(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, "stdout", Options{MaxBytes: 8, MaxFiles: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 10; i++ {
		mustWrite(t, w, fmt.Sprintf("line %d\n", i)) // 7 bytes: one per generation
	}
	if g := gens(t, dir, "stdout"); fmt.Sprint(g) != "[8 9 10]" {
		t.Fatalf("generations %v, want [8 9 10]", g)
	}
}

func TestWriter_BinaryStoredAsIs(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(dir, "stdout", Options{MaxBytes: 100, MaxFiles: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	junk := make([]byte, 1000)
	for i := range junk {
		junk[i] = byte(i*7) &^ '\n' // NULs and everything but newlines
	}
	if _, err := w.Write(junk); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, g := range gens(t, dir, "stdout") {
		got = append(got, readGen(t, dir, "stdout", g)...)
	}
	if !bytes.Equal(got, junk) {
		t.Fatal("binary data changed")
	}
	if n := len(gens(t, dir, "stdout")); n != 10 {
		t.Fatalf("%d generations, want 10", n)
	}
}

func TestWriter_HugeLineBoundedMemory(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 1 << 20
	w, err := Create(dir, "stdout", Options{MaxBytes: maxBytes, MaxFiles: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	line := bytes.Repeat([]byte{'x'}, 100<<20)
	line[len(line)-1] = '\n'
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	n, err := w.Write(line)
	runtime.ReadMemStats(&m1)
	if err != nil || n != len(line) {
		t.Fatalf("write: n=%d err=%v", n, err)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("a 100 MB write allocated %d bytes", alloc)
	}
	g := gens(t, dir, "stdout")
	if len(g) != 100 {
		t.Fatalf("%d generations, want 100", len(g))
	}
	for _, gen := range g {
		fi, err := os.Stat(genPath(dir, "stdout", gen))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != maxBytes {
			t.Fatalf("generation %d has %d bytes, want %d", gen, fi.Size(), maxBytes)
		}
	}
}
