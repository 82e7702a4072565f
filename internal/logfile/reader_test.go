package logfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// readAll reads from c to the live end, in small pieces.
func readAll(t *testing.T, r *Reader, c Cursor) (string, Cursor) {
	t.Helper()
	var sb strings.Builder
	buf := make([]byte, 5)
	for {
		n, next, err := r.Read(c, buf)
		if err == io.EOF {
			if n != 0 || next != c {
				t.Fatalf("EOF with n=%d next=%s from %s", n, next, c)
			}
			return sb.String(), c
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("read 0 bytes without error at %s", c)
		}
		sb.Write(buf[:n])
		c = next
	}
}

func newLog(t *testing.T, o Options, lines ...string) (*Writer, *Reader, string) {
	t.Helper()
	dir := t.TempDir()
	w, err := Create(dir, "stdout", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	for _, l := range lines {
		mustWrite(t, w, l)
	}
	r, err := Open(dir, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return w, r, dir
}

func TestReader_ReadAcrossRotations(t *testing.T) {
	w, r, _ := newLog(t, Options{MaxBytes: 10, MaxFiles: 100}, "one\n", "two\n", "three\n", "four\n", "five")
	got, end := readAll(t, r, Cursor{})
	if want := "one\ntwo\nthree\nfour\nfive"; got != want {
		t.Fatalf("read %q, want %q", got, want)
	}
	if end != w.Cursor() {
		t.Fatalf("end cursor %s, writer at %s", end, w.Cursor())
	}
	mustWrite(t, w, " six\nseven\n")
	got, _ = readAll(t, r, end)
	if got != " six\nseven\n" {
		t.Fatalf("after growth read %q", got)
	}
}

func TestReader_EmptyAndMissing(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, c, err := r.Read(Cursor{}, make([]byte, 10)); err != io.EOF || n != 0 || c != (Cursor{}) {
		t.Fatalf("read of a missing stream: %d %s %v", n, c, err)
	}
	if _, err := Open(dir+"/nope", "stdout"); err == nil {
		t.Fatal("open of a missing dir: no error")
	}
	if _, err := Open(dir, "a/b"); err == nil || !strings.Contains(err.Error(), "name") {
		t.Fatalf("open with a bad name: %v", err)
	}
}

func TestReader_BadCursor(t *testing.T) {
	_, r, _ := newLog(t, Options{MaxBytes: 10, MaxFiles: 100}, "one\n", "two\n", "three\n")
	for _, c := range []Cursor{{Gen: 99}, {Gen: 1, Off: 100}, {Gen: 2, Off: 100}, {Gen: 1, Off: -1}} {
		t.Run(c.String(), func(t *testing.T) {
			_, _, err := r.Read(c, make([]byte, 10))
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("read at %s: %v, want ErrBadCursor", c, err)
			}
		})
	}
}

func TestReader_TruncatedByCap(t *testing.T) {
	w, r, dir := newLog(t, Options{MaxBytes: 8, MaxFiles: 3}, "line 1\n", "line 2\n")
	_, c, err := r.Read(Cursor{Gen: 1}, make([]byte, 3)) // in the middle of gen 1
	if err != nil {
		t.Fatal(err)
	}
	for i := 3; i <= 6; i++ {
		mustWrite(t, w, fmt.Sprintf("line %d\n", i)) // gens 4..6 remain
	}
	// A fresh reader finds generation 1 gone at once.
	fresh, err := Open(dir, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	n, next, err := fresh.Read(c, make([]byte, 100))
	var te *TruncatedError
	if !errors.Is(err, ErrTruncated) || !errors.As(err, &te) {
		t.Fatalf("read of a deleted generation: n=%d err=%v, want ErrTruncated", n, err)
	}
	if want := (Cursor{Gen: 4}); next != want || te.Resume != want || te.From != c || n != 0 {
		t.Fatalf("truncated: n=%d next=%s err=%+v, want resume at %s", n, next, te, want)
	}
	// The first reader still has generation 1 open: it gets the rest of
	// it, then the error at the missing generation 2.
	buf := make([]byte, 100)
	n, c2, err := r.Read(c, buf)
	if err != nil || string(buf[:n]) != "e 1\n" {
		t.Fatalf("read through the open file: %q %v", buf[:n], err)
	}
	if _, next2, err := r.Read(c2, buf); !errors.As(err, &te) || next2 != next || te.From != (Cursor{Gen: 2}) {
		t.Fatalf("read past the open file: %s %v, want ErrTruncated from 2:0 to %s", next2, err, next)
	}
	got, _ := readAll(t, r, next)
	if got != "line 4\nline 5\nline 6\n" {
		t.Fatalf("after resuming read %q", got)
	}
}

func TestReader_Tail(t *testing.T) {
	lines := []string{}
	for i := 0; i < 20; i++ {
		lines = append(lines, fmt.Sprintf("line %02d\n", i)) // 8 bytes
	}
	for _, tc := range []struct {
		name  string
		o     Options
		extra string
		n     int
		want  string
	}{
		{"within the live file", Options{MaxBytes: 1000}, "", 3, "line 17\nline 18\nline 19\n"},
		{"across generations", Options{MaxBytes: 20, MaxFiles: 100}, "", 5, "line 15\nline 16\nline 17\nline 18\nline 19\n"},
		{"partial last line counts", Options{MaxBytes: 20, MaxFiles: 100}, "part", 2, "line 19\npart"},
		{"more than stored", Options{MaxBytes: 20, MaxFiles: 3}, "", 100, "line 14\nline 15\nline 16\nline 17\nline 18\nline 19\n"},
		{"zero", Options{MaxBytes: 20, MaxFiles: 100}, "", 0, ""},
		{"one", Options{MaxBytes: 8, MaxFiles: 100}, "", 1, "line 19\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r, _ := newLog(t, tc.o, append(lines, tc.extra)...)
			c, err := r.Tail(tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := readAll(t, r, c); got != tc.want {
				t.Fatalf("Tail(%d) = %s reads %q, want %q", tc.n, c, got, tc.want)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		_, r, _ := newLog(t, Options{})
		if c, err := r.Tail(10); err != nil || c != (Cursor{Gen: 1}) {
			t.Fatalf("Tail of an empty stream: %s %v", c, err)
		}
		if _, err := r.Tail(-1); err == nil {
			t.Fatal("Tail(-1): no error")
		}
	})
}

// TestReader_TailSeeks checks that Tail of a 1 GiB log reads a few blocks,
// not the file: the file is sparse but for its last lines.
func TestReader_TailSeeks(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(genPath(dir, "stdout", 1))
	if err != nil {
		t.Fatal(err)
	}
	const size = 1 << 30
	var tail strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&tail, "real line %04d\n", i)
	}
	if err := f.Truncate(size - int64(tail.Len())); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(tail.String()), size-int64(tail.Len())); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err := Open(dir, "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := r.Tail(10)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Cursor{Gen: 1, Off: size - 10*15}); c != want {
		t.Fatalf("Tail(10) = %s, want %s", c, want)
	}
	if n := r.tot.Load(); n >= 1<<20 {
		t.Fatalf("Tail read %d bytes of a 1 GiB file", n)
	}
	got, _ := readAll(t, r, c)
	if !strings.HasPrefix(got, "real line 0190\n") || strings.Count(got, "\n") != 10 {
		t.Fatalf("tail reads %q", got)
	}
}

func TestReader_Since(t *testing.T) {
	w, r, dir := newLog(t, Options{MaxBytes: 8, MaxFiles: 100}, "line 1\n", "line 2\n", "line 3\n")
	old := time.Now().Add(-time.Hour)
	for g := uint64(1); g <= 2; g++ {
		if err := os.Chtimes(genPath(dir, "stdout", g), old, old); err != nil {
			t.Fatal(err)
		}
	}
	mid := time.Now().Add(-time.Minute)
	if c, err := r.Since(mid); err != nil || c != (Cursor{Gen: 3}) {
		t.Fatalf("Since(a minute ago) = %s %v, want 3:0", c, err)
	}
	if c, err := r.Since(old.Add(-time.Hour)); err != nil || c != (Cursor{Gen: 1}) {
		t.Fatalf("Since(two hours ago) = %s %v, want 1:0", c, err)
	}
	if c, err := r.Since(time.Now().Add(time.Hour)); err != nil || c != w.Cursor() {
		t.Fatalf("Since(future) = %s %v, want the end %s", c, err, w.Cursor())
	}
}
