package logfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// Defaults of Options, the same as Nomad's and the kubelet's.
const (
	DefaultMaxBytes = 10 << 20
	DefaultMaxFiles = 5
)

// Options bounds the disk a stream may use.
type Options struct {
	// MaxBytes is the size at which the live generation is rotated; no
	// generation grows past it. Zero means DefaultMaxBytes.
	MaxBytes int64
	// MaxFiles is how many generations are kept, the live one included;
	// rotation deletes older ones. Zero means DefaultMaxFiles.
	MaxFiles int
	// Owner, if set, owns every generation the Writer creates (fchown on
	// the open file, never by path); nil: the writing process's user.
	Owner *Owner
}

// Owner is a file's owner.
type Owner struct {
	UID, GID int
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxBytes < 0 {
		return o, fmt.Errorf("MaxBytes %d: must not be negative", o.MaxBytes)
	}
	if o.MaxFiles < 0 {
		return o, fmt.Errorf("MaxFiles %d: must not be negative", o.MaxFiles)
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxFiles == 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	return o, nil
}

// Writer appends one stream to rotating files. It is not safe for
// concurrent use: one stream has one writer, in one goroutine. Several
// Writers on the same dir and name (in one process or several) are not
// supported and corrupt the stream.
//
// Writes go straight to the file (no buffering in the Writer, no fsync):
// once Write returns, every Reader sees the bytes.
type Writer struct {
	dir, name string
	o         Options
	f         *os.File
	gen       uint64 // live generation
	size      int64  // bytes in the live generation
	oldest    uint64 // oldest generation that may still exist
	lineStart bool   // the live file is empty or ends with '\n'
	err       error  // sticky error of a failed rotation
}

var _ io.WriteCloser = (*Writer)(nil)

// Create opens stream name in dir (which must exist) for writing. If
// generations exist (the writing process restarted) it appends to the
// highest one; otherwise a regular file dir/name with no other link
// becomes generation 1 and is appended to, or generation 1 is created. Either way it points the
// hard link dir/name at the live generation. Bad options or name are an
// error naming the field.
func Create(dir, name string, o Options) (*Writer, error) {
	if err := checkName(dir, name); err != nil {
		return nil, fmt.Errorf("logfile create: %w", err)
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("logfile create: %w", err)
	}
	gens, err := listGens(dir, name)
	if err != nil {
		return nil, fmt.Errorf("logfile create: %w", err)
	}
	w := &Writer{dir: dir, name: name, o: o, gen: 1, oldest: 1, lineStart: true}
	if len(gens) > 0 {
		w.oldest, w.gen = gens[0], gens[len(gens)-1]
	}
	adopted := false
	if len(gens) == 0 {
		// A plain file dir/name (written before logs rotated) becomes
		// generation 1, appended to.
		if fi, err := os.Lstat(filepath.Join(dir, name)); err == nil && fi.Mode().IsRegular() {
			if err := os.Rename(filepath.Join(dir, name), genPath(dir, name, 1)); err != nil {
				return nil, fmt.Errorf("logfile create: %w", err)
			}
			adopted = true
		}
	}
	f, err := openWrite(genPath(dir, name, w.gen), false)
	if err != nil {
		return nil, fmt.Errorf("logfile create: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("logfile create: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && adopted && st.Nlink != 1 {
		// A hard link to some other file, planted: never append to it.
		f.Close()
		return nil, fmt.Errorf("logfile create: %s has %d links: %w", genPath(dir, name, 1), st.Nlink, ErrNotRegular)
	}
	if len(gens) == 0 && !adopted {
		if err := w.chown(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("logfile create: %w", err)
		}
	}
	w.f, w.size = f, fi.Size()
	if w.size > 0 {
		w.lineStart, err = endsWithNewline(genPath(dir, name, w.gen), w.size)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("logfile create: %w", err)
		}
	}
	if err := w.link(); err != nil {
		f.Close()
		return nil, fmt.Errorf("logfile create: %w", err)
	}
	return w, nil
}

func endsWithNewline(path string, size int64) (bool, error) {
	f, err := openRead(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], size-1); err != nil {
		return false, err
	}
	return b[0] == '\n', nil
}

// link points dir/name at the live generation, atomically.
func (w *Writer) link() error {
	tmp := filepath.Join(w.dir, "."+w.name+".link")
	_ = os.Remove(tmp)
	if err := os.Link(genPath(w.dir, w.name, w.gen), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(w.dir, w.name)); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// Write appends p to the stream. When p does not fit in the live
// generation, Write rotates: after the last newline of p that fits, or, if
// none fits, before p when the live file ends at a line boundary, or else
// mid-line (so a line longer than MaxBytes is split across generations).
// Write never copies or buffers p. It returns the bytes written and the
// first error; after a failed rotation every Write fails.
func (w *Writer) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, errors.New("logfile write: writer is closed")
	}
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		room := w.o.MaxBytes - w.size
		if int64(len(p)) <= room {
			m, err := w.write(p)
			return n + m, err
		}
		cut := -1
		if room > 0 {
			cut = bytes.LastIndexByte(p[:room], '\n') + 1 // 0 when none
			if cut == 0 {
				if w.lineStart && w.size > 0 {
					cut = 0 // rotate first, keep the line whole if it can be
				} else {
					cut = int(room) // mid-line
				}
			}
		}
		if cut > 0 {
			m, err := w.write(p[:cut])
			n += m
			if err != nil {
				return n, err
			}
			p = p[cut:]
		}
		if err := w.rotate(); err != nil {
			w.err = err
			return n, err
		}
	}
	return n, nil
}

func (w *Writer) write(p []byte) (int, error) {
	m, err := w.f.Write(p)
	w.size += int64(m)
	if m > 0 {
		w.lineStart = p[m-1] == '\n'
	}
	if err != nil {
		return m, fmt.Errorf("logfile write: %w", err)
	}
	return m, nil
}

// rotate makes generation gen+1 live, then deletes what the cap excludes.
func (w *Writer) rotate() error {
	next := w.gen + 1
	f, err := openWrite(genPath(w.dir, w.name, next), true)
	if err != nil {
		return fmt.Errorf("logfile rotate: %w", err)
	}
	if err := w.chown(f); err != nil {
		f.Close()
		return fmt.Errorf("logfile rotate: %w", err)
	}
	old := w.f
	w.f, w.gen, w.size, w.lineStart = f, next, 0, true
	if err := old.Close(); err != nil {
		return fmt.Errorf("logfile rotate: %w", err)
	}
	if err := w.link(); err != nil {
		return fmt.Errorf("logfile rotate: %w", err)
	}
	// Keep generations next+1-MaxFiles .. next.
	if keep := uint64(w.o.MaxFiles); next > keep {
		for ; w.oldest <= next-keep; w.oldest++ {
			if err := os.Remove(genPath(w.dir, w.name, w.oldest)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("logfile rotate: %w", err)
			}
		}
	}
	return nil
}

func (w *Writer) chown(f *os.File) error {
	if o := w.o.Owner; o != nil {
		return f.Chown(o.UID, o.GID)
	}
	return nil
}

// Cursor returns the position just after the last byte written.
func (w *Writer) Cursor() Cursor { return Cursor{Gen: w.gen, Off: w.size} }

// Close closes the live file. The files stay; Create resumes them. Close
// is idempotent.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("logfile close: %w", err)
	}
	return nil
}
