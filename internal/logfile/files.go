package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// openWrite opens path for appending, creating it (exclusively with
// excl) 0644, never through a symlink nor blocking on a FIFO: the directory is writable by the
// task whose output it holds, and the writer runs as root.
func openWrite(path string, excl bool) (*os.File, error) {
	flags := os.O_WRONLY | os.O_APPEND | os.O_CREATE | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_CLOEXEC
	if excl {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, err
	}
	if err := checkRegular(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openRead opens path for reading, never through a symlink and without
// blocking on a FIFO, and only if it is a regular file: a task may plant
// anything under a generation's name.
func openRead(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := checkRegular(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ErrNotRegular is returned for a stream file that is not a regular file
// (a FIFO, device or directory planted under a generation's name).
var ErrNotRegular = errors.New("not a regular file")

func checkRegular(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w", f.Name(), ErrNotRegular)
	}
	return nil
}

// genDigits is the minimum width of a generation number in a file name.
const genDigits = 6

func checkName(dir, name string) error {
	if dir == "" {
		return errors.New("dir is empty")
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("name %q: want a plain file name", name)
	}
	return nil
}

func genPath(dir, name string, gen uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%s.%0*d", name, genDigits, gen))
}

// parseGen returns the generation of file base name fn of stream name.
func parseGen(name, fn string) (uint64, bool) {
	rest, ok := strings.CutPrefix(fn, name+".")
	if !ok || len(rest) < genDigits || !allDigits(rest) {
		return 0, false
	}
	g, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || g == 0 {
		return 0, false
	}
	return g, true
}

// listGens returns the stored generations of a stream, ascending.
func listGens(dir, name string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, e := range ents {
		if g, ok := parseGen(name, e.Name()); ok {
			gens = append(gens, g)
		}
	}
	sort.Slice(gens, func(i, j int) bool { return gens[i] < gens[j] })
	return gens, nil
}
